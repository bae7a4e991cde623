"""Every plot function on tiny inputs: it writes a PNG (>= 200 dpi) and a PDF next to it; the
style helpers compute what they draw (hand-checked cases)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cathode_fixtures import SR, WINDOW, make_world
from salad import plotstyle as ps
from salad.artifacts import provenance, write_parquet


def _png_dpi(path) -> float:
    from PIL import Image

    with Image.open(path) as im:
        return float(im.info["dpi"][0])


def assert_figure(path):
    assert path.stat().st_size > 5000, path
    assert _png_dpi(path) == pytest.approx(ps.DPI, abs=1)
    pdf = path.with_suffix(".pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-", pdf


def capture(monkeypatch, inspect) -> dict:
    """Make ps.save record inspect(fig) (a dict) before saving; returns that record."""
    seen, real_save = {}, ps.save

    def spy(fig, path):
        seen.update(inspect(fig))
        return real_save(fig, path)

    monkeypatch.setattr(ps, "save", spy)
    return seen


# ------------------------------------------------------------------ style helpers
def test_hist_counts_folds_overflow_and_sums_squared_weights():
    edges = np.array([0.0, 1.0, 2.0])
    counts, err = ps.hist_counts([-5.0, 0.5, 1.5, 9.0], edges, weights=[1.0, 2.0, 3.0, 4.0])
    assert counts.tolist() == [3.0, 7.0]  # -5 -> first bin, 9 -> last bin
    assert err == pytest.approx([np.sqrt(1 + 4), np.sqrt(9 + 16)])
    counts, _ = ps.hist_counts([-5.0, 0.5, 9.0], edges, overflow=False)
    assert counts.tolist() == [1.0, 0.0]


def test_step_hist_density_has_unit_area_and_ratio_propagates_errors():
    plt = ps.pyplot()
    fig, ax = plt.subplots()
    edges = np.array([0.0, 1.0, 3.0])
    h, e = ps.step_hist(ax, [0.5, 0.5, 2.0, 2.5], edges)
    assert (h * np.diff(edges)).sum() == pytest.approx(1.0)
    assert h == pytest.approx([0.5, 0.25]) and e == pytest.approx([np.sqrt(2) / 4, np.sqrt(2) / 8])
    r = ps.ratio(
        ax, edges, np.array([2.0, 3.0]), np.array([1.0, 0.0]), np.array([4.0, 0.0]), np.array([0.0, 0.0])
    )
    assert r[0] == pytest.approx(0.5) and np.isnan(r[1])
    plt.close(fig)


def test_setup_colours_labels_and_order_are_fixed():
    assert ps.order_setups(["bkg_only", "zzz", "EP", "ID", "IP", "aaa"]) == [
        "ID",
        "IP",
        "EP",
        "bkg_only",
        "aaa",
        "zzz",
    ]
    assert len({ps.setup_color(s) for s in ("ID", "IP", "EP", "bkg_only")}) == 4
    assert ps.setup_color("new_setup") == ps.setup_color("new_setup")
    assert ps.setup_label("EP").startswith("EP") and ps.setup_label("mine") == "mine"
    assert ps.group_label(-6) == "Y → Hγ" and ps.group_label(0) == "γγ + jets"
    assert ps.signal_label("Y400") == "Y400 → Hγ"
    assert ps.signal_label("stopRPV_150") == r"($\tilde{t}\tilde{t}$)150 RPV"  # font has no combining tilde
    assert ps.signal_label("stopRPV_150", math=False) == "(t̃t̃)150 RPV"
    from matplotlib.mathtext import MathTextParser

    MathTextParser("path").parse(ps.signal_label("FCNC_tt"))
    assert ps.lumi_text(140) == "$\\sqrt{s}$ = 13 TeV, 140 fb$^{-1}$"


def test_save_writes_png_and_pdf(tmp_path):
    plt = ps.pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    ps.exp_label(ax, 0.1)
    texts = [t.get_text() for t in ax.texts]
    assert "Simulation" in texts and any("0.1 fb" in t for t in texts)
    written = ps.save(fig, tmp_path / "a.png")
    assert [p.name for p in written] == ["a.png", "a.pdf"]
    assert_figure(tmp_path / "a.png")


# ------------------------------------------------------------------ CATHODE
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("plots")
    paths = make_world(root, dims=2, n_bkg=800, n_sig=40, n_sim=50)
    emb = pd.read_parquet(paths["embeddings"])
    data = pd.read_parquet(paths["data"])
    sr = data[(data["myy"] >= SR[0]) & (data["myy"] < SR[1])]
    tmpl = emb[emb["event_id"].isin(sr["event_id"])].drop(columns="event_id").reset_index(drop=True)
    tmpl = tmpl.assign(myy=125.0, weight=1.0, source="flow")
    paths["template"] = root / "template.parquet"
    write_parquet(tmpl, paths["template"], provenance("test"))
    return root, paths


def test_cathode_latent_and_tsne(world, tmp_path):
    from salad.cathode import plots

    _, p = world
    plots.latent(
        p["data"],
        p["embeddings"],
        p["template"],
        tmp_path / "latent.png",
        SR,
        WINDOW,
        lumi=0.1,
        injected="Y400",
    )
    assert_figure(tmp_path / "latent.png")
    plots.tsne(p["data"], p["embeddings"], tmp_path / "tsne.png", SR, WINDOW, n_events=60, lumi=0.1)
    assert_figure(tmp_path / "tsne.png")


def test_roc_auc_is_the_area():
    from salad.cathode.plots import roc_auc

    assert roc_auc([0.0, 1.0, 0.5], [0.0, 1.0, 0.5]) == pytest.approx(0.5)
    assert roc_auc([0.0, 0.0, 1.0], [0.0, 1.0, 1.0]) == pytest.approx(1.0)


def test_cathode_sculpting(tmp_path):
    from salad.cathode import plots

    fpr = np.linspace(0, 1, 11)
    roc = pd.concat(
        [
            pd.DataFrame(
                {"setup": "ID", "signal": "Y400", "instance": i, "classifier": c, "fpr": fpr, "tpr": fpr**0.9}
            )
            for i in (0, 1)
            for c in (0, 1)
        ]
    )
    edges = np.linspace(105, 160, 12)
    mass = pd.concat(
        [
            pd.DataFrame(
                {
                    "setup": "ID",
                    "signal": "Y400",
                    "instance": 0,
                    "ensemble": e,
                    "bin_lo": edges[:-1],
                    "bin_hi": edges[1:],
                    "n_before": np.arange(100, 89, -1),
                    "n_after": np.arange(20, 9, -1) + e,
                }
            )
            for e in (0, 1)
        ]
    )
    write_parquet(roc, tmp_path / "roc.parquet", provenance("t"))
    write_parquet(mass, tmp_path / "mass.parquet", provenance("t"))
    plots.sculpting(
        [tmp_path / "roc.parquet"],
        [tmp_path / "mass.parquet"],
        tmp_path / "s.png",
        signal_region=SR,
        lumi=0.1,
    )
    assert_figure(tmp_path / "s.png")


def sensitivity_table(path, extra=False):
    rows = []
    for setup in ("EP", "ID"):
        for method in ("cathode", "iad", "supervised"):
            for wp in (0.001, 0.01):
                for s in (0.0, 1.0, 3.0, 5.0):
                    row = {
                        "setup": setup,
                        "signal": "Y400",
                        "method": method,
                        "eps_b": wp,
                        "strength": s,
                        "sic_mean": 2 * s,
                        "sic_std": 0.5,
                        "significance_mean": s,
                        "significance_std": 0.3,
                        "n": 2,
                    }
                    if extra:
                        row.update(held_out=setup == "EP", n_bkg_eval=1000, sic_err=0.2, sic_syst=0.1)
                    rows.append(row)
    frame = pd.DataFrame(rows)
    write_parquet(frame, path, provenance("t"))
    return frame


def test_cathode_sic_draws_ceiling_per_working_point(tmp_path, monkeypatch):
    from salad.cathode import plots

    sensitivity_table(tmp_path / "sens.parquet")
    seen = capture(
        monkeypatch,
        lambda fig: {
            "ceilings": sorted(
                round(line.get_ydata()[0], 3)
                for ax in fig.axes
                for line in ax.lines
                if line.get_gid() == "sic_ceiling"
            )
        },
    )
    plots.sic(tmp_path / "sens.parquet", "Y400", tmp_path / "sic.png", setups=["ID", "EP"], lumi=0.1)
    assert seen["ceilings"] == [round(1 / np.sqrt(0.01), 3), round(1 / np.sqrt(0.001), 3)]
    assert_figure(tmp_path / "sic.png")


def test_cathode_required_draws_arrows_for_limits(tmp_path, monkeypatch):
    from salad.cathode import plots

    req = pd.DataFrame(
        [
            {
                "setup": "ID",
                "signal": "Y400",
                "method": "cathode",
                "eps_b": 0.001,
                "required_strength": 2.0,
                "reached": True,
                "required_lo": 1.5,
                "required_hi": 3.0,
            },
            {
                "setup": "EP",
                "signal": "Y400",
                "method": "cathode",
                "eps_b": 0.001,
                "required_strength": 2.5,
                "reached": True,
                "required_lo": 2.0,
                "required_hi": np.inf,
            },
            {
                "setup": "IP",
                "signal": "Y400",
                "method": "cathode",
                "eps_b": 0.001,
                "required_strength": 5.0,
                "reached": False,
                "required_lo": 5.0,
                "required_hi": np.inf,
            },
        ]
    )
    write_parquet(req, tmp_path / "req.parquet", provenance("t"))
    arrows = capture(
        monkeypatch,
        lambda fig: {"n": sum(1 for t in fig.axes[0].texts if getattr(t, "arrow_patch", None) is not None)},
    )
    plots.required(tmp_path / "req.parquet", tmp_path / "req.png", lumi=0.1)
    assert arrows["n"] == 2  # the unbounded upper error and the not-reached setup
    assert_figure(tmp_path / "req.png")


def test_cathode_required_leave_one_model_out_family(tmp_path, monkeypatch):
    """Fig. 7: EP of a model = its EP_m<g> setup's held-out row; other EP_m rows are not drawn."""
    from salad.cathode import plots

    row = {"method": "cathode", "eps_b": 0.001, "reached": True, "required_lo": 1.0, "required_hi": 3.0}
    req = pd.DataFrame(
        [
            {**row, "setup": "ID", "signal": "Y400", "held_out": False, "required_strength": 1.5},
            {**row, "setup": "ID", "signal": "C1N2_300", "held_out": False, "required_strength": 1.5},
            {**row, "setup": "EP_m6", "signal": "Y400", "held_out": True, "required_strength": 2.0},
            {**row, "setup": "EP_m1", "signal": "C1N2_300", "held_out": True, "required_strength": 2.0},
            {**row, "setup": "EP_m1", "signal": "Y400", "held_out": False, "required_strength": 1.1},
            {**row, "setup": "bkg_only", "signal": "Y400", "held_out": True, "required_strength": 2.5},
            {**row, "setup": "IP", "signal": "Y400", "held_out": True, "required_strength": 2.5},
            {
                **row,
                "setup": "EP",
                "signal": "Y400",
                "held_out": True,
                "required_strength": 3.5,
            },  # not the family
            {
                **row,
                "setup": "ID",
                "signal": "Y400",
                "held_out": False,
                "required_strength": 9.0,
                "eps_b": 0.005,
            },
        ]
    )
    write_parquet(req, tmp_path / "req.parquet", provenance("t"))
    seen = capture(
        monkeypatch,
        lambda fig: {
            "labels": fig.axes[0].get_legend_handles_labels()[1],
            "points": sorted(round(float(c.lines[0].get_ydata()[0]), 3) for c in fig.axes[0].containers),
        },
    )
    plots.required(
        tmp_path / "req.parquet",
        tmp_path / "req.png",
        setups=["ID", "bkg_only"],
        family=("EP_m", "EP"),
        working_point=0.001,
    )
    assert seen["points"] == [1.5, 1.5, 2.0, 2.0, 2.5]  # IP, EP, EP_m1 on Y400 and eps_B 0.5 % left out
    assert seen["labels"] == [
        ps.setup_label(s) for s in ("ID", "EP", "bkg_only")
    ]  # bkg_only: no first-signal row
    assert_figure(tmp_path / "req.png")


# ------------------------------------------------------------------ encoder, NPLM, scans, information
def test_encoder_loss_curves(tmp_path):
    from salad.encoder.plots import plot_history

    hist = pd.DataFrame(
        {
            "epoch": [0, 1, 2],
            "train_loss": [3.0, 2.0, 1.5],
            "val_loss": [3.1, 2.2, 1.9],
            "lr": [1e-3, 1e-3, 5e-4],
        }
    )
    plot_history(hist, tmp_path / "loss.png", "ID seed 1")
    assert_figure(tmp_path / "loss.png")


def test_observed_z_uses_toys_then_chi2_log_p_without_floor():
    from salad.nplm import observed_z

    null = np.arange(1.0, 101.0)  # 100 toys
    z, ext = observed_z(np.array([50.5, 5000.0]), null, dof=10.0)
    assert not ext[0] and z[0] == pytest.approx(stats.norm.isf(51 / 101))
    assert ext[1]
    # chi2(10) survival at t = 5000 underflows; the log-p route gives a finite Z well above 37.05
    assert np.isfinite(z[1]) and z[1] > 60
    from salad.nplm import chi2_logsf

    lp = chi2_logsf(np.array([1400.0, 1600.0, 5000.0]), 10.0)
    assert lp[0] == pytest.approx(stats.chi2(10).logsf(1400.0))  # exact where representable
    # asymptotic branch: log Q(5, x) ~ 4 log x - x - log 4! + log(1 + 4/x), x = t/2
    x = 2500.0
    assert lp[2] == pytest.approx(4 * np.log(x) - x - np.log(24) + np.log1p(4 / x), rel=1e-9)
    assert lp[1] - lp[0] == pytest.approx(-100 + 4 * np.log(800 / 700), rel=1e-3)
    assert z[1] == pytest.approx(np.sqrt(-2 * lp[2]), rel=0.01)


def test_nplm_null_and_tsne(tmp_path):
    from salad.nplm import chi2_fit, plot_null, plot_tsne

    rng = np.random.default_rng(0)
    t_null = rng.chisquare(8, 60)
    fits = pd.DataFrame(
        {
            "signal": ["Y400"] * 4 + ["C1N2_300"] * 2,
            "strength": [0, 0, 3, 3, 3, 5],
            "instance": [0, 1, 0, 1, 0, 0],
            "t": [6.0, 9.0, 40.0, 2500.0, 12.0, 30.0],
        }
    )
    plot_null(t_null, chi2_fit(t_null), fits, tmp_path / "null.png", "ID, encoder seed 1", lumi=0.1)
    assert_figure(tmp_path / "null.png")
    x = rng.normal(size=(40, 3))
    plot_tsne(x, x[:, 0], tmp_path / "tsne.png", {"seed": 1, "tsne": {"perplexity": 5}}, "t", lumi=0.1)
    assert_figure(tmp_path / "tsne.png")


def test_dimension_scan_has_no_twin_axis_and_no_floor_value(tmp_path, monkeypatch):
    from salad import scans

    floor = float(stats.norm.isf(1e-300))
    table = pd.DataFrame(
        {
            "dim": [2, 4, 6, 2, 4, 6],
            "setup": ["a", "b", "c"] * 2,
            "signal": ["Y400"] * 3 + ["C1N2_300"] * 3,
            "sic": [1.0, 2.0, 3.0, 1.0, 1.5, 2.0],
            "sic_err": 0.1,
            "z_median": [1.0, 2.0, floor, 0.5, np.inf, 1.5],
            "z_err": 0.0,
            "power": 0.0,
        }
    )
    drawn = capture(
        monkeypatch,
        lambda fig: {
            "n_axes": len(fig.axes),
            "z_values": [y for line in fig.axes[1].lines for y in np.asarray(line.get_ydata(), float)],
        },
    )
    scans.plot(table, str(tmp_path / "scan.png"), "eps")
    assert drawn["n_axes"] == 2
    assert not any(np.isclose(drawn["z_values"], floor)) and all(np.isfinite(drawn["z_values"]))
    assert_figure(tmp_path / "scan.png")


def test_information_confusion_has_names_and_colour_bar(tmp_path, monkeypatch):
    from salad.encoder import information

    groups = np.array([-6, 0, 1])
    mats = {"bdt_latent": np.array([[5, 1, 0], [1, 8, 1], [0, 2, 6]]), "bdt_raw": np.eye(3, dtype=int) * 4}
    seen = capture(
        monkeypatch,
        lambda fig: {
            "labels": [t.get_text() for t in fig.axes[0].get_yticklabels()],
            "n_axes": len(fig.axes),
        },
    )
    information.plot(mats, groups, str(tmp_path / "conf.png"))
    assert seen["labels"] == ["Y → Hγ", "γγ + jets", "ggF H"]
    assert seen["n_axes"] == 3  # two matrices and the colour bar
    assert_figure(tmp_path / "conf.png")
