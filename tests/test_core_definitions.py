"""Physics-core helpers pinned to independent re-implementations of their definitions.

Written from the survivors of `make mutate` (issue 20, docs/testing.md): each test fails if a
constant, comparison or formula of the module is changed. The references below are written
from the definitions in the docstrings (plain Python integers / floats), not from the code.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from salad.cathode import classify, flow, template
from salad.encoder import setups as setups_mod
from salad.errors import SaladError
from salad.split import assign, assign_evaluation_only, hash_uniform, split_frame

# ---------------------------------------------------------------- split: SplitMix64 hash

MASK = (1 << 64) - 1


def splitmix64(x: int) -> int:
    """SplitMix64 finaliser (Steele, Lea, Flood 2014) on a Python int modulo 2^64."""
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def reference_uniform(event_id: int, *keys: int) -> float:
    """u = top 53 bits of mix(id ^ state) / 2^53, state = mix(... mix(0 ^ key1) ^ key2 ...)."""
    state = 0
    for key in keys:
        state = splitmix64(state ^ (key & MASK))
    return (splitmix64((event_id & MASK) ^ state) >> 11) / 2.0 ** 53


# ids spanning sign (two's complement view), large values and zero
HASH_IDS = [0, 1, 2, 12345, 7 * 10**9 + 3, 2**62 + 17, -1, -(2**40)]


def test_hash_uniform_is_splitmix64_of_id_and_keys():
    for keys in [(), (1,), (1, 7), (2**63 + 5, 3), (-3, 11)]:
        got = hash_uniform(np.array(HASH_IDS, np.int64), *keys)
        assert got.dtype == np.float64
        want = [reference_uniform(i, *keys) for i in HASH_IDS]
        np.testing.assert_array_equal(got, want)
    # a hand-checkable value: mix(0) = 0xE220A8397B1DCDAF (the first SplitMix64 output for
    # seed 0), so u(id=0, no keys) = 0xE220A8397B1DCDAF >> 11 / 2^53
    assert splitmix64(0) == 0xE220A8397B1DCDAF
    assert hash_uniform(np.array([0]))[0] == (0xE220A8397B1DCDAF >> 11) / 2.0 ** 53


def reference_subset(u: float, encoder_fraction: float, tvt, evaluation_fraction: float) -> str:
    """Definition in salad.split's docstring."""
    if u < encoder_fraction:
        v = u / encoder_fraction
        return "train" if v < tvt[0] else "val" if v < tvt[0] + tvt[1] else "test"
    rest = (u - encoder_fraction) / (1.0 - encoder_fraction)
    return "eval" if rest < evaluation_fraction else "data"


@pytest.mark.parametrize("encoder_fraction, tvt, evaluation_fraction",
                         [(0.5, (0.6, 0.2, 0.2), 0.0), (0.3, (0.5, 0.3, 0.2), 0.25),
                          (0.7, (0.2, 0.2, 0.6), 0.5)])
def test_assign_follows_the_definition_event_by_event(encoder_fraction, tvt, evaluation_fraction):
    ids = 7 * 10**9 + np.arange(3000, dtype=np.int64)
    got = assign(ids, 5, 9, encoder_fraction, tvt, evaluation_fraction)
    want = [reference_subset(reference_uniform(int(i), 5, 9), encoder_fraction, tvt,
                             evaluation_fraction) for i in ids]
    np.testing.assert_array_equal(got, want)
    frame = split_frame(ids, {"seed": 5, "encoder_fraction": encoder_fraction,
                              "train_val_test": list(tvt)}, 9,
                        {"fraction": evaluation_fraction, "reference_fraction": 0.9})
    assert list(frame.columns) == ["event_id", "subset"]
    assert frame["event_id"].dtype == np.int64 and str(frame["subset"].dtype) == "string"
    np.testing.assert_array_equal(frame["event_id"], ids)
    np.testing.assert_array_equal(frame["subset"].to_numpy(str), want)


def test_assign_evaluation_only_follows_the_definition():
    ids = np.arange(2000, dtype=np.int64) - 1000
    for fraction in (0.0, 0.3):
        want = ["ref" if reference_uniform(int(i), 4, 2) < fraction else "eval" for i in ids]
        got = assign_evaluation_only(ids, 4, 2, fraction)
        np.testing.assert_array_equal(got, want)
        frame = split_frame(ids, {"seed": 4, "encoder_fraction": 0.5,
                                  "train_val_test": [0.6, 0.2, 0.2]}, 2,
                            {"fraction": 0.9, "reference_fraction": fraction}, evaluation_only=True)
        np.testing.assert_array_equal(frame["subset"].to_numpy(str), want)
    # no evaluation section: reference_fraction 0 -> everything eval; fraction 0 -> no eval
    assert set(split_frame(ids, {"seed": 4}, 2, None, evaluation_only=True)["subset"]) == {"eval"}
    plain = split_frame(ids, {"seed": 4, "encoder_fraction": 0.5,
                              "train_val_test": [0.6, 0.2, 0.2]}, 2)
    assert "eval" not in set(plain["subset"])


@pytest.mark.parametrize("call, message", [
    (lambda: assign([1], 1, 7, 0.5, (0.6, 0.2, 0.3)),
     r"^split.train_val_test: three positive fractions summing to 1, got \[0.6, 0.2, 0.3\]$"),
    (lambda: assign([1], 1, 7, 0.5, (0.6, 0.4)), "three positive fractions"),
    (lambda: assign([1], 1, 7, 0.5, (1.0, 0.0, 0.0)), "three positive fractions"),
    (lambda: assign([1], 1, 7, 0.0), r"^split.encoder_fraction: must be in \(0, 1\), got 0.0$"),
    (lambda: assign([1], 1, 7, 1.0), "encoder_fraction"),
    (lambda: assign([1], 1, 7, 0.5, evaluation_fraction=1.0),
     r"^evaluation.fraction: must be in \[0, 1\), got 1.0$"),
    (lambda: assign([1], 1, 7, 0.5, evaluation_fraction=-0.1), "evaluation.fraction"),
    (lambda: assign_evaluation_only([1], 1, 7, 1.0),
     r"^evaluation.reference_fraction: must be in \[0, 1\), got 1.0$"),
    (lambda: assign_evaluation_only([1], 1, 7, -0.5), "reference_fraction"),
])
def test_split_fraction_errors_name_the_key(call, message):
    with pytest.raises(SaladError, match=message):
        call()
    # the boundary values that are allowed
    assign([1], 1, 7, 0.5, (0.6, 0.2, 0.2), 0.0)
    assign_evaluation_only([1], 1, 7, 0.0)


# ---------------------------------------------------------------- encoder setups
GROUPS = {"yy": 0, "ggH": 1, "C1N2_200": -1, "C1N2_300": -1, "Y400": -6}


def test_resolve_setup_is_defaults_then_config_defaults_then_setup():
    enc = {"seeds": [3], "defaults": {"width": 16, "heads": 2, "lr": 1.0, "seeds": [9]},
           "setups": {"A": {"lr": 2.0, "holdout_groups": [-1], "seeds": [4]}, "B": None}}
    got = setups_mod.resolve_setup(enc, "A", GROUPS)
    want = {**setups_mod.DEFAULTS, "width": 16, "heads": 2, "lr": 2.0, "holdout_groups": [-1],
            "setup": "A", "train_samples": {"yy": 0, "ggH": 1, "Y400": -6}}
    assert got == want
    assert type(got["train_samples"]["yy"]) is int
    # a copy: editing the result touches neither DEFAULTS nor the config
    got["augmentations"]["mask"] = 1.0
    got["holdout_groups"].append(5)
    got["vicreg"]["invariance"] = 0.0
    assert setups_mod.DEFAULTS["augmentations"] == {} and enc["setups"]["A"]["holdout_groups"] == [-1]
    assert setups_mod.DEFAULTS["vicreg"]["invariance"] == 25.0
    # an empty (None) setup entry is the defaults; background-only keeps group 0 (>= 0)
    b = setups_mod.resolve_setup(enc, "B", GROUPS)
    assert b["lr"] == 1.0 and b["train_samples"] == GROUPS and b["setup"] == "B"
    bkg = setups_mod.resolve_setup({"setups": {"bkg": {"signals": False}}}, "bkg", GROUPS)
    assert bkg["train_samples"] == {"yy": 0, "ggH": 1}
    ip = setups_mod.resolve_setup({"setups": {"IP": {"holdout_samples": ["C1N2_300"]}}}, "IP", GROUPS)
    assert ip["train_samples"] == {"yy": 0, "ggH": 1, "C1N2_200": -1, "Y400": -6}


def test_seeds_setup_names_and_held_out():
    enc = {"seeds": [3, 4], "setups": {"B": {}, "A": {"seeds": [7]}, "C": None}}
    assert setups_mod.setup_names(enc) == ["B", "A", "C"] and setups_mod.setup_names({}) == []
    assert setups_mod.seeds_for(enc, "A") == [7] and setups_mod.seeds_for(enc, "B") == [3, 4]
    assert setups_mod.seeds_for(enc, "C") == [3, 4]
    assert setups_mod.seeds_for({"setups": {"X": {}}}, "X") == [1]
    assert setups_mod.seeds_for({"setups": {"X": {"seeds": ["2"]}}}, "X") == [2]
    with pytest.raises(SaladError, match=r"^encoder.setups: unknown setup 'Z'; configured: B, A, C$"):
        setups_mod.seeds_for(enc, "Z")
    resolved = {"train_samples": {"yy": 0, "C1N2_200": -1}}
    assert setups_mod.held_out(resolved, "C1N2_300") and not setups_mod.held_out(resolved, "C1N2_200")
    assert setups_mod.held_out(None, "C1N2_200")


AUG = {"augmentations": {"mask": 0.1}}


@pytest.mark.parametrize("setup, message", [
    ({"foo": 1}, r"^encoder.setups.X: unknown setting 'foo'$"),
    ({"model": "cnn"}, r"^encoder.setups.X.model: 'cnn' is not one of particle_transformer, "
                       r"transformer, mlp$"),
    ({"loss": "l2"}, r"^encoder.setups.X.loss: 'l2' is not one of supcon, simclr, "
                     r"simclr_supervised, vicreg_ce$"),
    ({"augmentations": {"zoom": 1, "mask": 1, "blur": 1}},
     r"^encoder.setups.X.augmentations: unknown \['blur', 'zoom'\]; known: mask, drop_object, "
     r"rotate, flip_eta, smear_pt$"),
    ({"optimizer": "sgd"}, r"^encoder.setups.X.optimizer: 'sgd' is not one of adam, adamw, lars$"),
    ({"positives": "x"}, r"^encoder.setups.X.positives: 'x' is not one of views, labels$"),
    ({"balance": "x"}, r"^encoder.setups.X.balance: 'x' is not one of classes, weighted$"),
    ({"positives": "labels", "loss": "simclr", **AUG},
     r"^encoder.setups.X.positives: 'labels' applies to loss vicreg_ce \(simclr_supervised and "
     r"supcon already use the labels\)$"),
    ({"positives": "labels"}, "applies to loss vicreg_ce"),
    ({"loss": "simclr"}, r"^encoder.setups.X.augmentations: loss 'simclr' compares two augmented "
                         r"views and needs at least one augmentation$"),
    ({"loss": "simclr_supervised"}, "needs at least one augmentation"),
    ({"loss": "vicreg_ce"}, "needs at least one augmentation"),
    ({"holdout_samples": ["Y999"]}, r"^encoder.setups.X.holdout_samples: 'Y999' is not a "
                                    r"configured sample \(samples: yy, ggH, C1N2_200, C1N2_300, Y400\)$"),
    ({"holdout_groups": [-5]}, r"^encoder.setups.X.holdout_groups: no configured sample has group -5$"),
    ({"signals": False, "holdout_groups": [1]},
     r"^encoder.setups.X: training needs at least two process groups, got \[0\]$"),
    ({"width": 10, "heads": 4}, r"^encoder.setups.X.width: 10 is not divisible by heads=4$"),
])
def test_every_setup_error_names_the_key(setup, message):
    with pytest.raises(SaladError, match=message):
        setups_mod.resolve_setup({"setups": {"X": setup}}, "X", GROUPS)


def test_setups_that_are_allowed():
    ok = {"loss": "vicreg_ce", "positives": "labels"}   # one view: no augmentation needed
    assert setups_mod.resolve_setup({"setups": {"X": ok}}, "X", GROUPS)["positives"] == "labels"
    for loss in ("simclr", "simclr_supervised", "vicreg_ce"):
        assert setups_mod.resolve_setup({"setups": {"X": {"loss": loss, **AUG}}}, "X", GROUPS)
    two = {"yy": 0, "C1N2_200": -1}   # exactly two groups is enough
    assert setups_mod.resolve_setup({"setups": {"X": {}}}, "X", two)["train_samples"] == two
    assert setups_mod.resolve_setup({"setups": {"X": {"width": 12, "heads": 4}}}, "X", GROUPS)


# ---------------------------------------------------------------- flow: mass scaling, split

def test_scale_mass_maps_the_window_to_minus_one_one():
    # 2 (m - lo) / (hi - lo) - 1 over (105, 160): 105 -> -1, 130 -> 2*25/55 - 1 = -1/11,
    # 160 -> 1, 187.5 -> 2*82.5/55 - 1 = 2
    got = flow.scale_mass([105, 130, 160, 187.5], (105.0, 160.0))
    assert got.shape == (4, 1) and got.dtype == np.float32
    np.testing.assert_allclose(got[:, 0], [-1.0, -1.0 / 11.0, 1.0, 2.0], rtol=1e-7)


def test_split_and_scale_by_definition():
    z = np.column_stack([np.arange(20.0), np.full(20, 3.0)])   # second column constant
    tr, va, mean, std = flow.split_and_scale(z, np.zeros(20), 0.2, seed=4)
    perm = np.random.default_rng(4).permutation(20)             # the seeded split
    np.testing.assert_array_equal(va, perm[:4])                 # round(0.2 * 20) = 4 rows
    np.testing.assert_array_equal(tr, perm[4:])
    np.testing.assert_allclose(mean, [np.mean(perm[4:]), 3.0])
    np.testing.assert_allclose(std, [np.std(perm[4:]), 1.0])   # population std; 0 -> 1
    # at least one validation row: round(0.01 * 20) = 0 -> 1
    tr, va, _, _ = flow.split_and_scale(z, np.zeros(20), 0.01, seed=4)
    assert len(va) == 1 and len(tr) == 19
    # 12 rows at 0.2: 2 validation + 10 training (the minimum) is allowed; 11 rows is not
    assert len(flow.split_and_scale(z[:12], np.zeros(12), 0.2, seed=1)[0]) == 10
    with pytest.raises(SaladError, match=r"^flow input: only 11 sideband events; need at least 12$"):
        flow.split_and_scale(z[:11], np.zeros(11), 0.2, seed=1)
    with pytest.raises(SaladError, match=r"^flow input: z shape \(20, 2\) does not match 19 masses$"):
        flow.split_and_scale(z, np.zeros(19), 0.2, seed=1)
    with pytest.raises(SaladError, match="does not match"):
        flow.split_and_scale(z[:, 0], np.zeros(20), 0.2, seed=1)


# ---------------------------------------------------------------- template: weights and masses

SR = (120.0, 130.0)


def _stub_sample(model, ckpt, myy, seed):
    """Stands in for flow.sample: z0 = the mass, z1 = the flow's marker."""
    return np.column_stack([myy, np.full(len(myy), float(model))])


def _flows(*markers, cols=("z0", "z1")):
    return [(m, {"latent_columns": list(cols)}) for m in markers]


def test_template_weights_sources_and_flow_interleaving(monkeypatch):
    monkeypatch.setattr(template.flowmod, "sample", _stub_sample)
    sr = pd.DataFrame({"myy": np.linspace(120.5, 129.5, 10)})          # N_SR = 10
    higgs = pd.DataFrame({"z0": [1.0, 2.0, 3.0], "z1": [0.0, 0.0, 0.0],
                          "myy": [125.0, 119.0, 130.0],               # only the first is in the SR
                          "weight": [0.02, 5.0, 5.0], "subset_fraction": [0.4, 1.0, 1.0],
                          "sample": ["ggH", "ggH", "ttH"]})
    out = template.build(sr, _flows(7, 8), higgs, SR, 100.0, {"oversample": 3}, seed=2)
    # Higgs: expected yield 0.02 / 0.4 * 100 fb^-1 = 5 events, weight 5 x oversample 3 = 15
    h = out[out["source"] != "flow"]
    assert list(h["source"]) == ["ggH"] and h["weight"].tolist() == pytest.approx([15.0])
    assert h["z0"].tolist() == [1.0] and h["myy"].tolist() == [125.0]
    # flow: round(3 x 10) = 30 samples carrying 3 x (10 - 5) = 15, i.e. 0.5 each
    f = out[out["source"] == "flow"]
    assert len(f) == 30 and out.index[:30].tolist() == list(range(30))   # flow rows first
    assert f["weight"].tolist() == pytest.approx([0.5] * 30)
    assert out["weight"].sum() == pytest.approx(3 * 10)
    assert ((f["myy"] >= SR[0]) & (f["myy"] < SR[1])).all()
    # flow i samples every len(flows)-th mass, at those masses
    np.testing.assert_array_equal(f["z1"].to_numpy()[0::2], 7.0)
    np.testing.assert_array_equal(f["z1"].to_numpy()[1::2], 8.0)
    np.testing.assert_array_equal(f["z0"].to_numpy(), f["myy"].to_numpy())
    assert all(out[c].dtype == np.float32 for c in ("z0", "z1", "myy"))
    assert list(out.columns) == ["z0", "z1", "myy", "weight", "source"]
    # same seed, same template; no Higgs frame -> the flow carries all N_SR
    again = template.build(sr, _flows(7, 8), higgs, SR, 100.0, {"oversample": 3}, seed=2)
    pd.testing.assert_frame_equal(out, again)
    alone = template.build(sr, _flows(7), None, SR, 100.0, {"oversample": 2}, seed=2)
    assert len(alone) == 20 and alone["weight"].tolist() == pytest.approx([1.0] * 20)
    empty = template.build(sr, _flows(7), higgs.iloc[:0], SR, 100.0, {"oversample": 2}, seed=2)
    assert len(empty) == 20 and set(empty["source"]) == {"flow"}


def test_template_flow_share_is_floored(monkeypatch):
    monkeypatch.setattr(template.flowmod, "sample", _stub_sample)
    sr = pd.DataFrame({"myy": np.linspace(120.5, 129.5, 10)})
    higgs = pd.DataFrame({"z0": [1.0], "z1": [0.0], "myy": [125.0], "weight": [1.0],
                          "subset_fraction": [0.5], "sample": ["ggH"]})   # 1 / .5 * 10 = 20 > N_SR
    out = template.build(sr, _flows(7), higgs, SR, 10.0, {"oversample": 1, "min_flow_fraction": 0.2},
                         seed=0)
    f = out[out["source"] == "flow"]
    assert f["weight"].sum() == pytest.approx(0.2 * 10)    # floored at 20 % of N_SR
    assert out.loc[out["source"] == "ggH", "weight"].tolist() == pytest.approx([20.0])
    # exactly at the floor: 10 - 8 = 2 = 0.2 x 10, no change
    higgs["weight"] = 0.4
    out = template.build(sr, _flows(7), higgs, SR, 10.0, {"oversample": 1, "min_flow_fraction": 0.2},
                         seed=0)
    assert out.loc[out["source"] == "flow", "weight"].sum() == pytest.approx(2.0)
    # the default floor is 10 %
    higgs["weight"] = 1.0
    out = template.build(sr, _flows(7), higgs, SR, 10.0, {"oversample": 1}, seed=0)
    assert out.loc[out["source"] == "flow", "weight"].sum() == pytest.approx(1.0)


def test_template_errors_and_mass_kde():
    sr = pd.DataFrame({"myy": [121.0, 125.0, 129.0]})
    with pytest.raises(SaladError, match=r"^template: no flows given$"):
        template.build(sr, [], None, SR, 1.0, None, seed=0)
    with pytest.raises(SaladError, match=r"^template: the flows were fitted on different latent columns$"):
        template.build(sr, _flows(1) + _flows(2, cols=("z0",)), None, SR, 1.0, None, seed=0)
    rng = np.random.default_rng(0)
    for bad in ([125.0], [125.0, 125.0], []):
        with pytest.raises(SaladError, match=rf"^signal region: {len(bad)} data event\(s\), too few"):
            template.sample_masses(np.array(bad), 5, SR, rng)
    m = template.sample_masses(np.array([120.1, 120.2, 129.8, 129.9]), 4000, SR, rng)
    assert len(m) == 4000 and m.min() >= SR[0] and m.max() < SR[1]
    narrow = template.sample_masses(np.array([124.0, 126.0]), 2000, SR, rng, bandwidth=0.1)
    # KDE of {124, 126} with bandwidth factor 0.1: kernel variance 0.1^2 x var(ddof=1) = 0.02,
    # mixture variance 1 + 0.02
    assert abs(narrow.mean() - 125.0) < 0.05 and narrow.std() == pytest.approx(np.sqrt(1 + 0.02), rel=0.03)
    assert template.settings({"oversample": 2, "other": 1}) == {**template.DEFAULTS, "oversample": 2}


# ---------------------------------------------------------------- classify: k-fold bookkeeping

class _StubModel:
    """Stands in for a BDT: score = 1000 x seed + row tag (column 0); records what it saw."""

    def __init__(self, X, y, w, seed):
        self.X, self.y, self.w, self.seed = X, y, w, seed

    def predict_proba(self, X):
        return np.column_stack([np.zeros(len(X)), 1000.0 * self.seed + X[:, 0]])


def test_kfold_scores_out_of_fold_weights_and_seeds(monkeypatch):
    monkeypatch.setattr(classify, "fit_bdt",
                        lambda X, y, w, cfg, seed, threads=1: _StubModel(X, y, w, seed))
    n_pos, n_neg, n_extra, k = 7, 11, 5, 3
    X_pos = np.column_stack([np.arange(n_pos), np.zeros(n_pos)])             # tags 0..6
    X_neg = np.column_stack([100 + np.arange(n_neg), np.zeros(n_neg)])       # tags 100..110
    X_extra = np.column_stack([200 + np.arange(n_extra), np.zeros(n_extra)])
    X_eval = np.column_stack([300.0 + np.arange(2), np.zeros(2)])
    w_neg = np.arange(1.0, n_neg + 1)                                         # sum 66
    out = classify.kfold_scores(X_pos, X_neg, w_neg, {"folds": k}, seeds=[10, 20], fold_seed=3,
                                X_extra=X_extra, keep_models=True, X_eval=X_eval)
    assert out["pos"].shape == (n_pos, 2) and out["neg"].shape == (n_neg, 2)
    assert out["extra"].shape == (n_extra, 2) and out["eval"].shape == (2, 2)
    for name, n in (("pos_fold", n_pos), ("neg_fold", n_neg), ("extra_fold", n_extra)):
        counts = np.bincount(out[name], minlength=k)
        assert len(out[name]) == n and counts.max() - counts.min() <= 1     # balanced folds
    fold = np.concatenate([out["pos_fold"], out["neg_fold"]])
    tags = np.concatenate([X_pos[:, 0], X_neg[:, 0]])
    for j, seed in enumerate((10, 20)):
        models = out["models"][j]
        assert [m.seed for m in models] == [seed, seed + 1, seed + 2]     # seed + fold
        for f, m in enumerate(models):
            np.testing.assert_array_equal(m.X[:, 0], tags[fold != f])      # trained off-fold
            np.testing.assert_array_equal(m.y, np.r_[np.ones(n_pos), np.zeros(n_neg)][fold != f])
            # positives weight 1, negatives rescaled to sum n_pos: w x 7 / 66
            np.testing.assert_allclose(m.w, np.r_[np.ones(n_pos), w_neg * n_pos / 66.0][fold != f])
        # every row scored by the model of its own fold (which never saw it)
        np.testing.assert_array_equal(out["pos"][:, j], 1000.0 * (seed + out["pos_fold"]) + X_pos[:, 0])
        np.testing.assert_array_equal(out["neg"][:, j], 1000.0 * (seed + out["neg_fold"]) + X_neg[:, 0])
        np.testing.assert_array_equal(out["extra"][:, j],
                                      1000.0 * (seed + out["extra_fold"]) + X_extra[:, 0])
        # evaluation rows: mean of the k fold models = 1000 (seed + 1) + tag
        np.testing.assert_allclose(out["eval"][:, j], 1000.0 * (seed + 1) + X_eval[:, 0])
    assert len(out["train_rows"]) == k
    for f, rows in enumerate(out["train_rows"]):
        np.testing.assert_array_equal(rows, np.nonzero(fold != f)[0])
    # deterministic folds for a fold seed; models only when asked
    again = classify.kfold_scores(X_pos, X_neg, w_neg, {"folds": k}, seeds=[10], fold_seed=3)
    np.testing.assert_array_equal(again["pos_fold"], out["pos_fold"])
    assert again["models"] == [] and again["train_rows"] == [] and again["extra"].shape == (0, 1)
    assert again["eval"].shape == (0, 1)


@pytest.mark.parametrize("n_pos, n_neg, w, message", [
    (2, 5, None, r"^classify: 2 positive / 5 negative events, fewer than folds = 3$"),
    (5, 2, None, "5 positive / 2 negative"),
    (5, 5, [1, 1, 1, 1, -1], r"^classify: negative-class weights must be finite, >= 0, not all 0$"),
    (5, 5, [1, 1, 1, 1, np.nan], "must be finite"),
    (5, 5, [0, 0, 0, 0, 0], "not all 0"),
])
def test_kfold_scores_input_errors(n_pos, n_neg, w, message):
    w = np.ones(n_neg) if w is None else np.asarray(w, float)
    with pytest.raises(SaladError, match=message):
        classify.kfold_scores(np.zeros((n_pos, 1)), np.zeros((n_neg, 1)), w, {"folds": 3}, [1], 0)


def test_assign_folds_balanced_and_permuted():
    folds = classify.assign_folds(10, 3, np.random.default_rng(1))
    np.testing.assert_array_equal(np.sort(folds), [0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(folds, np.random.default_rng(1).permutation(np.arange(10) % 3))
