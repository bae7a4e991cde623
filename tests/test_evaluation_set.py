"""The evaluation set and paper A's ensemble: split shares, yields, working points with
errors, held-out bookkeeping, pooled templates, ensembles across encoders, references as
ceilings."""

import numpy as np
import pandas as pd
import pytest

from salad import evalset, split
from salad.artifacts import provenance, write_parquet
from salad.cathode import classify, metrics, template
from salad.encoder.setups import held_out, resolve_setup

SR = (120.0, 130.0)


# ---------------------------------------------------------------- split shares


def test_evaluation_fraction_takes_only_from_the_pseudodata_half():
    ids = np.arange(200_000, dtype=np.int64)
    plain = split.assign(ids, 1, 7, 0.5)
    shared = split.assign(ids, 1, 7, 0.5, evaluation_fraction=0.25)
    encoder = np.isin(plain, ["train", "val", "test"])
    # the encoder half is untouched; eval events come only out of `data`
    assert (plain[encoder] == shared[encoder]).all()
    assert set(plain[(shared == "eval")]) == {"data"}
    assert (shared == "eval").mean() == pytest.approx(0.5 * 0.25, abs=0.003)
    assert (shared == "data").mean() == pytest.approx(0.5 * 0.75, abs=0.003)


def test_evaluation_only_sample_is_reference_or_eval():
    ids = np.arange(100_000, dtype=np.int64)
    subset = split.split_frame(
        ids,
        {"seed": 1, "encoder_fraction": 0.5, "train_val_test": [0.6, 0.2, 0.2]},
        6,
        {"reference_fraction": 0.1},
        evaluation_only=True,
    )["subset"]
    assert set(subset) == {"ref", "eval"}
    assert (subset == "ref").mean() == pytest.approx(0.1, abs=0.003)


# ---------------------------------------------------------------- the evaluation-set stage


def _sample(root, name, code, group, n, myy, weight, subsets):
    ids = code * 10**9 + np.arange(n)
    presel = root / f"{name}.parquet"
    splitp = root / f"{name}.split.parquet"
    write_parquet(
        pd.DataFrame(
            {"event_id": ids, "sample": name, "group": group, "weight": np.full(n, weight), "myy": myy}
        ),
        presel,
        provenance("test"),
    )
    write_parquet(pd.DataFrame({"event_id": ids, "subset": subsets}), splitp, provenance("test"))
    return presel, splitp


def test_build_weights_stand_for_the_whole_sample(tmp_path):
    rng = np.random.default_rng(0)
    n = 4000
    # background: 1/4 of the events in `eval`, all at 125 GeV, 2 events per fb^-1 in all
    bkg = _sample(
        tmp_path,
        "bkg",
        1,
        0,
        n,
        np.full(n, 125.0),
        2.0 / n,
        rng.choice(["train", "data", "eval"], n, p=[0.5, 0.25, 0.25]),
    )
    sig = _sample(
        tmp_path, "SIG", 9, -1, 100, np.r_[np.full(50, 125.0), np.full(50, 140.0)], 0.01, ["eval"] * 100
    )
    frame = evalset.build({"bkg": bkg}, {"SIG": sig}, SR)
    background = frame[~frame["is_signal"]]
    assert background["weight"].sum() == pytest.approx(2.0)  # the whole sample's yield
    assert len(background) == int((pd.read_parquet(bkg[1])["subset"] == "eval").sum())
    signal = frame[frame["is_signal"]]
    assert len(signal) == 50 and signal["myy"].between(*SR).all()  # SR rows only
    assert signal["weight"].sum() == pytest.approx(0.5)  # 50 of 100 events x 0.01 x 100/100


def test_yield_check_pull_is_the_difference_over_its_error(tmp_path):
    main = _sample(tmp_path, "main", 1, 0, 400, np.full(400, 125.0), 0.25, ["data"] * 400)
    new = _sample(tmp_path, "new", 6, 0, 100, np.full(100, 125.0), 1.1, ["eval"] * 100)
    check = evalset.yield_check(new, [main], SR)
    # yields 110 +- sqrt(100 * 1.1^2) = 11 and 100 +- sqrt(400 * 0.25^2) = 5
    assert check["yield_per_ifb"] == pytest.approx(110.0)
    assert check["main_yield_per_ifb"] == pytest.approx(100.0)
    assert check["pull"] == pytest.approx(10.0 / np.hypot(11.0, 5.0))


# ---------------------------------------------------------------- working points


def test_working_points_hand_computed():
    # sorted by score: S B B S B B B B B B (weights 1). eps_B = 0.25 is the cut score >= 7
    # (2 of 8 background events), which keeps both signal events; eps_B = 0.125 keeps 1 of 2
    scores = np.array([10, 9, 8, 7, 6, 5, 4, 3, 2, 1], float)
    labels = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 0], bool)
    out = metrics.working_points(scores, labels, [0.25, 0.125, 0.5])
    assert out["eps_s"] == pytest.approx([1.0, 0.5, 1.0])
    assert out["sic"] == pytest.approx([1.0 / 0.5, 0.5 / np.sqrt(0.125), 1.0 / np.sqrt(0.5)])
    assert list(out["n_bkg_pass"]) == [2, 1, 4]
    # the SIC definition agrees with the single-point helper
    assert out["sic"][0] == pytest.approx(metrics.sic(scores, labels, 0.25))


def test_working_point_error_is_binomial_for_a_fixed_cut():
    # background scores all below signal region: the cut position is fixed by the background;
    # half of the signal passes, so sigma(eps_S) ~ sqrt(0.25 / n_sig)
    rng = np.random.default_rng(1)
    n_bkg, n_sig = 20000, 2000
    bkg = rng.uniform(0, 1, n_bkg)
    sig = np.r_[rng.uniform(1.5, 2.0, n_sig // 2), rng.uniform(0.0, 0.5, n_sig // 2)]
    scores = np.r_[bkg, sig]
    labels = np.r_[np.zeros(n_bkg, bool), np.ones(n_sig, bool)]
    out = metrics.working_points(scores, labels, [0.01], n_boot=200, seed=3)
    assert out["eps_s"][0] == pytest.approx(0.5, abs=0.01)
    assert out["eps_s_err"][0] == pytest.approx(np.sqrt(0.25 / n_sig), rel=0.25)
    assert out["sic_err"][0] == pytest.approx(out["eps_s_err"][0] / 0.1)


# ---------------------------------------------------------------- held-out bookkeeping

GROUPS = {"yy": 0, "ggH": 1, "C1N2_200": -1, "C1N2_300": -1, "Y300": -6, "Y400": -6}
ENCODER = {
    "defaults": {},
    "setups": {
        "ID": {},
        "IP": {"holdout_samples": ["Y400"]},
        "EP": {"holdout_groups": [-1]},
        "bkg_only": {"signals": False},
    },
}


@pytest.mark.parametrize(
    "setup, signal, expected",
    [
        ("ID", "C1N2_300", False),
        ("ID", "Y400", False),
        ("IP", "Y400", True),
        ("IP", "Y300", False),
        ("IP", "C1N2_300", False),
        ("EP", "C1N2_300", True),
        ("EP", "C1N2_200", True),
        ("EP", "Y400", False),
        ("bkg_only", "C1N2_300", True),
        ("bkg_only", "Y400", True),
    ],
)
def test_held_out_truth_table(setup, signal, expected):
    assert held_out(resolve_setup(ENCODER, setup, GROUPS), signal) is expected


def test_baselines_are_held_out():
    assert held_out(None, "Y400") is True


# ---------------------------------------------------------------- paper A's ensemble


def test_template_pools_every_flow(monkeypatch):
    """Each flow samples every len(flows)-th template mass: one estimate from all flows."""

    def fake_sample(model, ckpt, masses, seed):
        return np.full((len(masses), 2), float(model))

    monkeypatch.setattr(template.flowmod, "sample", fake_sample)
    rng = np.random.default_rng(0)
    sr_data = pd.DataFrame({"myy": rng.uniform(*SR, 500)})
    ckpt = {"latent_columns": ["z0", "z1"]}
    out = template.build(sr_data, [(0, ckpt), (1, ckpt), (2, ckpt)], None, SR, 1.0, {"oversample": 3}, seed=1)
    z = out.loc[out["source"] == "flow", "z0"].to_numpy()
    assert len(z) == 1500
    assert np.bincount(z.astype(int)).tolist() == [500, 500, 500]
    assert (z[:6] == [0, 1, 2, 0, 1, 2]).all()


def test_ensembles_are_drawn_across_encoders():
    """Classifiers are ordered encoder-major (2 encoders x 2 BDTs); random groups of 2 must
    mix encoders for some seeds and always use each classifier at most once."""
    mixed = 0
    for seed in range(40):
        groups = metrics.ensembles(4, 2, seed)
        assert sorted(np.concatenate(groups).tolist()) == [0, 1, 2, 3]
        mixed += any(len({int(i) // 2 for i in g}) == 2 for g in groups)
    assert 10 < mixed < 40


def test_evaluation_rows_use_the_fold_mean():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1.0, 1.0, (300, 2)), rng.normal(size=(600, 2))
    X_eval = rng.normal(size=(40, 2))
    res = classify.kfold_scores(
        pos,
        neg,
        np.ones(600),
        {"folds": 3, "bdts": 1, "lightgbm": {"n_estimators": 30, "num_leaves": 5}},
        seeds=[5],
        fold_seed=2,
        keep_models=True,
        X_eval=X_eval,
    )
    mean = np.mean([m.predict_proba(X_eval)[:, 1] for m in res["models"][0]], axis=0)
    assert res["eval"][:, 0] == pytest.approx(mean)


def test_idealized_detector_is_a_ceiling_for_a_mismodelled_template():
    """Toy: background N(0, 1) in 2-d, signal N(2, 0.5). CATHODE's template is a slightly
    wrong background model (shifted and wider); the idealized detector gets true background
    samples. On an independent evaluation set the idealized SIC must not be below CATHODE's
    (within the statistical errors)."""
    rng = np.random.default_rng(4)
    data = np.r_[rng.normal(size=(3000, 2)), rng.normal(2.0, 0.5, (300, 2))]
    template_x = rng.normal(0.15, 1.15, (6000, 2))
    truth_x = rng.normal(size=(6000, 2))
    eval_x = np.r_[rng.normal(size=(20_000, 2)), rng.normal(2.0, 0.5, (2000, 2))]
    eval_y = np.r_[np.zeros(20_000, bool), np.ones(2000, bool)]
    cfg = {"folds": 3, "bdts": 2, "lightgbm": {"n_estimators": 60, "num_leaves": 7}}
    sic = {}
    for name, negatives in (("cathode", template_x), ("iad", truth_x)):
        res = classify.kfold_scores(
            data, negatives, np.ones(len(negatives)), cfg, seeds=[1, 2], fold_seed=3, X_eval=eval_x
        )
        sic[name] = metrics.working_points(res["eval"].mean(1), eval_y, [0.01], n_boot=30, seed=1)
    err = np.hypot(sic["cathode"]["sic_err"][0], sic["iad"]["sic_err"][0])
    assert sic["iad"]["sic"][0] >= sic["cathode"]["sic"][0] - 2 * err
    assert sic["iad"]["n_bkg_pass"][0] >= 100
