"""salad.comparison: claims vs hand-made run tables (numbers computed by hand in the comments)."""

import math
from pathlib import Path

import pandas as pd
import pytest

from salad import comparison as cmp
from salad.artifacts import read_parquet
from salad.errors import SaladError

ROOT = Path(__file__).resolve().parents[1]


def _sens(rows):
    cols = ["setup", "signal", "held_out", "strength", "sic_mean", "sic_err", "sic_std", "sic_syst", "n"]
    frame = pd.DataFrame(rows, columns=cols)
    return frame.assign(method="cathode", eps_b=0.005)


def _claim(kind, **extra):
    return {"id": "x", "paper": "A", "claim": "c", "source": "Fig. 0", "kind": kind, **extra}


def test_value_claim_pull_and_verdict():
    # stat = sqrt(0.3^2 + (0.8/sqrt(4))^2) = 0.5, syst 0.2; pull = 0.5 / sqrt(0.25 + 0.04) = 0.9285
    tables = {
        "cathode_sensitivity": _sens(
            [
                ("ID", "C1N2_150", False, 1.0, 7.5, 0.3, 0.8, 0.2, 4),
                ("ID", "C1N2_150", False, 2.0, 99.0, 0.3, 0.8, 0.2, 4),
            ]
        )
    }
    claim = _claim(
        "value",
        paper_value=7.0,
        metric="sic",
        select={"setup": "ID", "signal": "C1N2_150"},
        eps_b=0.005,
        strength=1.0,
    )
    row = cmp.evaluate_claim(claim, tables)
    assert row["run_value"] == 7.5
    assert row["stat"] == pytest.approx(0.5) and row["syst"] == pytest.approx(0.2)
    assert row["pull"] == pytest.approx(0.5 / math.sqrt(0.29))
    assert row["verdict"] == cmp.AGREES
    assert cmp.evaluate_claim({**claim, "paper_value": 9.8}, tables)["verdict"] == cmp.DIFFERS  # pull 4.3


def test_verdict_rule():
    # sigma = sqrt(0.2^2 + 0.1^2 + 0.1^2) = 0.2449; pull = 0.5 / 0.2449 = 2.04
    assert cmp.verdict(7.5, 0.2, 0.1, 7.0, 0.1) == (cmp.DIFFERS, pytest.approx(2.0412, abs=1e-4))
    assert cmp.verdict(7.5, 0.2, 0.1, 7.0, 0.1, n_sigma=3)[0] == cmp.AGREES
    assert cmp.verdict(1.0, float("nan"), 0.0, 1.0)[0] == cmp.AGREES  # no error: equality
    assert cmp.verdict(1.1, 0.0, 0.0, 1.0)[0] == cmp.DIFFERS


def test_not_covered_without_table_or_rows():
    claim = _claim(
        "value",
        paper_value=7.0,
        metric="sic",
        select={"setup": "ID", "signal": "X500_S100"},
        eps_b=0.005,
        strength=1.0,
    )
    assert cmp.evaluate_claim(claim, {})["verdict"] == cmp.NOT_COVERED
    tables = {"cathode_sensitivity": _sens([("ID", "C1N2_150", False, 1.0, 7.5, 0.3, 0.8, 0.2, 4)])}
    row = cmp.evaluate_claim(claim, tables)
    assert row["verdict"] == cmp.NOT_COVERED and "X500_S100" in row["conditions"]
    assert math.isnan(row["run_value"])


def _ratio_row(rows, n):
    """The ID / baseline_ref22 ratio claim (paper 1.40 +- 0.05, eps_B = 0.5 %) evaluated on
    per-instance CATHODE rows (setup, signal, held_out, strength, instance, sic, err, syst)."""
    inst = pd.DataFrame(
        rows,
        columns=["setup", "signal", "held_out", "strength", "instance", "sic_mean", "sic_err", "sic_syst"],
    ).assign(method="cathode", eps_b=0.005, n=n)
    claim = _claim(
        "ratio", paper_value=1.40, paper_err=0.05, numerator="ID", denominator="baseline_ref22", eps_b=0.005
    )
    return cmp.evaluate_claim(claim, {"cathode_sensitivity_instances": inst})


def test_ratio_on_matched_instances_propagates_errors():
    row = _ratio_row(
        [
            ("ID", "Y400", False, 5.0, 0, 6.0, 0.3, 0.4),
            ("ID", "Y400", False, 5.0, 1, 100.0, 0.3, 0.4),  # ref22 lacks instance 1
            ("baseline_ref22", "Y400", True, 5.0, 0, 4.0, 0.2, 0.1),
        ],
        n=2,
    )
    # r = 6/4; stat = 1.5 sqrt((0.3/6)^2 + (0.2/4)^2); syst = 1.5 sqrt((0.4/6)^2 + (0.1/4)^2)
    assert row["run_value"] == pytest.approx(1.5)
    assert row["stat"] == pytest.approx(1.5 * math.hypot(0.05, 0.05))
    assert row["syst"] == pytest.approx(1.5 * math.hypot(0.4 / 6, 0.025))
    assert row["pull"] == pytest.approx(0.1 / math.sqrt(row["stat"] ** 2 + row["syst"] ** 2 + 0.05**2))
    assert row["verdict"] == cmp.AGREES and "instances 0" in row["conditions"]


def test_ratio_over_signals_is_the_inverse_variance_weighted_mean():
    # (chi)300: 12/10 = 1.2 with small errors; Y400: 2/0.05 = 40 with a huge one (the
    # denominator finds nothing): the combination stays near 1.2, and both ratios are listed
    row = _ratio_row(
        [
            ("ID", "C1N2_300", False, 5.0, 0, 12.0, 0.12, 0.0),
            ("baseline_ref22", "C1N2_300", True, 5.0, 0, 10.0, 0.10, 0.0),
            ("ID", "Y400", False, 5.0, 0, 2.0, 0.2, 0.0),
            ("baseline_ref22", "Y400", True, 5.0, 0, 0.05, 0.03, 0.0),
        ],
        n=1,
    )
    e1 = 1.2 * math.hypot(0.01, 0.01)
    e2 = 40.0 * math.hypot(0.1, 0.6)
    w1, w2 = 1 / e1**2, 1 / e2**2
    assert row["run_value"] == pytest.approx((w1 * 1.2 + w2 * 40.0) / (w1 + w2))
    assert row["stat"] == pytest.approx(math.sqrt(w1**2 * e1**2 + w2**2 * e2**2) / (w1 + w2))
    assert 1.2 < row["run_value"] < 1.21 and row["verdict"] == cmp.DIFFERS
    assert "1.2 ±" in row["conditions"] and "40 ±" in row["conditions"]


def test_ordering_on_held_out_signals():
    rows = [
        ("ID", "Y400", False, 5.0, 5.0, 0.1, 0.0, 0.0, 1),
        ("IP", "Y400", True, 5.0, 4.0, 0.1, 0.0, 0.0, 1),
        ("EP", "Y400", False, 5.0, 9.0, 0.1, 0.0, 0.0, 1),  # EP not held out: not part of Y400's chain
        ("bkg_only", "Y400", False, 5.0, 1.0, 0.1, 0.0, 0.0, 1),
    ]
    claim = _claim(
        "ordering",
        paper_value="all",
        chain=["ID", "IP", "EP", "bkg_only"],
        relations=[">=", ">=", ">"],
        eps_b=0.005,
        strength="max",
    )
    row = cmp.evaluate_claim(claim, {"cathode_sensitivity": _sens(rows)})
    assert row["verdict"] == cmp.AGREES and row["run_value"] == 1.0
    assert "EP" not in row["conditions"].split(":")[-1]
    # IP below bkg_only: IP > bkg_only fails (EP absent: the relation between IP and bkg_only is ">")
    rows[1] = ("IP", "Y400", True, 5.0, 0.5, 0.1, 0.0, 0.0, 1)
    row = cmp.evaluate_claim(claim, {"cathode_sensitivity": _sens(rows)})
    assert row["verdict"] == cmp.DIFFERS and row["run_value"] == 0.5  # ID >= IP holds, IP > bkg_only not
    rows[1] = ("IP", "Y400", True, 5.0, 5.2, 0.1, 0.0, 0.0, 1)  # ID below IP within 2 sigma: holds
    assert cmp.evaluate_claim(claim, {"cathode_sensitivity": _sens(rows)})["verdict"] == cmp.AGREES
    no_middle = [r for r in rows if r[0] in ("ID", "bkg_only")]
    assert cmp.evaluate_claim(claim, {"cathode_sensitivity": _sens(no_middle)})["verdict"] == cmp.NOT_COVERED


def test_majority_of_models():
    req = pd.DataFrame(
        [
            ("EP_m1", "C1N2_300", True, 2.0, True),
            ("bkg_only", "C1N2_300", True, 4.0, True),
            ("EP_m6", "Y400", True, 5.0, False),
            ("bkg_only", "Y400", True, 5.0, False),
            ("EP_m1", "Y400", False, 1.0, True),
        ],  # not held out for Y400: ignored
        columns=["setup", "signal", "held_out", "required_strength", "reached"],
    )
    req = req.assign(method="cathode", eps_b=0.001)
    claim = _claim(
        "majority", paper_value="most", setups=["EP_m*", "EP"], reference="bkg_only", min_signals=2
    )
    row = cmp.evaluate_claim(claim, {"cathode_required_injection": req})
    assert row["run_value"] == 0.5 and row["stat"] == pytest.approx(math.sqrt(0.25 / 2))
    assert row["verdict"] == cmp.DIFFERS  # 1/2 is not a majority
    assert (
        cmp.evaluate_claim({**claim, "min_signals": 3}, {"cathode_required_injection": req})["verdict"]
        == cmp.NOT_COVERED
    )


def test_paper_b_greater_and_trend():
    lin = pd.DataFrame(
        {
            "representation": ["supsimclr_mlp", "vicreg_tf", "simclr_mlp"],
            "accuracy": [0.80, 0.70, 0.75],
            "accuracy_sem": [0.01, 0.01, float("nan")],
            "accuracy_fold_sem": [0.0, 0.0, 0.01],
        }
    )
    claim = _claim(
        "greater",
        paper="B",
        paper_value="sup > self",
        metric="accuracy",
        better=["supsimclr_mlp", "vicreg_tf"],
        worse=["simclr_mlp"],
    )
    row = cmp.evaluate_claim(claim, {"linear_eval": lin})
    assert row["run_value"] == 0.5 and row["verdict"] == cmp.DIFFERS  # vicreg_tf 0.70 < 0.75
    scan = pd.DataFrame(
        {
            "family": "simclr",
            "dim": [4, 4, 6],
            "signal": ["a", "b", "a"],
            "accuracy": [0.60, 0.60, 0.65],
            "accuracy_sem": [0.03, 0.03, 0.04],
        }
    )
    row = cmp.evaluate_claim(
        _claim("trend", paper="B", paper_value="rising", family="simclr"), {"dimension_scan": scan}
    )
    assert row["run_value"] == pytest.approx(0.05) and row["stat"] == pytest.approx(0.05)
    assert row["verdict"] == cmp.AGREES
    nplm = pd.DataFrame(
        {
            "representation": ["simclr_mlp", "simclr_mlp", "baseline_leading"],
            "seed": [1, 2, 1],
            "signal": "Y400",
            "strength": 5.0,
            "z_median": [3.0, 5.0, 2.0],
        }
    )
    claim = _claim(
        "greater",
        paper="B",
        paper_value="learned > baselines",
        metric="z",
        better=["simclr_mlp"],
        worse=["baseline_leading"],
    )
    row = cmp.evaluate_claim(claim, {"nplm": nplm})
    assert (
        row["verdict"] == cmp.AGREES and "4.0 ± 1.0" in row["conditions"]
    )  # mean 4, SEM std(3, 5)/sqrt(2) = 1


def test_writer_and_claims_file(tmp_path):
    header, claims = cmp.load_claims(ROOT / "config" / "paper_claims.yaml")
    assert "ratios and orderings" in header
    frame = cmp.compare(claims, {})
    assert len(frame) == len(claims) and set(frame["verdict"]) == {cmp.NOT_COVERED}
    assert set(frame["paper"]) == {"A", "B"}
    cmp.write_outputs(frame, tmp_path / "c.parquet", tmp_path / "c.md", header)
    text = (tmp_path / "c.md").read_text()
    assert text.index("ratios and orderings") < text.index("| paper |")
    assert f"0 agrees, 0 differs, {len(claims)} {cmp.NOT_COVERED}" in text
    back = read_parquet(tmp_path / "c.parquet", None, finite=False)
    assert list(back.columns) == cmp.COLUMNS
    bad = tmp_path / "bad.yaml"
    bad.write_text("claims: [{id: a, paper: A, claim: c, source: s, paper_value: 1, kind: guess}]\n")
    with pytest.raises(SaladError, match="kind 'guess'"):
        cmp.load_claims(bad)


def test_reads_the_tables_evaluate_writes(tmp_path):
    """Contract: cathode tables as `salad evaluate tables` writes them feed the comparison CLI."""
    from salad.artifacts import provenance, write_parquet
    from salad.cathode.evaluate import SENS_COLS, tables
    from salad.comparison import cli

    rows = []
    sic = {"ID": 8.0, "IP": 6.0, "EP": 5.0, "bkg_only": 2.0, "baseline_ref22": 5.0}
    held = {("IP", "Y400"), ("EP", "C1N2_300"), ("bkg_only", "Y400"), ("bkg_only", "C1N2_300")}
    for setup, value in sic.items():
        for signal in ("Y400", "C1N2_300"):
            for strength, instances in (
                (0.0, [0]),
                (1.0, [0, 1]),
                (5.0, [0, 1] if setup != "baseline_ref22" else [0]),
            ):
                for instance in instances:
                    for ens in (0, 1):
                        v = value * strength / 5 + 0.1 * ens
                        rows.append(
                            dict(
                                zip(
                                    SENS_COLS,
                                    [
                                        setup,
                                        signal,
                                        (setup, signal) in held,
                                        strength,
                                        instance,
                                        "cathode",
                                        ens,
                                        0.005,
                                        0.1,
                                        0.01,
                                        v,
                                        0.2,
                                        3.0 * strength,
                                        3.0,
                                        10.0,
                                        100.0,
                                        5000,
                                        100,
                                    ],
                                )
                            )
                        )
    paths = []
    for i, frame in enumerate([pd.DataFrame(rows, columns=SENS_COLS)]):
        write_parquet(frame, tmp_path / f"s{i}.parquet", provenance("t"))
        paths.append(tmp_path / f"s{i}.parquet")
    base = {"setup": "ID", "signal": "Y400", "held_out": False, "strength": 0.0, "instance": 0}
    auc = pd.DataFrame(
        [{**base, "classifier": c, "auc": a, "auc_boot_std": 0.003} for c, a in ((0, 0.503), (1, 0.507))]
    )
    mass = pd.DataFrame(
        [
            {
                **base,
                "ensemble": 0,
                "efficiency": 0.2,
                "bin_lo": 120.0,
                "bin_hi": 125.0,
                "n_before": 100,
                "n_after": 20,
                "chi2": 1.0,
                "ndf": 1,
                "jsd": 0.0,
            }
        ]
    )
    write_parquet(auc, tmp_path / "auc.parquet", provenance("t"))
    write_parquet(mass, tmp_path / "mass.parquet", provenance("t"))
    tables(
        paths,
        [tmp_path / "auc.parquet"],
        [tmp_path / "mass.parquet"],
        tmp_path,
        {"evaluate": {"target_significance": 3.0}},
    )
    names = [
        "cathode_sensitivity",
        "cathode_sensitivity_instances",
        "cathode_required_injection",
        "cathode_sculpting",
    ]
    cli(
        [
            "--claims",
            str(ROOT / "config" / "paper_claims.yaml"),
            "--output",
            str(tmp_path / "c.parquet"),
            "--markdown",
            str(tmp_path / "c.md"),
            "--table",
            *[f"{n}={tmp_path / n}.parquet" for n in names],
        ]
    )
    out = read_parquet(tmp_path / "c.parquet", None, finite=False).set_index("claim")
    ratio = out.loc[[c for c in out.index if "ref. [22]" in c][0]]
    # ID/ref22 on instance 0 at S/sqrt(B) = 5: (8.05 / 5.05) for both signals
    assert ratio["run_value"] == pytest.approx(8.05 / 5.05) and ratio["verdict"] == cmp.DIFFERS
    order = out.loc[[c for c in out.index if "ID ≥ IP ≥ EP" in c and "0.5 %" in c][0]]
    assert order["verdict"] == cmp.AGREES and order["run_value"] == 1.0
    auc = out.loc[[c for c in out.index if "Sculpting" in c][0]]
    # mean 0.505, bootstrap 0.003, spread std(0.503, 0.507) = 0.00283; pull 0.001 / sqrt(9e-6 + 8e-6 + 4e-6)
    assert auc["run_value"] == pytest.approx(0.505) and auc["verdict"] == cmp.AGREES
    assert auc["pull"] == pytest.approx(0.001 / math.sqrt(9e-6 + 8e-6 + 4e-6))
    assert (out["verdict"] == cmp.NOT_COVERED).sum() >= 4  # no 1-sigma Fig. 4 signals, no paper-B tables
