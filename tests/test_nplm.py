"""NPLM: solver against sklearn, the statistic on known cases, chi2 fit, CLI on synthetic files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import special, stats
from sklearn.linear_model import LogisticRegression

from salad import nplm
from salad.artifacts import read_parquet, write_parquet

torch.set_num_threads(1)
CFG = {"lambda": 1e-6, "n_centers": None, "max_iter": 100, "tol": 1e-10}


def test_newton_solver_matches_sklearn_on_nystrom_features():
    rng = np.random.default_rng(0)
    x_ref, x_data = rng.normal(size=(300, 2)), rng.normal(0.3, 1.0, size=(120, 2))
    w_ref = rng.uniform(0.2, 0.6, size=300)
    lam = 1e-3
    model = nplm.fit(x_ref, w_ref, x_data, sigma=1.0, n_centers=20, lam=lam, seed=1, tol=1e-15)
    assert model.converged
    x = np.concatenate([x_ref, x_data])
    y = np.r_[np.zeros(300), np.ones(120)]
    w = np.r_[w_ref, np.ones(120)]
    phi = model.features(x).numpy()
    # sklearn minimises 1/2 |b|^2 + C sum w BCE; ours (Falkon's convention)
    # (1/n) sum w BCE + (lam/2) |b|^2 -> C = 1/(n lam)
    ref = LogisticRegression(
        C=1 / (len(x) * lam), fit_intercept=False, tol=1e-12, max_iter=200, solver="newton-cholesky"
    )
    ref.fit(phi, y, sample_weight=w)
    np.testing.assert_allclose(model.beta.numpy(), ref.coef_[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model(x), ref.decision_function(phi), atol=1e-6)
    # and the kernel form f = K alpha gives the same predictions
    k = nplm.gaussian_kernel(torch.as_tensor(x), model.centers, 1.0).numpy()
    np.testing.assert_allclose(k @ model.alpha.numpy(), model(x), atol=1e-8)


def test_newton_on_extended_likelihood_matches_scipy():
    """loss='nplm': the minimiser of (1/n)[sum_R w (e^f - 1) - sum_D f] + (lam/2)|b|^2, and t = -2 n min."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(2)
    x_ref, x_data = rng.normal(size=(300, 2)), rng.normal(0.4, 1.0, size=(100, 2))
    w_ref = rng.uniform(0.1, 0.6, size=300)
    lam = 1e-4
    model = nplm.fit(x_ref, w_ref, x_data, 1.0, 15, lam, seed=0, tol=1e-15, loss="nplm")
    phi_r, phi_d = model.features(x_ref).numpy(), model.features(x_data).numpy()
    n = 400

    def obj(b):
        return (np.sum(w_ref * np.expm1(phi_r @ b)) - np.sum(phi_d @ b)) / n + lam / 2 * b @ b

    def grad(b):
        return (phi_r.T @ (w_ref * np.exp(phi_r @ b)) - phi_d.sum(0)) / n + lam * b

    ref = minimize(obj, np.zeros(phi_r.shape[1]), jac=grad, method="BFGS", options={"gtol": 1e-12})
    np.testing.assert_allclose(model.beta.numpy(), ref.x, atol=1e-4)
    t = nplm.test_statistic(model(x_ref), w_ref, model(x_data))
    assert (
        t == pytest.approx(-2 * n * (obj(model.beta.numpy()) - lam / 2 * ref.x @ ref.x), rel=1e-3) and t > 0
    )


def test_tiny_weight_reference_region_keeps_t_sane_with_nplm_loss():
    """Reference events with 1e-3 weights in a region data never reach (MC ttH-like tail)."""
    rng = np.random.default_rng(3)
    x_ref = np.r_[rng.normal(size=(1500, 2)), rng.normal(6.0, 0.5, size=(300, 2))]
    w_ref = np.r_[np.full(1500, 400 / 1500), np.full(300, 1e-3)]
    sigma = nplm.kernel_width(x_ref, 90)
    cfg = {**CFG, "loss": "nplm"}
    ts = [
        nplm.run_test(x_ref, w_ref, rng.normal(size=(rng.poisson(400), 2)), sigma, cfg, s).t
        for s in range(15)
    ]
    assert min(ts) > -1e-6 and max(ts) < 60


def _gauss_setup(n_ref=2000, n_exp=400, seed=0):
    rng = np.random.default_rng(seed)
    x_ref = rng.normal(size=(n_ref, 2))
    w_ref = np.full(n_ref, n_exp / n_ref)
    return rng, x_ref, w_ref, nplm.kernel_width(x_ref, 90)


@pytest.mark.parametrize("loss", ["logistic", "nplm"])
def test_identical_samples_consistent_with_null_and_shift_is_large(loss):
    rng, x_ref, w_ref, sigma = _gauss_setup()
    cfg = {**CFG, "loss": loss}
    null = [
        nplm.run_test(x_ref, w_ref, rng.normal(size=(rng.poisson(400), 2)), sigma, cfg, s).t
        for s in range(40)
    ]
    same = [
        nplm.run_test(x_ref, w_ref, rng.normal(size=(rng.poisson(400), 2)), sigma, cfg, 99 + s).t
        for s in range(12)
    ]  # independent data of the reference's law
    shifted = nplm.run_test(x_ref, w_ref, rng.normal(0.6, 1.0, size=(400, 2)), sigma, cfg, 99).t
    fit = nplm.chi2_fit(np.array(null))
    p_same = [nplm.significance(t, np.array(null), fit["dof"])["p"] for t in same]
    assert np.median(p_same) > 0.1 and stats.ks_2samp(same, null).pvalue > 0.01
    sig = nplm.significance(shifted, np.array(null), fit["dof"])
    assert shifted > 3 * max(null)
    assert sig["z"] > 5 and sig["z_source"] == "chi2_extrapolation"


@pytest.mark.parametrize("loss", ["logistic", "nplm"])
def test_rate_only_excess_is_detected(loss):
    """Data with 40 % more events but the reference shape: the extended term sees it."""
    rng, x_ref, w_ref, sigma = _gauss_setup()
    cfg = {**CFG, "loss": loss}
    t_more = nplm.run_test(x_ref, w_ref, rng.normal(size=(560, 2)), sigma, cfg, 3).t
    t_same = nplm.run_test(x_ref, w_ref, rng.normal(size=(400, 2)), sigma, cfg, 3).t
    assert t_more > t_same + 20


def test_chi2_fit_recovers_dof():
    rng = np.random.default_rng(5)
    out = nplm.chi2_fit(rng.chisquare(7.0, size=2000))
    assert abs(out["dof"] - 7.0) < 0.3 and out["ks_pvalue"] > 0.01
    bad = nplm.chi2_fit(rng.normal(20, 0.5, size=2000))  # far narrower than any chi2
    assert bad["ks_pvalue"] < 1e-6


def test_p_value_counts_toys_as_k_plus_one_over_n_plus_one():
    null = np.arange(1.0, 101.0)  # 100 toys, t = 1..100
    sig = nplm.significance(95.5, null, 10.0)  # toys 96..100 reach it: k = 5
    assert sig["k_toys"] == 5 and sig["n_toys"] == 100 and sig["z_source"] == "toys"
    assert sig["p"] == pytest.approx(6 / 101)
    assert sig["z"] == pytest.approx(stats.norm.isf(6 / 101), rel=1e-10)
    assert sig["log10_p"] == pytest.approx(np.log10(6 / 101))
    tie = nplm.significance(96.0, null, 10.0)  # t >= t_obs counts the tie
    assert tie["k_toys"] == 5 and tie["p"] == pytest.approx(6 / 101)
    low = nplm.significance(-1.0, null, 10.0)  # every toy exceeds: p = 1, Z = -inf
    assert low["p"] == 1.0 and low["z"] == -np.inf
    # pure chi2 columns from logsf, no floor: Z of a huge t is finite and grows with t
    big = nplm.significance(5000.0, null, 10.0)
    assert np.isfinite(big["z_chi2"]) and big["z_chi2"] > 60 and big["p_chi2"] == 0.0
    assert big["z_chi2"] > nplm.significance(1000.0, null, 10.0)["z_chi2"]


@pytest.mark.parametrize("dof", [3.0, 10.0, 25.5])
def test_chi2_logsf_deep_tail(dof):
    # where scipy is still finite the two agree; beyond, the tail keeps falling like the
    # leading term -t/2 + (dof/2 - 1) ln(t/2) - lgamma(dof/2)
    for t in (5.0, 60.0, 800.0, 1100.0, 1250.0):  # 1250: continued fraction vs scipy
        ref = stats.chi2.logsf(t, dof)
        if ref > -650:
            assert nplm.chi2_logsf(t, dof) == pytest.approx(ref, rel=1e-9)
    for t in (3000.0, 1e5):
        a, x = dof / 2, t / 2
        lead = -x + (a - 1) * np.log(x) - special.gammaln(a)
        assert nplm.chi2_logsf(t, dof) == pytest.approx(lead + np.log1p((a - 1) / x), abs=1e-3)


def test_chi2_extrapolation_is_labelled_anchored_and_monotone():
    rng = np.random.default_rng(0)
    null = rng.chisquare(8.0, size=200)
    t_max = null.max()
    dof = 8.0
    beyond = nplm.significance(t_max + 10, null, dof)
    assert beyond["z_source"] == "chi2_extrapolation" and beyond["k_toys"] == 0
    expected = np.log(1 / 201) + stats.chi2(dof).logsf(t_max + 10) - stats.chi2(dof).logsf(t_max)
    assert np.log(beyond["p"]) == pytest.approx(expected, rel=1e-10)
    assert nplm.significance(t_max, null, dof)["z_source"] == "toys"
    # t -> Z non-decreasing over the toys, across the largest toy and far into the tail,
    # also with a fitted dof whose chi2 tail is heavier than the toys' (the old non-monotone case)
    grid = np.r_[np.sort(null), np.linspace(t_max, t_max + 3000, 200)]
    for fit_dof in (dof, 20.0, 3.0):
        z = np.array([nplm.significance(t, null, fit_dof)["z"] for t in grid])
        assert np.all(np.diff(z) >= -1e-12) and np.isfinite(z[-1]) and z[-1] > 20
    just_above = nplm.significance(t_max + 1e-9, null, 20.0)
    assert just_above["p"] == pytest.approx(1 / 201, rel=1e-6)  # continuous at the anchor


def test_toy_draw_poisson_weighted_without_replacement():
    pool = np.arange(1000, dtype=float)[:, None]
    p_a = np.r_[np.zeros(250), np.ones(250)] / 250  # sample A: rows 0..499, half weightless
    p_b = np.ones(500) / 500  # sample B: rows 500..999
    s = nplm.Samples(
        np.zeros((3, 1)),
        np.ones(3),
        pool,
        [(np.arange(500), p_a, 150.0), (np.arange(500, 1000), p_b, 50.0)],
        1.0,
        (np.zeros(1), np.ones(1)),
    )
    assert s.n_expected == 200.0
    n_a, n_b = [], []
    for seed in range(50):
        toy = nplm.draw_toy(s, np.random.default_rng(seed))[:, 0]
        assert len(np.unique(toy)) == len(toy) and not (toy < 250).any()
        n_a.append((toy < 500).sum())
        n_b.append((toy >= 500).sum())
    assert abs(np.mean(n_a) - 150) < 8 and abs(np.mean(n_b) - 50) < 5 and np.std(n_a) > 5


@pytest.fixture()
def synthetic_inputs(tmp_path):
    """Preselected, split, embedding and pseudo-data files of a toy 'experiment' (2D latent)."""
    rng = np.random.default_rng(1)
    files = {"preselected": [], "split": []}
    ids_all, z_all = [], []
    for code, (sample, group, n, shift) in enumerate(
        [("bkgA", 0, 3000, 0.0), ("bkgB", 1, 1000, 1.0), ("sig", -1, 300, 3.0)], start=1
    ):
        ids = code * 10**9 + np.arange(n)
        frame = pd.DataFrame(
            {
                "event_id": ids,
                "sample": sample,
                "group": np.int8(group),
                "weight": np.full(n, 0.2 if group == 0 else 0.1),
                "myy": rng.uniform(105, 160, n).astype(np.float32),
            }
        )
        write_parquet(frame, tmp_path / f"pre_{sample}.parquet", {})
        subset = rng.choice(["train", "val", "test", "data"], size=n, p=[0.3, 0.1, 0.1, 0.5])
        write_parquet(
            pd.DataFrame({"event_id": ids, "subset": subset}), tmp_path / f"split_{sample}.parquet", {}
        )
        if group >= 0:
            files["preselected"].append(str(tmp_path / f"pre_{sample}.parquet"))
            files["split"].append(str(tmp_path / f"split_{sample}.parquet"))
        ids_all.append(ids)
        z_all.append(rng.normal(shift, 1.0, size=(n, 2)))
    ids_all, z_all = np.concatenate(ids_all), np.concatenate(z_all)
    emb = pd.DataFrame(
        {"event_id": ids_all, "z0": z_all[:, 0].astype(np.float32), "z1": z_all[:, 1].astype(np.float32)}
    )
    write_parquet(emb, tmp_path / "emb.parquet", {})
    return tmp_path, files


def test_cli_fit_toys_summary(synthetic_inputs):
    tmp, files = synthetic_inputs
    # expected background: L * sum(weight) = 1.0 * (3000*0.2 + 1000*0.1) = 700 events
    cfg = {
        "nplm": {
            "reference_subsets": ["test"],
            "kernel_percentile": 90,
            "lambda": 1e-6,
            "n_centers": None,
            "max_iter": 100,
            "tol": 1e-10,
            "seed": 3,
            "toys_per_batch": 6,
            "z_threshold": 3.0,
            "standardize": True,
            "include_myy": False,
            "loss": "nplm",
            "max_reference": None,
        },
        "pseudodata": {"luminosity_ifb": 1.0},
    }
    split = read_parquet(files["split"][0], None)
    data_ids = split.loc[split["subset"] == "data", "event_id"].to_numpy()[:700]
    sig_ids = 3 * 10**9 + np.arange(150)
    pseudo = pd.DataFrame(
        {
            "event_id": np.r_[data_ids, sig_ids],
            "sample": ["bkgA"] * len(data_ids) + ["sig"] * 150,
            "myy": np.float32(125.0),
            "is_signal": np.r_[np.zeros(len(data_ids), bool), np.ones(150, bool)],
            "group": np.int8(0),
        }
    )
    write_parquet(pseudo, tmp / "sig" / "5" / "0.parquet", {})
    common = [
        "--embedding",
        str(tmp / "emb.parquet"),
        "--preselected",
        *files["preselected"],
        "--split",
        *files["split"],
        "--config",
        json.dumps(cfg),
    ]
    nplm.cli(
        ["fit", *common, "--data", str(tmp / "sig" / "5" / "0.parquet"), "--output-dir", str(tmp / "fits")]
    )
    for b in (0, 1):
        nplm.cli(["toys", *common, "--batch", str(b), "--output", str(tmp / f"toys{b}.parquet")])
    toys = pd.concat(
        [
            read_parquet(tmp / f"toys{b}.parquet", {"toy": "int", "t": "float", "n_data": "int"})
            for b in (0, 1)
        ]
    )
    assert sorted(toys["toy"]) == list(range(12)) and (toys["t"] > -1e-6).all()
    assert abs(toys["n_data"].mean() - 700) < 4 * np.sqrt(700 / 12) + 5
    scores = read_parquet(tmp / "fits/sig/5/0/scores.parquet", {"event_id": "int", "f": "float"})
    f_sig = scores.set_index("event_id").loc[sig_ids, "f"].mean()
    assert f_sig > scores["f"].median() + 1.0  # f(x) is large where the excess sits
    out = {k: str(tmp / f"{k}.out") for k in ("table", "power", "null", "markdown", "plot")}
    nplm.cli(
        [
            "summary",
            "--fits",
            str(tmp / "fits/sig/5/0/fit.parquet"),
            "--toys",
            str(tmp / "toys0.parquet"),
            str(tmp / "toys1.parquet"),
            "--name",
            "synthetic",
            "--seed",
            "2",
            *[a for k, v in out.items() for a in (f"--{k}", v)],
            "--config",
            json.dumps(cfg),
        ]
    )
    labelled = read_parquet(out["table"], None)
    assert not labelled["trained_on_signals"].any()
    assert set(labelled["z_source"]) <= {"toys", "chi2_extrapolation"}
    table = read_parquet(out["table"], {"t": "float", "z": "float"})
    assert table["t"].iloc[0] > toys["t"].max() and table["z"].iloc[0] > 3
    power = read_parquet(out["power"], {"representation": "str", "seed": "int", "power": "float"})
    assert power["power"].iloc[0] == 1.0 and power["seed"].iloc[0] == 2
    assert read_parquet(out["power"], None)["dim"].iloc[0] == 2 == labelled["dim"].iloc[0]  # the 2-D latent
    assert open(out["plot"], "rb").read(4) == b"\x89PNG"


def test_tsne_plot(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    nplm.plot_tsne(
        x,
        x[:, 0],
        str(tmp_path / "t.png"),
        {"seed": 0, "tsne": {"method": "tsne", "max_points": 80, "perplexity": 10, "min_score": -1.0}},
        "toy",
    )
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_umap_map_is_seeded_and_keeps_local_structure(tmp_path):
    """UMAP (paper B fig. V) is deterministic with a seed and keeps well-separated clusters apart;
    the plot shows only points with f > min_score."""
    rng = np.random.default_rng(1)
    x = np.r_[rng.normal(0, 0.3, (60, 4)), rng.normal(5, 0.3, (60, 4))]
    a, b = nplm.embed_2d(x, "umap", 3, n_neighbors=10), nplm.embed_2d(x, "umap", 3, n_neighbors=10)
    np.testing.assert_allclose(a, b)
    centre = lambda e: e.mean(0)  # noqa: E731
    gap = np.linalg.norm(centre(a[:60]) - centre(a[60:]))
    spread = max(
        np.linalg.norm(a[:60] - centre(a[:60]), axis=1).mean(),
        np.linalg.norm(a[60:] - centre(a[60:]), axis=1).mean(),
    )
    assert gap > 3 * spread
    f = np.r_[np.zeros(60), np.ones(60)]
    tsne = {"method": "umap", "max_points": 100, "n_neighbors": 10, "min_score": 0.5}
    nplm.plot_tsne(x, f, str(tmp_path / "u.png"), {"seed": 0, "tsne": tsne}, "toy")
    assert (tmp_path / "u.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(nplm.SaladError, match="umap, tsne"):
        nplm.embed_2d(x, "pca", 0)


def test_dimension_scan_reads_sic_with_either_column_names(tmp_path):
    from salad import scans

    base = pd.DataFrame(
        {
            "signal": "Y400",
            "method": ["cathode", "cathode", "iad", "cathode"],
            "eps_b": [0.001, 0.005, 0.001, 0.001],
            "strength": [5.0, 5.0, 5.0, 2.0],
            "sic": [4.0, 2.0, 9.0, 1.0],
            "sic_std": [0.5, 0.1, 0.1, 0.1],
        }
    )
    for i, (setup_col, sic_col) in enumerate([("setup", "sic_mean"), ("encoder", "SIC")]):
        frame = pd.concat([base.assign(s="ID_d2"), base.assign(s="ID", sic=base["sic"] * 2)])
        frame = frame.rename(columns={"s": setup_col, "sic": sic_col})
        write_parquet(frame, tmp_path / f"sic{i}.parquet", {})
        sic = scans.read_sic_table(str(tmp_path / f"sic{i}.parquet"), eps_b=0.001)
        assert dict(zip(sic["setup"], sic["sic"])) == {"ID": 8.0, "ID_d2": 4.0}  # cathode, 1e-3, S=5
        assert (sic["sic_err"] == 0.5).all()
    power = pd.DataFrame(
        {
            "representation": ["ID", "ID_d2"],
            "seed": 1,
            "signal": "Y400",
            "strength": 5.0,
            "z_median": [3.5, 1.0],
            "power": [1.0, 0.0],
        }
    )
    for i in range(2):
        write_parquet(power.iloc[[i]], tmp_path / f"p{i}.parquet", {})
    cfg = {"dimension_scan": {"setups": {"2": "ID_d2", "6": "ID"}, "eps_b": 0.001, "strength": None}}
    out = {k: str(tmp_path / f"scan.{k}") for k in ("table", "markdown", "plot")}
    scans.cli(
        [
            "--sic",
            str(tmp_path / "sic0.parquet"),
            "--nplm",
            str(tmp_path / "p0.parquet"),
            str(tmp_path / "p1.parquet"),
            *[a for k, v in out.items() for a in (f"--{k}", v)],
            "--config",
            json.dumps(cfg),
            "--trained-on-signals",
            "ID",
        ]
    )
    table = read_parquet(out["table"], None)
    assert list(table["dim"]) == [2, 6] and list(table["sic"]) == [4.0, 8.0]
    assert list(table["trained_on_signals"]) == [False, True]  # every row says how it was trained
    assert (table["family"] == "cathode").all() and table["z_median"].isna().all()  # SIC only
    # paper B families: NPLM Z and linear accuracy (mean +- SEM over seeds) of background-only setups
    runs = pd.DataFrame(
        {
            "representation": ["sim_d4", "sim_d4", "sim_d8"],
            "seed": [1, 2, 1],
            "trained_on_signals": False,
            "dim": [4, 4, 8],
            "accuracy": [0.5, 0.7, 0.8],
            "accuracy_sem": 0.01,
            "balanced_accuracy": 0.4,
            "balanced_accuracy_sem": 0.0,
        }
    )
    lin = []
    for i in range(len(runs)):
        write_parquet(runs.iloc[[i]], tmp_path / f"l{i}.parquet", {})
        lin.append(str(tmp_path / f"l{i}.parquet"))
    zf = pd.DataFrame(
        {
            "representation": ["sim_d4", "sim_d8"],
            "seed": 1,
            "signal": "Y400",
            "strength": 5.0,
            "z_median": [2.0, 4.0],
            "power": [0.0, 1.0],
        }
    )
    write_parquet(zf, tmp_path / "zf.parquet", {})
    cfg["dimension_scan"]["families"] = {"simclr": {"4": "sim_d4", "8": "sim_d8"}}
    scans.cli(
        [
            "--sic",
            str(tmp_path / "sic0.parquet"),
            "--nplm",
            str(tmp_path / "zf.parquet"),
            "--linear",
            *lin,
            *[a for k, v in out.items() for a in (f"--{k}", v)],
            "--config",
            json.dumps(cfg),
        ]
    )
    table = read_parquet(out["table"], None, finite=False)
    fam = table[table["family"] == "simclr"].sort_values("dim")
    assert table["trained_on_signals"].dtype == bool and not table["trained_on_signals"].any()
    assert list(fam["z_median"]) == [2.0, 4.0] and list(fam["accuracy"]) == pytest.approx([0.6, 0.8])
    assert fam["accuracy_sem"].iloc[0] == pytest.approx(np.std([0.5, 0.7], ddof=1) / np.sqrt(2))
    assert np.isnan(fam["accuracy_sem"].iloc[1])
    assert "simclr" in open(out["markdown"]).read() and open(out["plot"], "rb").read(4) == b"\x89PNG"


def test_reference_is_withheld_from_embedding_training(synthetic_inputs):
    """Reference event ids are disjoint from every id an encoder (or the VAE) trains on."""
    from salad.encoder.train import TRAINING_SUBSETS

    tmp, files = synthetic_inputs
    assert set(nplm.EMBEDDING_TRAINING_SUBSETS) == set(TRAINING_SUBSETS)
    cfg = {"reference_subsets": ["test"], "kernel_percentile": 90, "seed": 3, "max_reference": None}
    samples = nplm.prepare(str(tmp / "emb.parquet"), files["preselected"], files["split"], cfg, 1.0)
    split = pd.concat([read_parquet(p, None) for p in files["split"]])
    training_ids = set(split.loc[split["subset"].isin(TRAINING_SUBSETS), "event_id"])
    test_ids = set(split.loc[split["subset"] == "test", "event_id"])
    assert len(samples.ref_ids) == len(samples.x_ref) > 100
    assert not set(samples.ref_ids.tolist()) & training_ids
    assert set(samples.ref_ids.tolist()) == test_ids  # every background test event, no signal
    for bad in (["train", "val", "test"], ["val"]):
        with pytest.raises(nplm.SaladError, match="nplm.reference_subsets"):
            nplm.prepare(
                str(tmp / "emb.parquet"),
                files["preselected"],
                files["split"],
                {**cfg, "reference_subsets": bad},
                1.0,
            )


def test_kernel_rule_per_representation(synthetic_inputs):
    """nplm.kernel_widths: a fixed sigma or another percentile for the representations it names."""
    tmp, files = synthetic_inputs
    base = {
        "reference_subsets": ["test"],
        "kernel_percentile": 90,
        "seed": 3,
        "max_reference": None,
        "kernel_widths": {"baseline_vae": {"sigma": 0.7}, "simclr_mlp": {"percentile": 50}},
    }
    assert nplm.kernel_rule(base, "baseline_leading") == {
        k: v for k, v in base.items() if k != "kernel_widths"
    }
    assert nplm.kernel_rule(base, "baseline_vae")["kernel_sigma"] == 0.7
    assert nplm.kernel_rule(base, "simclr_mlp")["kernel_percentile"] == 50.0
    emb, pre, split = str(tmp / "emb.parquet"), files["preselected"], files["split"]
    default = nplm.prepare(emb, pre, split, nplm.kernel_rule(base, "baseline_leading"), 1.0)
    fixed = nplm.prepare(emb, pre, split, nplm.kernel_rule(base, "baseline_vae"), 1.0)
    median = nplm.prepare(emb, pre, split, nplm.kernel_rule(base, "simclr_mlp"), 1.0)
    # by hand: percentiles of the pairwise distances of the (unstandardised) reference
    x = default.x_ref
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))[np.triu_indices(len(x), 1)]
    assert len(x) <= 2000  # kernel_width uses every reference point
    assert default.sigma == pytest.approx(np.percentile(d, 90), rel=1e-9)
    assert median.sigma == pytest.approx(np.percentile(d, 50), rel=1e-9)
    assert fixed.sigma == 0.7
    for bad in ({"sigma": 1.0, "percentile": 50}, {"width": 1.0}, {"sigma": -1.0}, {"percentile": 150}):
        with pytest.raises(nplm.SaladError, match="nplm.kernel_widths.baseline_vae"):
            nplm.kernel_rule({**base, "kernel_widths": {"baseline_vae": bad}}, "baseline_vae")


def test_cli_applies_the_representation_kernel_rule(synthetic_inputs):
    tmp, files = synthetic_inputs
    cfg = {
        "nplm": {
            "reference_subsets": ["test"],
            "kernel_percentile": 90,
            "lambda": 1e-6,
            "n_centers": 20,
            "max_iter": 50,
            "tol": 1e-10,
            "seed": 3,
            "toys_per_batch": 1,
            "max_reference": 300,
            "kernel_widths": {"baseline_vae": {"sigma": 0.5}},
        },
        "pseudodata": {"luminosity_ifb": 1.0},
    }
    common = [
        "--embedding",
        str(tmp / "emb.parquet"),
        "--preselected",
        *files["preselected"],
        "--split",
        *files["split"],
        "--config",
        json.dumps(cfg),
    ]
    for name in ("baseline_vae", "other"):
        nplm.cli(
            [
                "toys",
                *common,
                "--batch",
                "0",
                "--output",
                str(tmp / f"{name}.parquet"),
                "--representation",
                name,
            ]
        )
    sigma = {
        n: read_parquet(tmp / f"{n}.parquet", {"sigma": "float"})["sigma"].iloc[0]
        for n in ("baseline_vae", "other")
    }
    assert sigma["baseline_vae"] == 0.5
    assert sigma["other"] == pytest.approx(
        nplm.prepare(str(tmp / "emb.parquet"), files["preselected"], files["split"], cfg["nplm"], 1.0).sigma
    )
    assert sigma["other"] != 0.5
