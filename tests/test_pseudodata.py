"""salad.pseudodata on synthetic preselected + split tables (no ROOT needed)."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from salad.__main__ import main
from salad.artifacts import provenance, read_parquet, write_parquet
from salad.contracts import in_signal_region as in_region
from salad.errors import SaladError
from salad.pseudodata import build
from salad.split import assign

SR = [120.0, 130.0]
CFG = {"pseudodata": {"luminosity_ifb": 2.0, "seed": 2}, "regions": {"signal_region": SR}}


def sample_frame(name, code, group, n, xsec, myy, encoder_fraction=0.5, seed=0):
    """A preselected table joined with its split (as load_sample returns)."""
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0.5, 1.5, n)
    ids = code * 10**9 + np.arange(n, dtype=np.int64)
    return pd.DataFrame(
        {
            "event_id": ids,
            "sample": name,
            "group": np.int8(group),
            "weight": xsec * raw / (raw.sum() / 0.8),  # 80 % pass "preselection"
            "myy": myy(rng, n).astype(np.float32),
            "subset": assign(ids, 1, code, encoder_fraction),
        }
    )


def yy(**kw):
    return sample_frame("yy", 1, 0, 40000, 2000.0, lambda r, n: r.uniform(105, 160, n), 0.7, 1, **kw)


def ggh():
    return sample_frame("ggH", 2, 1, 5000, 50.0, lambda r, n: r.normal(125, 1.7, n), 0.5, 2)


def y400(n=4000):
    def myy(r, k):
        return np.where(r.random(k) < 0.8, r.normal(125, 2.0, k), r.uniform(105, 160, k))

    return sample_frame("Y400", 63, -6, n, 1.0, myy, 0.5, 3)


BKG = [yy(), ggh()]
SIG = y400()


def test_background_yield_rescaled_to_whole_sample_and_drawn_by_weight():
    lumi = CFG["pseudodata"]["luminosity_ifb"]
    drawn = []
    for instance in range(30):
        table, summary = build(BKG, SIG, 0.0, instance, CFG)
        assert table["event_id"].is_unique and not table["is_signal"].any()
        for frame in BKG:
            name = frame["sample"].iloc[0]
            assert summary["backgrounds"][name]["expected"] == pytest.approx(lumi * frame["weight"].sum())
        drawn.append(table)
    b = BKG[0]
    expected = lumi * b["weight"].sum()
    counts = np.array([(t["sample"] == "yy").sum() for t in drawn])
    assert abs(counts.mean() - expected) < 4 * np.sqrt(expected / len(counts))
    assert counts.std() > 0.5 * np.sqrt(expected)  # Poisson-fluctuated
    ids = np.concatenate([t.loc[t["sample"] == "yy", "event_id"] for t in drawn])
    assert (b.set_index("event_id").loc[ids, "subset"] == "data").all()  # only the data half
    # draws ∝ weight: the mean weight of drawn events is Σw²/Σw (> the plain mean); at a low
    # luminosity (3 % of the pool drawn) the without-replacement bias is negligible
    low = {**CFG, "pseudodata": {"luminosity_ifb": 0.2, "seed": 2}}
    ids = np.concatenate([build(BKG, SIG, 0.0, i, low)[0]["event_id"] for i in range(60)])
    picked = b.set_index("event_id").loc[ids[ids < 2 * 10**9]]
    w = b.loc[b["subset"] == "data", "weight"]
    assert picked["weight"].mean() == pytest.approx((w**2).sum() / w.sum(), rel=0.005)
    assert picked["weight"].mean() > w.mean() * 1.02


def test_signal_injection_arithmetic():
    lumi = CFG["pseudodata"]["luminosity_ifb"]
    table, summary = build(BKG, SIG, 5.0, 0, CFG)
    b_sr = 0.0
    for f in BKG:
        data = f[f["subset"] == "data"]
        b_sr += (
            lumi
            * data.loc[in_region(data["myy"], SR), "weight"].sum()
            * f["weight"].sum()
            / data["weight"].sum()
        )
    assert summary["B_SR_expected"] == pytest.approx(b_sr, rel=1e-9)
    assert summary["S_SR_target"] == pytest.approx(5.0 * np.sqrt(b_sr))
    sig = SIG[SIG["subset"] == "data"]
    eff = sig.loc[in_region(sig["myy"], SR), "weight"].sum() / sig["weight"].sum()
    assert summary["n_signal"] == round(5.0 * np.sqrt(b_sr) / eff) == table["is_signal"].sum()
    injected = [build(BKG, SIG, 5.0, i, CFG)[1]["S_SR_injected"] for i in range(15)]
    target, n = summary["S_SR_target"], summary["n_signal"]
    assert abs(np.mean(injected) - target) < 4 * np.sqrt(n * eff * (1 - eff) / len(injected)) + 1
    assert set(table.loc[table["is_signal"], "event_id"]) <= set(sig["event_id"])


def test_background_shared_across_signals_and_strengths_signal_nested():
    other = sample_frame("C1N2_300", 13, -1, 3000, 1.0, lambda r, n: r.normal(125, 2, n), seed=9)
    base, _ = build(BKG, SIG, 0.0, 1, CFG)
    t2, _ = build(BKG, SIG, 2.0, 1, CFG)
    t5, _ = build(BKG, SIG, 5.0, 1, CFG)
    tc, _ = build(BKG, other, 5.0, 1, CFG)
    bkg = set(base["event_id"])
    for t in (t2, t5, tc):
        assert set(t.loc[~t["is_signal"], "event_id"]) == bkg
    assert set(t2.loc[t2["is_signal"], "event_id"]) < set(t5.loc[t5["is_signal"], "event_id"])
    other_instance, _ = build(BKG, SIG, 0.0, 2, CFG)
    assert set(other_instance["event_id"]) != bkg
    again, _ = build(BKG, SIG, 2.0, 1, CFG)
    pd.testing.assert_frame_equal(again, t2)  # deterministic


def test_output_columns_truth_and_row_order():
    table, _ = build(BKG, SIG, 5.0, 0, CFG)
    assert list(table.columns) == ["event_id", "sample", "myy", "is_signal", "group"]
    assert table["event_id"].dtype == np.int64 and table["myy"].dtype == np.float32
    assert table["group"].dtype == np.int8 and table["is_signal"].dtype == bool
    assert (table["is_signal"] == (table["group"] < 0)).all()
    assert (table.loc[table["is_signal"], "sample"] == "Y400").all()
    position = np.flatnonzero(table["is_signal"].to_numpy()) / len(table)  # not appended at the end
    assert 0.35 < position.mean() < 0.65


def test_errors_name_the_sample():
    with pytest.raises(
        SaladError, match=r"yy: pseudo-data at 100.0 fb\^-1 needs .*lower pseudodata.luminosity_ifb"
    ):
        build(BKG, SIG, 0.0, 0, {**CFG, "pseudodata": {"luminosity_ifb": 100.0, "seed": 2}})
    far = SIG.assign(myy=np.float32(150.0))
    with pytest.raises(SaladError, match=r"Y400: no events .*signal region"):
        build(BKG, far, 2.0, 0, CFG)
    with pytest.raises(SaladError, match=r"Y400: injecting .* only \d+"):
        build(BKG, y400(n=200), 5.0, 0, CFG)
    negative = BKG[1].copy()
    negative.loc[3, "weight"] = -1.0
    with pytest.raises(SaladError, match="ggH: negative event weights"):
        build([BKG[0], negative], SIG, 0.0, 0, CFG)
    with pytest.raises(SaladError, match="Y400: a BSM sample"):
        build([BKG[0], SIG], SIG, 0.0, 0, CFG)


def _write(tmp_path, frame):
    name = frame["sample"].iloc[0]
    pre, spl = tmp_path / f"pre_{name}.parquet", tmp_path / f"split_{name}.parquet"
    write_parquet(frame.drop(columns="subset"), pre, provenance("preselect"))
    write_parquet(frame[["event_id", "subset"]], spl, provenance("split"))
    return f"{pre}:{spl}"


def test_cli_writes_table_and_summary(tmp_path):
    bkg = [_write(tmp_path, f) for f in BKG]
    sig = _write(tmp_path, SIG)
    out, summ = tmp_path / "pd" / "0.parquet", tmp_path / "pd" / "0.json"
    argv = [
        "pseudodata",
        "--background",
        *bkg,
        "--signal",
        sig,
        "--strength",
        "5",
        "--instance",
        "0",
        "--output",
        str(out),
        "--summary",
        str(summ),
        "--config",
        json.dumps(CFG),
    ]
    assert main(argv) == 0
    table = read_parquet(
        out, {"event_id": "int", "sample": "str", "myy": "float", "is_signal": "bool", "group": "int"}
    )
    summary = json.loads(summ.read_text())
    assert summary["n_events"] == len(table) and summary["n_signal"] == table["is_signal"].sum()
    pd.testing.assert_frame_equal(
        table, build(BKG, SIG, 5.0, 0, CFG)[0].reset_index(drop=True), check_dtype=False
    )
    assert pq.read_schema(out).field("group").type == "int8"
    # a split file that does not belong to its preselected file is named in the error
    pre_yy, spl_yy = bkg[0].split(":")
    wrong = argv.copy()
    wrong[2] = f"{pre_yy}:{bkg[1].split(':')[1]}"
    assert main(wrong) == 1
    from salad.pseudodata import cli

    with pytest.raises(SaladError, match=r"split_ggH\.parquet: event ids do not match"):
        cli(wrong[1:])
