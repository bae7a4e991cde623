"""Each published quantity pinned to its definition on small hand-computed cases.

These tests exist because one-line bugs in these places (SIC = eps_S/eps_B, the same signal
events in every pseudo-data instance, validation rows reused for training, reversed
interpolation on tied ROC segments, a flipped or summed KL, a dropped SM group) survived a
suite that only checked orders of magnitude. Every number below is worked out by hand in
the comment next to it.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from salad.cathode import evaluate, flow, metrics
from salad.config import REPO, load_config, load_yaml
from salad.encoder.losses import build_objective, kl_standard_normal, nt_xent, supcon
from salad.encoder.setups import resolve_setup, setup_names
from salad.errors import SaladError
from salad.pseudodata import build
from salad.split import assign

# ---------------------------------------------------------------- ROC / SIC

# 4 signal, 10 background events, no ties. Lowering the threshold score by score gives the
# ROC vertices (eps_B, eps_S):
#   10 S (0, .25)  9 S (0, .5)  8 B (.1, .5)  7 S (.1, .75)  6 B (.2, .75)  5 B (.3, .75)
#   4 S (.3, 1)  then the remaining background up to (1, 1).
SIG_SCORES = [10.0, 9.0, 7.0, 4.0]
BKG_SCORES = [8.0, 6.0, 5.0, 3.0, 2.0, 1.0, 0.0, -1.0, -2.0, -3.0]
SCORES = np.array(SIG_SCORES + BKG_SCORES)
LABELS = np.array([True] * 4 + [False] * 10)
# eps_B -> eps_S read off the polyline: at .05 between (0, .5) and (.1, .5); at .1 the top of
# the vertical segment (.1, .5)-(.1, .75); at .25 between (.2, .75) and (.3, .75); at .3 the
# top of (.3, .75)-(.3, 1).
EPS_S = {0.05: 0.5, 0.1: 0.75, 0.25: 0.75, 0.3: 1.0}


def test_roc_vertices_and_signal_efficiency_by_hand():
    fpr, tpr = metrics.roc_curve(SCORES, LABELS)
    np.testing.assert_allclose(fpr[:8], [0, 0, 0, .1, .1, .2, .3, .3])
    np.testing.assert_allclose(tpr[:8], [0, .25, .5, .5, .75, .75, .75, 1])
    for eps_b, eps_s in EPS_S.items():
        assert metrics.signal_efficiency(SCORES, LABELS, eps_b) == pytest.approx(eps_s)
        assert metrics.sic(SCORES, LABELS, eps_b) == pytest.approx(eps_s / math.sqrt(eps_b))
    # weights reach the SIC: the background event at 8 weighs 2 of 11, so the vertex
    # (.1, .5) moves to (2/11, .5) and eps_S at eps_B = .1 drops from .75 to .5
    w = np.ones(14)
    w[4] = 2.0
    assert metrics.sic(SCORES, LABELS, 0.1, w) == pytest.approx(0.5 / math.sqrt(0.1))


def test_sic_is_eps_s_over_sqrt_eps_b_in_every_evaluation_row():
    # the same 14 events (unit weights) as evaluation set and as SR pseudo-data
    rows = evaluate.working_point_rows(SCORES, LABELS, np.ones(14), SCORES, LABELS, list(EPS_S),
                                       {"bootstrap": 0}, 0, {"method": "m"})
    assert len(rows) == len(EPS_S)
    # unweighted background events at or above the cut reaching eps_B: the tie groups down to
    # the vertex (.1, .5) hold 1 (score 8); down to (.3, .75) 3 (scores 8, 6, 5)
    n_pass = {0.05: 1, 0.1: 1, 0.25: 3, 0.3: 3}
    for row in rows:
        eps_b = row["eps_b"]
        assert row["eps_s"] == pytest.approx(EPS_S[eps_b])
        # the definition, the metrics function, and the hand value all agree
        assert row["sic"] == pytest.approx(row["eps_s"] / math.sqrt(eps_b), rel=1e-12)
        assert row["sic"] == pytest.approx(metrics.sic(SCORES, LABELS, eps_b), rel=1e-12)
        assert row["n_sig"] == 4 and row["n_bkg"] == 10 and row["method"] == "m"
        assert row["n_bkg_eval"] == 10 and row["n_bkg_pass"] == n_pass[eps_b]
        # no bootstrap replicas: no error (not 0)
        assert np.isnan(row["sic_err"]) and np.isnan(row["eps_s_err"])
        # data scores = evaluation scores: the data-side significance is the same number
        assert row["significance_data"] == pytest.approx(row["significance"], rel=1e-12)
    by_eps = {r["eps_b"]: r for r in rows}
    assert by_eps[0.1]["sic"] == pytest.approx(0.75 / math.sqrt(0.1))        # 2.3717, not 7.5
    assert by_eps[0.25]["sic"] == pytest.approx(1.5)                          # .75 / .5, not 3
    # Asimov significance at eps_B = .1: S = .75 * 4 = 3, B = .1 * 10 = 1,
    # Z = sqrt(2 [(S + B) ln(1 + S/B) - S]) = sqrt(2 (4 ln 4 - 3)) = 2.25618
    assert by_eps[0.1]["significance"] == pytest.approx(math.sqrt(2 * (4 * math.log(4) - 3)))


def test_evaluation_rows_without_a_class_are_nan_not_guessed():
    # pseudo-data without signal: eps_S and SIC still come from the (two-class) evaluation set,
    # S = eps_S * 0 = 0 gives Z = 0, and the data-side significance (no ROC without signal)
    # is NaN, not guessed
    rows = evaluate.working_point_rows(SCORES, LABELS, np.ones(14), SCORES[4:], LABELS[4:], [0.1],
                                       {"bootstrap": 0}, 0, {})
    assert rows[0]["eps_s"] == pytest.approx(0.75)
    assert rows[0]["sic"] == pytest.approx(0.75 / math.sqrt(0.1))
    assert rows[0]["significance"] == 0 and np.isnan(rows[0]["significance_data"])
    assert rows[0]["n_sig"] == 0 and rows[0]["n_bkg"] == 10
    # an evaluation set without one class has no efficiencies at all: an error, not a guess
    for keep in (slice(4, None), slice(0, 4)):
        with pytest.raises(ValueError, match="both classes"):
            evaluate.working_point_rows(SCORES[keep], LABELS[keep], np.ones(14)[keep], SCORES,
                                        LABELS, [0.1], {"bootstrap": 0}, 0, {})


def test_summary_table_sic_is_the_mean_and_spread_of_the_rows():
    keys = {"setup": "ID", "signal": "Y400", "held_out": False, "method": "cathode", "eps_b": 0.1,
            "strength": 2.0}
    sens = pd.DataFrame([{**keys, "instance": i, "ensemble": 0, "eps_s": e,
                          "sic": e / math.sqrt(0.1), "sic_err": err, "significance": z,
                          "significance_data": z / 2, "n_sig": 4, "n_bkg": 10,
                          "n_bkg_eval": 100, "n_bkg_pass": p}
                         for i, (e, z, err, p) in enumerate([(0.5, 1.0, 0.1, 9), (0.75, 2.0, 0.2, 10),
                                                             (1.0, 6.0, 0.6, 12)])])
    summary, _ = evaluate.summarise(sens, 3.0)
    assert len(summary) == 1
    row = summary.iloc[0]
    assert row["sic_mean"] == pytest.approx(0.75 / math.sqrt(0.1))
    assert row["sic_std"] == pytest.approx(0.25 / math.sqrt(0.1))            # sample std (ddof 1)
    assert row["significance_mean"] == pytest.approx(3.0) and row["n"] == 3
    # (.1 + .2 + .6) / 3 = .3: the mean of the (fully correlated) bootstrap errors, not a sum
    # in quadrature; data-side Z: (.5 + 1 + 3) / 3 = 1.5; the fewest passing background events
    assert row["sic_err"] == pytest.approx(0.3) and row["significance_data_mean"] == pytest.approx(1.5)
    assert row["n_bkg_eval"] == 100 and row["n_bkg_pass"] == 9
    # one ensemble per instance: no ensemble spread to estimate
    assert np.isnan(row["sic_syst"])


# A tie group holding both classes. 4 signal, 4 background:
#   score 3: S          -> (0, .25)
#   score 2: S, S, B    -> (.25, .75)    one tied two-class segment
#   score 1: S, B       -> (.5, 1)       another
#   score 0: B, B       -> (1, 1)
TIE_SCORES = np.array([3, 2, 2, 1, 2, 1, 0, 0], float)
TIE_LABELS = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)


def test_tpr_at_on_tied_two_class_segments():
    fpr, tpr = metrics.roc_curve(TIE_SCORES, TIE_LABELS)
    np.testing.assert_allclose(fpr, [0, 0, .25, .5, 1])
    np.testing.assert_allclose(tpr, [0, .25, .75, 1, 1])
    x = np.array([0.0, 0.0625, 0.125, 0.25, 0.375, 0.75, 1.0])
    # x = 0: top of the vertical segment (0, 0)-(0, .25); x = .0625: a quarter along
    # (0, .25)-(.25, .75) -> .25 + .25 * .5 = .375 (reversed: .625); .125 -> .5; .25 -> .75;
    # .375: half along (.25, .75)-(.5, 1) -> .875; beyond: 1.
    np.testing.assert_allclose(metrics.tpr_at(fpr, tpr, x), [.25, .375, .5, .75, .875, 1, 1])
    assert metrics.tpr_at(fpr, tpr, 0.0625) == pytest.approx(0.375)     # scalar in, scalar out
    assert metrics.signal_efficiency(TIE_SCORES, TIE_LABELS, 0.0625) == pytest.approx(0.375)
    assert metrics.sic(TIE_SCORES, TIE_LABELS, 0.0625) == pytest.approx(0.375 / 0.25)
    # weights: doubling the tied background event's weight moves the vertex, not the rule
    w = np.array([1, 1, 1, 1, 2, 1, 1, 1], float)   # total background weight 5
    fpr_w, tpr_w = metrics.roc_curve(TIE_SCORES, TIE_LABELS, w)
    np.testing.assert_allclose(fpr_w, [0, 0, .4, .6, 1])
    assert metrics.signal_efficiency(TIE_SCORES, TIE_LABELS, 0.1, w) == pytest.approx(.25 + .25 * .5)
    # AUC of the tied ROC (trapezoids): .25*(.25+.75)/2 + .25*(.75+1)/2 + .5*1 = .84375
    assert metrics.auc(TIE_SCORES, TIE_LABELS) == pytest.approx(0.84375)
    # weighted: .4 (.25 + .75)/2 + .2 (.75 + 1)/2 + .4 = .775
    assert metrics.auc(TIE_SCORES, TIE_LABELS, w) == pytest.approx(0.775)
    # a vertical last segment at eps_B = 1: its top
    assert metrics.tpr_at(np.array([0, 0, 1, 1.0]), np.array([0, .5, .5, 1.0]), 1.0) == 1.0


# ---------------------------------------------------------------- pseudo-data instances

SR = [120.0, 130.0]
PCFG = {"pseudodata": {"luminosity_ifb": 1.0, "seed": 4}, "regions": {"signal_region": SR}}


def _sample(name, code, group, n, xsec, myy, seed):
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0.5, 1.5, n)
    ids = code * 10**9 + np.arange(n, dtype=np.int64)
    return pd.DataFrame({"event_id": ids, "sample": name, "group": np.int8(group),
                         "weight": xsec * raw / raw.sum(), "myy": myy(rng, n).astype(np.float32),
                         "subset": assign(ids, 1, code, 0.5)})


BKG = [_sample("yy", 1, 0, 6000, 1500.0, lambda r, n: r.uniform(105, 160, n), 1)]
SIG = _sample("Y400", 63, -6, 3000, 1.0, lambda r, n: r.normal(125, 2.0, n), 3)


def _signal_ids(strength, instance):
    table, _ = build(BKG, SIG, strength, instance, PCFG)
    return set(table.loc[table["is_signal"], "event_id"])


def test_signal_events_differ_between_instances_and_nest_across_strengths():
    per_instance = {i: {s: _signal_ids(s, i) for s in (1.0, 3.0, 6.0)} for i in range(4)}
    for i, sets in per_instance.items():
        # nested within an instance: a larger strength adds events, never swaps them
        assert sets[1.0] < sets[3.0] < sets[6.0], f"instance {i}"
    pool = int((SIG["subset"] == "data").sum())
    for s in (1.0, 3.0, 6.0):
        sets = [per_instance[i][s] for i in range(4)]
        n = len(sets[0])
        assert n > 10 and all(len(x) == n for x in sets)      # same count at the same strength
        for a in range(4):
            for b in range(a + 1, 4):
                # independent weighted draws of n from the pool overlap by ~n^2/pool, far from n
                overlap = len(sets[a] & sets[b])
                assert overlap < n / 2 + 3 * n * n / pool, (s, a, b, overlap, n)


# ---------------------------------------------------------------- flow validation split

class _Recorder(torch.nn.Module):
    """Wraps the real flow; remembers the (standardised) z of every log_prob call, split by
    whether gradients are on (training batches) or off (validation)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.seen = {True: [], False: []}

    def log_prob(self, z, context=None):
        self.seen[torch.is_grad_enabled()].append(z.detach().cpu().numpy().copy())
        return self.model.log_prob(z, context=context)


@pytest.mark.parametrize("n,val_fraction", [(60, 0.2), (47, 0.3)])
def test_flow_training_and_validation_rows_are_disjoint_and_sized(monkeypatch, n, val_fraction):
    """Relies on: flow.fit builds its model with flow.build_flow and evaluates model.log_prob
    with gradients on for training batches and off for the validation loss."""
    recorders = []
    real = flow.build_flow

    def recording_build(arch):
        recorders.append(_Recorder(real(arch)))
        return recorders[-1]
    monkeypatch.setattr(flow, "build_flow", recording_build)
    rng = np.random.default_rng(0)
    z = np.c_[np.arange(n, dtype=float), rng.normal(size=n)]     # column 0 = row number
    myy = rng.uniform(105, 160, n)
    cfg = {"val_fraction": val_fraction, "max_epochs": 2, "patience": 5, "transforms": 1,
           "hidden": 8, "blocks": 1, "batch_size": 16}
    ckpt = flow.fit(z, myy, (105.0, 160.0), cfg, seed=3)
    rec, = recorders

    def rows(grad):
        seen = np.concatenate(rec.seen[grad])[:, 0] * ckpt["z_std"][0] + ckpt["z_mean"][0]
        return np.rint(seen).astype(int)
    train, val = rows(True), rows(False)
    n_val = round(val_fraction * n)
    assert len(set(val)) == n_val == ckpt["n_val"]
    assert len(val) == 2 * n_val                          # every validation row once per epoch
    assert len(set(train)) == n - n_val == ckpt["n_train"]
    assert len(train) == 2 * (n - n_val)                  # every training row once per epoch
    assert not set(train) & set(val)
    assert set(train) | set(val) == set(range(n))
    # the scaler is fitted on the training rows only
    assert ckpt["z_mean"][0] == pytest.approx(np.mean(sorted(set(train))))


# ---------------------------------------------------------------- encoder objective

def _outs(z1, z2, mus, logvars):
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    return [{"proj": t(z), "mu": t(m), "logvar": None if lv is None else t(lv)}
            for z, m, lv in zip((z1, z2), mus, logvars)]


# Two events, two views, identical orthogonal projections, tau = 1: every anchor has one
# positive (similarity 1) and two negatives (similarity 0), so NT-Xent = ln(e + 2) - 1.
Z = [[1.0, 0.0], [0.0, 1.0]]
NT_XENT = math.log(math.e + 2) - 1.0                                         # 0.55144
# KL(N(mu, e^lv) || N(0, 1)) = 1/2 sum_d (mu^2 + e^lv - 1 - lv), mean over events:
# view 1: mu = (1, 0), lv = 0 for both events -> 1/2 (1 + 0) = .5
# view 2: mu = 0, lv = (ln 2, 0) for both events -> 1/2 (2 - 1 - ln 2) = .15343
MUS = [[[1.0, 0.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]
LOGVARS = [[[0.0, 0.0], [0.0, 0.0]], [[math.log(2), 0.0], [math.log(2), 0.0]]]
KL_MEAN = (0.5 + 0.5 * (1 - math.log(2))) / 2                                 # .32672


def test_objective_is_contrastive_plus_lambda_times_view_averaged_kl():
    cfg = {"loss": "simclr", "variational": True, "kl_weight": 0.3, "temperature": 1.0}
    out = build_objective(cfg)(_outs(Z, Z, MUS, LOGVARS), torch.tensor([0, 1]))
    assert out["contrastive"].item() == pytest.approx(NT_XENT, rel=1e-9)
    # the two views enter as themselves (not one view twice)
    z2 = [[1.0, 1.0], [0.0, 1.0]]
    two = build_objective(cfg)(_outs(Z, z2, MUS, LOGVARS), torch.tensor([0, 1]))
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    assert two["contrastive"].item() == pytest.approx(nt_xent(t(Z), t(z2), 1.0).item(), rel=1e-12)
    assert two["contrastive"].item() != pytest.approx(nt_xent(t(z2), t(z2), 1.0).item(), rel=1e-3)
    assert kl_standard_normal(torch.tensor(MUS[1]), torch.tensor(LOGVARS[1])).item() == \
        pytest.approx(0.5 * (1 - math.log(2)), rel=1e-6)
    assert out["kl"].item() == pytest.approx(KL_MEAN, rel=1e-9)
    assert out["loss"].item() == pytest.approx(NT_XENT + 0.3 * KL_MEAN, rel=1e-9)


def test_objective_one_view_supcon_and_lambda_zero_when_not_variational():
    labels = torch.tensor([0, 0])
    # SupCon, one view, both events share a label, Z orthogonal, tau = 1: the only other
    # event is the positive, so each anchor's log-probability is 0 -> loss 0; add KL of view 1
    cfg = {"loss": "supcon", "variational": True, "kl_weight": 0.5, "temperature": 1.0}
    out = build_objective(cfg)(_outs(Z, Z, MUS, LOGVARS)[:1], labels)
    assert out["contrastive"].item() == pytest.approx(0.0, abs=1e-12)
    assert out["loss"].item() == pytest.approx(0.5 * 0.5, rel=1e-9)
    # not variational: lambda = 0 even if a log-variance is passed, and no KL without one
    for logvars in (LOGVARS, [None, None]):
        cfg = {"loss": "simclr", "variational": False, "kl_weight": 0.3, "temperature": 1.0}
        out = build_objective(cfg)(_outs(Z, Z, MUS, logvars), labels)
        assert out["loss"].item() == pytest.approx(NT_XENT, rel=1e-9)
    assert "kl" not in out
    # supervised SimCLR = SupCon over both views with the labels repeated
    feats = torch.tensor(Z + Z, dtype=torch.float64)
    cfg = {"loss": "simclr_supervised", "variational": False, "kl_weight": 0.3, "temperature": 1.0}
    out = build_objective(cfg)(_outs(Z, Z, MUS, LOGVARS), torch.tensor([0, 1]))
    assert out["loss"].item() == pytest.approx(supcon(feats, torch.tensor([0, 1, 0, 1]), 1.0).item())
    assert out["loss"].item() == pytest.approx(nt_xent(feats[:2], feats[2:], 1.0).item())
    z2 = [[1.0, 1.0], [0.0, 1.0]]
    feats = torch.tensor(Z + z2, dtype=torch.float64)
    out = build_objective(cfg)(_outs(Z, z2, MUS, LOGVARS), torch.tensor([0, 0]))
    expected = supcon(feats, torch.tensor([0, 0, 0, 0]), 1.0).item()
    assert out["contrastive"].item() == out["loss"].item() == pytest.approx(expected, rel=1e-12)
    assert expected != pytest.approx(supcon(feats[[2, 3, 2, 3]], torch.zeros(4), 1.0).item(), rel=1e-3)


# ---------------------------------------------------------------- background-only training

@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml", "test.yaml"])
def test_background_only_setups_train_on_every_sm_group(name):
    cfg = load_config(REPO / "config" / name)
    table = load_yaml(REPO / cfg["processes"])["processes"]
    groups = {s: int(table[s]["group"]) for s in cfg["samples"]}
    sm = {s: g for s, g in groups.items() if g >= 0}
    assert 0 in sm.values(), f"{name}: no gamma-gamma (group 0) sample configured"
    checked = 0
    for setup in setup_names(cfg["encoder"]):
        resolved = resolve_setup(cfg["encoder"], setup, groups)
        train = resolved["train_samples"]
        if not resolved["signals"]:
            assert train == sm, f"{name}: {setup} trains on {train}, SM samples are {sm}"
            checked += 1
        else:   # signal-aware setups keep every SM sample too (hold-outs are BSM only)
            assert set(sm) <= set(train), f"{name}: {setup} drops SM samples"
    assert checked >= 1, f"{name}: no background-only setup"


# ---------------------------------------------------------------- evaluation on files

WINDOW = (105.0, 160.0)
EVAL_SR = (120.0, 130.0)
# The evaluation set: the 14 events of SCORES / LABELS (unit weights, in the SR) plus one event
# of another signal sample (score -10) that must be left out when evaluating Y400 (counted, it
# would move eps_S at eps_B = .1 from 3/4 to 3/5).
EVAL_IDS = 9000 + np.arange(15)
EVAL_SCORES = np.r_[SCORES, -10.0]


def _evaluation_set():
    return pd.DataFrame({"event_id": EVAL_IDS, "sample": ["Y400"] * 4 + ["yy"] * 10 + ["Y999"],
                         "group": np.r_[np.full(4, -6), np.zeros(10), [-7]].astype(np.int64),
                         "is_signal": np.r_[LABELS, True], "myy": 125.0, "weight": 1.0})


def _write_dataset(root, strength, signal_scores, bkg_scores, sb_scores):
    """Pseudo-data + one score file (2 classifiers whose mean is the given score; evaluation
    rows: mean EVAL_SCORES) + one reference file (iad_0 = sum of the two, sup_0 = -iad_0).
    SR events at 125 GeV, SB at 110/140. Score paths .../{strength}/{instance}.parquet."""
    from salad.artifacts import provenance, write_parquet
    scores = np.r_[signal_scores, bkg_scores, sb_scores].astype(float)
    n_sr = len(signal_scores) + len(bkg_scores)
    ids = 1000 + np.arange(len(scores))
    myy = np.r_[np.full(n_sr, 125.0), np.where(np.arange(len(sb_scores)) % 2, 110.0, 140.0)]
    is_sig = np.r_[np.ones(len(signal_scores), bool), np.zeros(len(scores) - len(signal_scores), bool)]
    d = np.random.default_rng(len(scores)).uniform(-0.4, 0.4, len(scores))   # mean is `scores`
    prov = provenance("test")
    folder = root / f"{strength:g}"
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "0.parquet"
    write_parquet(pd.DataFrame({"event_id": ids, "sample": "s", "myy": myy, "is_signal": is_sig,
                                "group": np.where(is_sig, -1, 0)}), data, prov)
    role = np.where(np.arange(len(scores)) < n_sr, "sr", "sb")
    # template: classifier 0 sees the SR scores again (AUC .5), classifier 1 sees them all
    # 100 lower (AUC 1)
    sr0, sr1 = (scores + d)[:n_sr], (scores - d)[:n_sr]
    n_ev = len(EVAL_SCORES)
    de = np.random.default_rng(n_ev).uniform(-0.4, 0.4, n_ev)   # mean is EVAL_SCORES
    frame = pd.DataFrame({"role": np.r_[role, ["template"] * n_sr, ["eval"] * n_ev],
                          "event_id": np.r_[ids, 5000 + np.arange(n_sr), EVAL_IDS],
                          "myy": np.r_[myy, np.full(n_sr, 125.0), np.full(n_ev, 125.0)],
                          "weight": np.r_[np.ones(len(scores)), np.full(n_sr, 0.5), np.ones(n_ev)],
                          "fold": np.r_[np.zeros(len(scores) + n_sr, np.int64), np.full(n_ev, -1)],
                          "score_0": np.r_[scores + d, sr0, EVAL_SCORES + de],
                          "score_1": np.r_[scores - d, sr1 - 100.0, EVAL_SCORES - de]})
    score_path = root / "scores" / f"{strength:g}" / "0.parquet"
    score_path.parent.mkdir(parents=True, exist_ok=True)
    write_parquet(frame, score_path, prov)
    ref_path = root / "ref" / f"{strength:g}" / "0.parquet"
    ref_path.parent.mkdir(parents=True, exist_ok=True)
    write_parquet(frame.assign(iad_0=frame["score_0"] + frame["score_1"],
                               sup_0=-(frame["score_0"] + frame["score_1"])), ref_path, prov)
    return {"data": data, "scores": [score_path], "references": [ref_path]}


def test_sensitivity_rows_from_files_follow_the_definitions(tmp_path):
    sb = [0.5, 9.5, -5.0, 20.0]
    datasets = {(2.0, 0): _write_dataset(tmp_path, 2.0, SIG_SCORES, BKG_SCORES, sb),
                (0.0, 0): _write_dataset(tmp_path, 0.0, [], BKG_SCORES, sb)}
    cfg = {"working_points": list(EPS_S), "ensemble_size": 2, "mass_bins": 11,
           "sculpting_efficiency": 0.2, "bootstrap": 5}
    out = evaluate.sensitivity("ID", "Y400", datasets, _evaluation_set(), cfg, EVAL_SR, WINDOW,
                               held_out=True)
    sens = out["sensitivity"]
    assert set(sens["method"]) == {"cathode", "iad", "supervised"}
    # sensitivity rows only for injected signal (strength 0 feeds the sculpting frames only)
    assert set(sens["strength"]) == {2.0} and sens["held_out"].all()
    injected = sens
    assert len(injected) == 3 * len(EPS_S)                 # one ensemble per method
    for _, row in injected.iterrows():
        # efficiencies on the evaluation set (Y400 + background only): same scores as the data
        score = -SCORES if row["method"] == "supervised" else SCORES
        eps_b = row["eps_b"]
        assert row["n_sig"] == 4 and row["n_bkg"] == 10      # SR truth only, SB not counted
        assert row["n_bkg_eval"] == 10                       # the Y999 event is not background
        assert row["eps_s"] == pytest.approx(metrics.signal_efficiency(score, LABELS, eps_b))
        assert row["sic"] == pytest.approx(row["eps_s"] / math.sqrt(eps_b), rel=1e-12)
        assert row["significance"] == pytest.approx(metrics.significance(4, 10, row["eps_s"], eps_b))
        assert row["significance_data"] == pytest.approx(row["significance"])
        assert row["n_bkg_pass"] == metrics.working_points(score, LABELS, [eps_b])["n_bkg_pass"][0]
        # 5 bootstrap replicas: an error, SIC's is eps_S's over sqrt(eps_B)
        assert row["sic_err"] == pytest.approx(row["eps_s_err"] / math.sqrt(eps_b), rel=1e-12)
        assert np.isfinite(row["sic_err"])
    cathode = injected[injected["method"] == "cathode"].set_index("eps_b")
    assert cathode.loc[0.1, "sic"] == pytest.approx(0.75 / math.sqrt(0.1))
    assert cathode.loc[0.1, "significance"] == pytest.approx(math.sqrt(2 * (4 * math.log(4) - 3)))
    # sculpting (strength 0 only): classifier 0's template repeats the SR scores -> AUC .5,
    # ROC on the diagonal; classifier 1's template lies below every SR score -> AUC 1
    aucs = out["sculpting_auc"].set_index("classifier")["auc"]
    assert list(out["sculpting_auc"]["strength"]) == [0.0, 0.0]
    assert aucs[0] == pytest.approx(0.5) and aucs[1] == pytest.approx(1.0)
    roc = out["sculpting_roc"]
    r0, r1 = roc[roc["classifier"] == 0], roc[roc["classifier"] == 1]
    np.testing.assert_allclose(r0["tpr"], r0["fpr"], atol=1e-12)
    np.testing.assert_allclose(r1["tpr"], 1.0)
    assert len(r0) == len(evaluate.FPR_GRID)
    # mass: the averaged score of the 10 SR events is BKG_SCORES; keeping the top 20 % cuts at
    # their 80 % quantile (sorted -3..8, position 7.2 between 5 and 6: 5.2): the SR events at
    # 8 and 6 and the SB events at 9.5 and 20 pass -> 4 of 14 events
    # (one block of rows per efficiency: sculpting_efficiency and every working point)
    mass = out["sculpting_mass"]
    assert set(mass["efficiency"]) == {0.2, *EPS_S}
    mass = mass[mass["efficiency"] == 0.2]
    assert mass["n_before"].sum() == 14 and mass["n_after"].sum() == 4
    assert len(mass) == 11 and set(mass["ndf"]) == {2}          # 3 occupied bins (110, 125, 140)
    after = mass["n_after"].to_numpy()
    assert after[np.searchsorted(mass["bin_lo"].to_numpy(), 125.0, "right") - 1] == 2
    chi2, _ = metrics.selection_flatness(mass["n_before"].to_numpy(), after)
    assert mass["chi2"].iloc[0] == pytest.approx(chi2)


# ---------------------------------------------------------------- metrics: boundaries

def test_metric_boundaries_by_hand():
    with pytest.raises(ValueError, match="both classes"):
        metrics.roc_curve([1, 2], [1, 1])
    with pytest.raises(ValueError, match="both classes"):
        metrics.roc_curve([1, 2], [0, 0])
    for n_bkg, eps_b in ((0, 0.1), (10, 0.0)):
        with pytest.raises(ValueError, match="^significance needs n_bkg > 0 and eps_b > 0$"):
            metrics.significance(4, n_bkg, 0.5, eps_b)
    # S = .5, B = 1: sqrt(2 (1.5 ln 1.5 - .5)) = .45056
    assert metrics.significance(1, 1, 0.5, 1.0) == pytest.approx(math.sqrt(2 * (1.5 * math.log(1.5) - 0.5)))
    # a target met exactly at a scanned point is reached there (>=), first point included
    assert metrics.required_strength([0, 1, 2], [3.0, 4.0, 5.0], 3.0) == (0.0, True)
    assert metrics.required_strength([0, 1, 2], [1.0, 3.0, 5.0], 3.0) == (1.0, True)
    assert metrics.required_strength([0, 1], [3.0, 2.0], 3.0) == (0.0, True)   # met, then lost
    assert metrics.required_strength([0, 1], [1.0, 3.0], 3.0) == (1.0, True)   # met at the end
    assert metrics.required_strength([0, 1], [2.0, 4.0]) == (0.5, True)         # default target 3
    # NaN points are dropped before interpolating: (0, 1) -> (2, 5) crosses 3 at 1.0
    assert metrics.required_strength([0, 1, 2], [1.0, np.nan, 5.0], 3.0) == (pytest.approx(1.0), True)
    value, reached = metrics.required_strength([], [], 3.0)
    assert np.isnan(value) and not reached
    # flatness: empty bins do not count towards ndf; keeping all or nothing has no chi^2
    chi2, ndf = metrics.selection_flatness([100, 0, 100, 50], [30, 0, 10, 10])
    # eps = 50 / 250 = .2: (30-20)^2/16 + (10-20)^2/16 + (10-10)^2/8 = 12.5, ndf = 3 - 1
    assert chi2 == pytest.approx(12.5) and ndf == 2
    for after in ([0, 0, 0, 0], [100, 0, 100, 50]):
        chi2, ndf = metrics.selection_flatness([100, 0, 100, 50], after)
        assert np.isnan(chi2) and ndf == 2
    # a bin holding a single event counts: eps = 2/4; (1 - .5)^2/(1 * .25) + (1 - 1.5)^2/(3 * .25)
    chi2, ndf = metrics.selection_flatness([1, 3], [1, 1])
    assert chi2 == pytest.approx(1 + 1 / 3) and ndf == 1
    # ensembles: leftovers dropped, size capped at the number of classifiers
    groups = metrics.ensembles(5, 2, seed=3)
    assert len(groups) == 2 and all(len(g) == 2 for g in groups)
    assert len(set(np.concatenate(groups))) == 4
    assert [sorted(g) for g in metrics.ensembles(3, 7, seed=0)] == [[0, 1, 2]]
    with pytest.raises(ValueError, match="^no classifiers$"):
        metrics.ensembles(0, 2, seed=0)


def test_bootstrap_auc_is_the_sample_std_over_resamples():
    scores = np.array([0.9, 0.4, 0.3, 0.7, 0.5, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 0], bool)
    w = np.array([1, 2, 1, 1, 1, 3], float)
    # the resamples are numpy's default_rng(seed).integers(0, n, n), one per repetition;
    # resamples with a single class are skipped (with seed 0 the third of five is)
    rng = np.random.default_rng(0)
    values, skipped = [], 0
    for _ in range(5):
        idx = rng.integers(0, 6, 6)
        if labels[idx].all() or not labels[idx].any():
            skipped += 1
            continue
        values.append(metrics.auc(scores[idx], labels[idx], w[idx]))
    assert skipped == 1 and len(values) == 4 and np.std(values) > 0
    assert metrics.bootstrap_auc(scores, labels, w, n=5, seed=0) == pytest.approx(np.std(values, ddof=1))
    # perfectly separated: every resample has AUC 1 -> spread 0; one resample -> undefined
    sep = np.array([5, 4, 1, 0.5])
    assert metrics.bootstrap_auc(sep, np.array([1, 1, 0, 0]), n=30, seed=1) == 0.0
    assert np.isnan(metrics.bootstrap_auc(sep, np.array([1, 1, 0, 0]), n=1, seed=1))
    # two valid resamples are enough for a spread; defaults are 100 resamples with seed 0
    two = [metrics.auc(scores[i], labels[i]) for i in
           (lambda r: [r.integers(0, 6, 6) for _ in range(2)])(np.random.default_rng(0))]
    assert metrics.bootstrap_auc(scores, labels, n=2, seed=0) == pytest.approx(np.std(two, ddof=1))
    assert metrics.bootstrap_auc(scores, labels) == metrics.bootstrap_auc(scores, labels, None, 100, 0)
    assert metrics.bootstrap_auc(scores, labels) != metrics.bootstrap_auc(scores, labels, None, 101, 0)
    assert metrics.bootstrap_auc(scores, labels) != metrics.bootstrap_auc(scores, labels, None, 100, 1)
    # unweighted = unit weights
    assert metrics.bootstrap_auc(scores, labels, n=6, seed=2) == \
        metrics.bootstrap_auc(scores, labels, np.ones(6), n=6, seed=2)


# ---------------------------------------------------------------- VICReg by hand

# z1 = [[0, 0], [2, 2]]: centred +-1 in both dims, unbiased variance 2 (std 1.41 > 1: no
# hinge), covariance [[2, 2], [2, 2]] -> off-diagonal squares 8, / d = 4.
# z2 = [[0, 0], [1, 0]]: variances (.5, 0) -> hinge (1 - sqrt(.5 + 1e-4) + 1 - sqrt(1e-4)) / 2,
# covariance [[.5, 0], [0, 0]] -> 0.  Invariance: mean squared difference (0 + 0 + 1 + 4) / 4.
V1 = [[0.0, 0.0], [2.0, 2.0]]
V2 = [[0.0, 0.0], [1.0, 0.0]]
# The variance term is averaged over the two views (authors' implementation): view 1 has no
# hinge (0), view 2 the mean over its dimensions above -> (0 + that) / 2 = .22464.
V_INV, V_COV = 1.25, 4.0
V_VAR = (0.0 + (1 - math.sqrt(0.5 + 1e-4) + 1 - math.sqrt(1e-4)) / 2) / 2


def test_vicreg_terms_by_hand():
    z1, z2 = torch.tensor(V1, dtype=torch.float64), torch.tensor(V2, dtype=torch.float64)
    from salad.encoder.losses import vicreg
    terms = vicreg(z1, z2, 2.0, 3.0, 0.5)
    assert terms["invariance"].item() == pytest.approx(2.0 * V_INV, rel=1e-12)
    assert terms["variance"].item() == pytest.approx(3.0 * V_VAR, rel=1e-9)
    assert terms["covariance"].item() == pytest.approx(0.5 * V_COV, rel=1e-12)
    default = vicreg(z1, z2)                                   # paper weights 25, 25, 1
    assert default["invariance"].item() == pytest.approx(25 * V_INV)
    assert default["variance"].item() == pytest.approx(25 * V_VAR)
    assert default["covariance"].item() == pytest.approx(V_COV)
    # covariance uses the unbiased 1/(n - 1): n = 3 points on the diagonal -> c = [[1, 1], [1, 1]]
    line = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], dtype=torch.float64)
    assert vicreg(line, line, 0, 0, 1.0)["covariance"].item() == pytest.approx(2 * 1.0)
    # eps keeps the hinge finite-gradient at zero spread: sqrt(0 + eps) = .01 per dimension;
    # each view's mean over dimensions is 1 (.99), averaged over the two views: 1 (.99), not 2
    flat = torch.zeros(2, 2, dtype=torch.float64)
    assert vicreg(flat, flat, 0, 1.0, 0, eps=0.0)["variance"].item() == pytest.approx(1.0, rel=1e-12)
    assert vicreg(flat, flat, 0, 1.0, 0)["variance"].item() == pytest.approx(0.99, rel=1e-12)
    # views with different spreads: the average of the two, not either one nor the sum
    # (view 1 flat: 1 - .01 = .99; view 2 V1: no hinge -> (.99 + 0) / 2)
    assert vicreg(flat, z1, 0, 1.0, 0)["variance"].item() == pytest.approx(0.99 / 2, rel=1e-12)


def test_vicreg_ce_objective_by_hand():
    # cross-entropy per view: view 1 logits 0 -> ln 2; view 2: event 0 logits (ln 3, 0),
    # label 0 -> -ln(3/4), event 1 ln 2; the objective averages over views then scales
    ce = (math.log(2) + (-math.log(0.75) + math.log(2)) / 2) / 2
    cfg = {"loss": "vicreg_ce", "variational": False, "kl_weight": 0.1, "temperature": 1.0,
           "vicreg": {"invariance": 2.0, "variance": 3.0, "covariance": 0.5, "ce_scale": 2.0}}
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    outs = [{"proj": t(V1), "mu": t(V1), "logvar": None, "logits": t([[0, 0], [0, 0]])},
            {"proj": t(V2), "mu": t(V2), "logvar": None,
             "logits": t([[math.log(3), 0], [0, 0]])}]
    out = build_objective(cfg)(outs, torch.tensor([0, 1]))
    assert out["cross_entropy"].item() == pytest.approx(2.0 * ce, rel=1e-12)
    # V_VAR is the view-averaged variance hinge (see above)
    expected = 2.0 * V_INV + 3.0 * V_VAR + 0.5 * V_COV + 2.0 * ce
    assert out["loss"].item() == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------- evaluation tables

def test_required_injection_and_its_band_by_hand():
    # significance per (strength, instance): mean (2, 4, 7), sample std (√2, √2, 0); there are
    # no strength-0 rows: the curves start at (0, 0) (no injection, no significance, no spread)
    sig = {1.0: [1.0, 3.0], 2.0: [3.0, 5.0], 4.0: [7.0, 7.0]}
    rows = [{"setup": "ID", "signal": "Y400", "held_out": True, "method": m, "eps_b": 0.1,
             "strength": s, "instance": i, "ensemble": 0, "sic": 1.0, "sic_err": 0.1, "eps_s": 0.1,
             "significance": z * (1 if m == "cathode" else 0.2), "significance_data": z,
             "n_sig": 1, "n_bkg": 1, "n_bkg_eval": 10, "n_bkg_pass": 1}
            for m in ("cathode", "iad") for s, zs in sig.items() for i, z in enumerate(zs)]
    summary, required = evaluate.summarise(pd.DataFrame(rows), 3.0)
    r = required.set_index("method")
    r2 = math.sqrt(2)
    # mean: 2 at 1, 4 at 2 -> 1.5; mean + std: 0 at 0, 2 + √2 at 1 -> 3 / (2 + √2);
    # mean - std: 4 - √2 at 2, 7 at 4 -> 2 + 2 (3 - 4 + √2) / (7 - 4 + √2)
    assert r.loc["cathode", "required_strength"] == pytest.approx(1.5) and r.loc["cathode", "reached"]
    assert r.loc["cathode", "required_lo"] == pytest.approx(3 / (2 + r2))
    assert r.loc["cathode", "required_hi"] == pytest.approx(2 + 2 * (r2 - 1) / (3 + r2))
    # iad: significance x .2 never reaches 3 -> largest strength, not reached, hi = inf
    assert r.loc["iad", "required_strength"] == 4.0 and not r.loc["iad", "reached"]
    assert r.loc["iad", "required_hi"] == np.inf
    s = summary[summary["method"] == "cathode"].set_index("strength")
    assert s.loc[1.0, "significance_mean"] == 2.0 and s.loc[1.0, "significance_std"] == pytest.approx(r2)
    assert s.loc[4.0, "significance_std"] == 0.0 and s.loc[4.0, "n"] == 2


def test_markdown_and_dataset_keys():
    # evaluate.markdown is gone; Markdown is written by salad.tables.render, which for a table
    # without its own renderer writes '# title', an empty intro and the table: floats with 3
    # significant digits (2 -> 2.00), NaN as '–', +inf as '∞', strings as they are
    from salad.tables import render
    text = render("T", pd.DataFrame({"a": [1.23456, np.nan], "b": [np.inf, 2.0], "c": ["x", "y"]}), "T")
    assert text == ("# T\n\n\n\n| a | b | c |\n|---|---|---|\n| 1.23 | ∞ | x |\n"
                    "| – | 2.00 | y |\n")
    assert evaluate.dataset_key("r/pseudodata/Y400/2.5/3.parquet") == (2.5, 3)
    assert evaluate.dataset_key("r/scores/ID/1/Y400/0.5/7.parquet") == (0.5, 7)
    for bad in ("r/pseudodata/Y400/x/3.parquet", "r/scores/ID/1/Y400/0.5/7/flow2.parquet", "3.parquet"):
        with pytest.raises(Exception, match="cannot read strength/instance"):
            evaluate.dataset_key(bad)
    assert evaluate.settings({"ensemble_size": 3})["ensemble_size"] == 3
    with pytest.raises(SaladError, match=r"evaluate\.unknown"):   # no longer dropped silently
        evaluate.settings({"ensemble_size": 3, "unknown": 1})
    assert evaluate.settings(None) == evaluate.DEFAULTS


def test_evaluate_cli_tables_carry_sic_of_every_row(tmp_path):
    import json
    sb = [0.5, 9.5, -5.0, 20.0]
    a = _write_dataset(tmp_path / "pseudodata", 2.0, SIG_SCORES, BKG_SCORES, sb)
    b = _write_dataset(tmp_path / "pseudodata", 0.0, [], BKG_SCORES, sb)
    cfg = json.dumps({"evaluate": {"working_points": [0.1, 0.25], "bootstrap": 3,
                                   "mass_bins": 11, "target_significance": 1.0},
                      "regions": {"signal_region": list(EVAL_SR)}, "window": list(WINDOW)})
    from salad.artifacts import provenance, read_parquet, write_parquet
    evalset = tmp_path / "evaluation" / "set.parquet"
    evalset.parent.mkdir()
    write_parquet(_evaluation_set(), evalset, provenance("test"))
    out = tmp_path / "eval"
    evaluate.cli(["sensitivity", "--setup", "ID", "--signal", "Y400",
                  "--data", str(a["data"]), str(b["data"]),
                  "--scores", *map(str, a["scores"] + b["scores"]),
                  "--references", *map(str, a["references"] + b["references"]),
                  "--evaluation-set", str(evalset), "--held-out", "false",
                  "--output-dir", str(out), "--config", cfg])
    sens = read_parquet(out / "sensitivity.parquet")
    # strength 2 only (strength 0 goes to the sculpting files): 3 methods x 2 working points
    assert len(sens) == 3 * 2 and set(sens["strength"]) == {2.0} and not sens["held_out"].any()
    assert sens["sic"].notna().all()
    np.testing.assert_allclose(sens["sic"], sens["eps_s"] / np.sqrt(sens["eps_b"]), rtol=1e-12)
    tables = tmp_path / "tables"
    evaluate.cli(["tables", "--sensitivity", str(out / "sensitivity.parquet"),
                  "--sculpting-auc", str(out / "sculpting_auc.parquet"),
                  "--sculpting-mass", str(out / "sculpting_mass.parquet"),
                  "--output-dir", str(tables), "--config", cfg])
    summary = read_parquet(tables / "cathode_sensitivity.parquet")
    row = summary[(summary["method"] == "cathode") & (summary["strength"] == 2.0)
                  & (summary["eps_b"] == 0.1)].iloc[0]
    assert row["sic_mean"] == pytest.approx(0.75 / math.sqrt(0.1))
    assert row["sic_std"] == 0.0 and row["significance_std"] == 0.0 and row["n"] == 1
    md = (tables / "cathode_sensitivity.md").read_text()
    assert f"{0.75 / math.sqrt(0.1):.3g}" in md and md.startswith("# CATHODE sensitivity")
    req = read_parquet(tables / "cathode_required_injection.parquet")
    assert set(req["method"]) == {"cathode", "iad", "supervised"}
    md = (tables / "cathode_required_injection.md").read_text()
    assert md.startswith("# Required injection") and "1σ" in md   # the configured target, not 3
    # evaluate.target_significance = 1 is used: Z goes 0 -> 2.256 between strengths 0 and 2
    z = math.sqrt(2 * (4 * math.log(4) - 3))
    cat = req[(req["method"] == "cathode") & (req["eps_b"] == 0.1)].iloc[0]
    assert cat["reached"] and cat["required_strength"] == pytest.approx(2 / z)
    sculpt = read_parquet(tables / "cathode_sculpting.parquet")
    assert sculpt.iloc[0]["auc_mean"] == pytest.approx(0.75) and sculpt.iloc[0]["classifiers"] == 2
    with pytest.raises(Exception, match="no pseudo-data file given for strength 2, instance 0"):
        evaluate.cli(["sensitivity", "--setup", "ID", "--signal", "Y400", "--data", str(b["data"]),
                      "--scores", *map(str, a["scores"]), "--evaluation-set", str(evalset),
                      "--held-out", "false", "--output-dir", str(out), "--config", cfg])


# ---------------------------------------------------------------- pseudo-data inputs

def test_load_sample_checks_its_two_files(tmp_path):
    from salad.artifacts import provenance, write_parquet
    from salad.pseudodata import load_sample
    frame = SIG.iloc[:20]
    pre, spl = tmp_path / "pre.parquet", tmp_path / "split.parquet"

    def write(events, subsets):
        write_parquet(events, pre, provenance("preselect"))
        write_parquet(subsets, spl, provenance("split"))
    write(frame.drop(columns="subset"), frame[["event_id", "subset"]])
    got = load_sample(str(pre), str(spl))
    assert len(got) == 20 and list(got["subset"]) == list(frame["subset"])
    write(frame.drop(columns=["subset", "weight"]), frame[["event_id", "subset"]])
    with pytest.raises(SaladError, match=r"pre\.parquet.*weight"):
        load_sample(str(pre), str(spl))
    write(frame.drop(columns="subset"), frame[["event_id"]])
    with pytest.raises(SaladError, match=r"split\.parquet.*subset"):
        load_sample(str(pre), str(spl))
    two = frame.drop(columns="subset").assign(sample=["a", "b"] * 10)
    write(two, frame[["event_id", "subset"]])
    with pytest.raises(SaladError, match=r"pre\.parquet: holds several samples"):
        load_sample(str(pre), str(spl))
    # same length, other event ids: not this sample's split
    write(frame.drop(columns="subset"), frame[["event_id", "subset"]].assign(event_id=frame["event_id"] + 1))
    with pytest.raises(SaladError, match=r"split\.parquet: event ids do not match"):
        load_sample(str(pre), str(spl))
    # a duplicated event id in both files is not silently multiplied
    dup = frame.assign(event_id=np.r_[frame["event_id"].to_numpy()[:19], frame["event_id"].iloc[0]])
    write(dup.drop(columns="subset"), dup[["event_id", "subset"]])
    with pytest.raises((SaladError, ValueError)):
        load_sample(str(pre), str(spl))
