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

from salad import pseudodata
from salad.cathode import classify, evaluate, flow, metrics, template
from salad.config import REPO, load_config, load_yaml
from salad.contracts import in_signal_region
from salad.encoder import setups as setups_mod
from salad.encoder.losses import build_objective, kl_standard_normal, nt_xent, supcon
from salad.encoder.setups import resolve_setup, setup_names
from salad.errors import SaladError
from salad.pseudodata import build
from salad.split import assign, assign_evaluation_only, hash_uniform, split_frame

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
    np.testing.assert_allclose(fpr[:8], [0, 0, 0, 0.1, 0.1, 0.2, 0.3, 0.3])
    np.testing.assert_allclose(tpr[:8], [0, 0.25, 0.5, 0.5, 0.75, 0.75, 0.75, 1])
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
    rows = evaluate.working_point_rows(
        SCORES, LABELS, np.ones(14), SCORES, LABELS, list(EPS_S), {"bootstrap": 0}, 0, {"method": "m"}
    )
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
    assert by_eps[0.1]["sic"] == pytest.approx(0.75 / math.sqrt(0.1))  # 2.3717, not 7.5
    assert by_eps[0.25]["sic"] == pytest.approx(1.5)  # .75 / .5, not 3
    # Asimov significance at eps_B = .1: S = .75 * 4 = 3, B = .1 * 10 = 1,
    # Z = sqrt(2 [(S + B) ln(1 + S/B) - S]) = sqrt(2 (4 ln 4 - 3)) = 2.25618
    assert by_eps[0.1]["significance"] == pytest.approx(math.sqrt(2 * (4 * math.log(4) - 3)))


def test_evaluation_rows_use_the_evaluation_weights_and_the_given_bootstrap_seed():
    # the background event at score 8 weighs 2 of 11: the vertex (.1, .5) moves to (2/11, .5)
    # and eps_S at eps_B = .1 drops from .75 to .5 (as metrics.sic with these weights)
    w = np.ones(14)
    w[4] = 2.0
    rows = evaluate.working_point_rows(SCORES, LABELS, w, SCORES, LABELS, [0.1], {"bootstrap": 0}, 0, {})
    assert rows[0]["eps_s"] == pytest.approx(0.5)
    assert rows[0]["sic"] == pytest.approx(0.5 / math.sqrt(0.1))
    # the bootstrap errors are those of the caller's seed (reproducible per row, not a fixed
    # default shared by every classifier)
    for seed in (3, 11):
        row = evaluate.working_point_rows(
            SCORES, LABELS, w, SCORES, LABELS, [0.1], {"bootstrap": 20}, seed, {}
        )[0]
        ref = metrics.working_points(SCORES, LABELS, [0.1], w, 20, seed)
        assert row["sic_err"] == ref["sic_err"][0] and row["eps_s_err"] == ref["eps_s_err"][0]
    assert (
        evaluate.working_point_rows(SCORES, LABELS, w, SCORES, LABELS, [0.1], {"bootstrap": 20}, 3, {})[0][
            "sic_err"
        ]
        != metrics.working_points(SCORES, LABELS, [0.1], w, 20, 0)["sic_err"][0]
    )


def test_evaluation_rows_without_a_class_are_nan_not_guessed():
    # pseudo-data without signal: eps_S and SIC still come from the (two-class) evaluation set,
    # S = eps_S * 0 = 0 gives Z = 0, and the data-side significance (no ROC without signal)
    # is NaN, not guessed
    rows = evaluate.working_point_rows(
        SCORES, LABELS, np.ones(14), SCORES[4:], LABELS[4:], [0.1], {"bootstrap": 0}, 0, {}
    )
    assert rows[0]["eps_s"] == pytest.approx(0.75)
    assert rows[0]["sic"] == pytest.approx(0.75 / math.sqrt(0.1))
    assert rows[0]["significance"] == 0 and np.isnan(rows[0]["significance_data"])
    assert rows[0]["n_sig"] == 0 and rows[0]["n_bkg"] == 10
    # an evaluation set without one class has no efficiencies at all: an error, not a guess
    for keep in (slice(4, None), slice(0, 4)):
        with pytest.raises(ValueError, match="both classes"):
            evaluate.working_point_rows(
                SCORES[keep], LABELS[keep], np.ones(14)[keep], SCORES, LABELS, [0.1], {"bootstrap": 0}, 0, {}
            )


def test_summary_table_sic_is_the_mean_and_spread_of_the_rows():
    keys = {
        "setup": "ID",
        "signal": "Y400",
        "held_out": False,
        "method": "cathode",
        "eps_b": 0.1,
        "strength": 2.0,
    }
    sens = pd.DataFrame(
        [
            {
                **keys,
                "instance": i,
                "ensemble": 0,
                "eps_s": e,
                "sic": e / math.sqrt(0.1),
                "sic_err": err,
                "significance": z,
                "significance_data": z / 2,
                "n_sig": 4,
                "n_bkg": 10,
                "n_bkg_eval": 100,
                "n_bkg_pass": p,
            }
            for i, (e, z, err, p) in enumerate(
                [(0.5, 1.0, 0.1, 9), (0.75, 2.0, 0.2, 10), (1.0, 6.0, 0.6, 12)]
            )
        ]
    )
    summary, _ = evaluate.summarise(sens, 3.0)
    assert len(summary) == 1
    row = summary.iloc[0]
    assert list(summary.columns[:6]) == list(keys) and summary.index.tolist() == [0]
    assert row["sic_mean"] == pytest.approx(0.75 / math.sqrt(0.1))
    assert row["eps_s_mean"] == pytest.approx(0.75)
    assert row["sic_std"] == pytest.approx(0.25 / math.sqrt(0.1))  # sample std (ddof 1)
    assert row["significance_mean"] == pytest.approx(3.0) and row["n"] == 3
    # (.1 + .2 + .6) / 3 = .3: the mean of the (fully correlated) bootstrap errors, not a sum
    # in quadrature; data-side Z: (.5 + 1 + 3) / 3 = 1.5; the fewest passing background events
    assert row["sic_err"] == pytest.approx(0.3) and row["significance_data_mean"] == pytest.approx(1.5)
    assert row["n_bkg_eval"] == 100 and row["n_bkg_pass"] == 9
    # one ensemble per instance: no ensemble spread to estimate
    assert np.isnan(row["sic_syst"])
    # training systematic: sample std over the ensembles of one instance, averaged over
    # instances. Instance 0: SIC 1, 2, 3 -> std 1; instance 1: 2, 4, 6 -> std 2; mean 1.5
    rows = [
        {
            **keys,
            "instance": i,
            "ensemble": e,
            "eps_s": 0.5,
            "sic": s,
            "sic_err": 0.1,
            "significance": 1.0,
            "significance_data": 1.0,
            "n_sig": 4,
            "n_bkg": 10,
            "n_bkg_eval": 100,
            "n_bkg_pass": 10,
        }
        for i, sics in enumerate([(1.0, 2.0, 3.0), (2.0, 4.0, 6.0)])
        for e, s in enumerate(sics)
    ]
    summary, _ = evaluate.summarise(pd.DataFrame(rows), 3.0)
    assert summary.iloc[0]["sic_syst"] == pytest.approx(1.5)
    assert summary.iloc[0]["sic_std"] == pytest.approx(np.std([1, 2, 3, 2, 4, 6], ddof=1))


# A tie group holding both classes. 4 signal, 4 background:
#   score 3: S          -> (0, .25)
#   score 2: S, S, B    -> (.25, .75)    one tied two-class segment
#   score 1: S, B       -> (.5, 1)       another
#   score 0: B, B       -> (1, 1)
TIE_SCORES = np.array([3, 2, 2, 1, 2, 1, 0, 0], float)
TIE_LABELS = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)


def test_tpr_at_on_tied_two_class_segments():
    fpr, tpr = metrics.roc_curve(TIE_SCORES, TIE_LABELS)
    np.testing.assert_allclose(fpr, [0, 0, 0.25, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.25, 0.75, 1, 1])
    x = np.array([0.0, 0.0625, 0.125, 0.25, 0.375, 0.75, 1.0])
    # x = 0: top of the vertical segment (0, 0)-(0, .25); x = .0625: a quarter along
    # (0, .25)-(.25, .75) -> .25 + .25 * .5 = .375 (reversed: .625); .125 -> .5; .25 -> .75;
    # .375: half along (.25, .75)-(.5, 1) -> .875; beyond: 1.
    np.testing.assert_allclose(metrics.tpr_at(fpr, tpr, x), [0.25, 0.375, 0.5, 0.75, 0.875, 1, 1])
    assert metrics.tpr_at(fpr, tpr, 0.0625) == pytest.approx(0.375)  # scalar in, scalar out
    assert metrics.signal_efficiency(TIE_SCORES, TIE_LABELS, 0.0625) == pytest.approx(0.375)
    assert metrics.sic(TIE_SCORES, TIE_LABELS, 0.0625) == pytest.approx(0.375 / 0.25)
    # weights: doubling the tied background event's weight moves the vertex, not the rule
    w = np.array([1, 1, 1, 1, 2, 1, 1, 1], float)  # total background weight 5
    fpr_w, tpr_w = metrics.roc_curve(TIE_SCORES, TIE_LABELS, w)
    np.testing.assert_allclose(fpr_w, [0, 0, 0.4, 0.6, 1])
    assert metrics.signal_efficiency(TIE_SCORES, TIE_LABELS, 0.1, w) == pytest.approx(0.25 + 0.25 * 0.5)
    # AUC of the tied ROC (trapezoids): .25*(.25+.75)/2 + .25*(.75+1)/2 + .5*1 = .84375
    assert metrics.auc(TIE_SCORES, TIE_LABELS) == pytest.approx(0.84375)
    # weighted: .4 (.25 + .75)/2 + .2 (.75 + 1)/2 + .4 = .775
    assert metrics.auc(TIE_SCORES, TIE_LABELS, w) == pytest.approx(0.775)
    # a vertical last segment at eps_B = 1: its top
    assert metrics.tpr_at(np.array([0, 0, 1, 1.0]), np.array([0, 0.5, 0.5, 1.0]), 1.0) == 1.0


# ---------------------------------------------------------------- pseudo-data instances

SR = [120.0, 130.0]
PCFG = {"pseudodata": {"luminosity_ifb": 1.0, "seed": 4}, "regions": {"signal_region": SR}}


def _sample(name, code, group, n, xsec, myy, seed):
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0.5, 1.5, n)
    ids = code * 10**9 + np.arange(n, dtype=np.int64)
    return pd.DataFrame(
        {
            "event_id": ids,
            "sample": name,
            "group": np.int8(group),
            "weight": xsec * raw / raw.sum(),
            "myy": myy(rng, n).astype(np.float32),
            "subset": assign(ids, 1, code, 0.5),
        }
    )


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
        assert n > 10 and all(len(x) == n for x in sets)  # same count at the same strength
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
    z = np.c_[np.arange(n, dtype=float), rng.normal(size=n)]  # column 0 = row number
    myy = rng.uniform(105, 160, n)
    cfg = {
        "val_fraction": val_fraction,
        "max_epochs": 2,
        "patience": 5,
        "transforms": 1,
        "hidden": 8,
        "blocks": 1,
        "batch_size": 16,
    }
    ckpt = flow.fit(z, myy, (105.0, 160.0), cfg, seed=3)
    (rec,) = recorders

    def rows(grad):
        seen = np.concatenate(rec.seen[grad])[:, 0] * ckpt["z_std"][0] + ckpt["z_mean"][0]
        return np.rint(seen).astype(int)

    train, val = rows(True), rows(False)
    n_val = round(val_fraction * n)
    assert len(set(val)) == n_val == ckpt["n_val"]
    assert len(val) == 2 * n_val  # every validation row once per epoch
    assert len(set(train)) == n - n_val == ckpt["n_train"]
    assert len(train) == 2 * (n - n_val)  # every training row once per epoch
    assert not set(train) & set(val)
    assert set(train) | set(val) == set(range(n))
    # the scaler is fitted on the training rows only
    assert ckpt["z_mean"][0] == pytest.approx(np.mean(sorted(set(train))))


# ---------------------------------------------------------------- encoder objective


def _outs(z1, z2, mus, logvars):
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    return [
        {"proj": t(z), "mu": t(m), "logvar": None if lv is None else t(lv)}
        for z, m, lv in zip((z1, z2), mus, logvars)
    ]


# Two events, two views, identical orthogonal projections, tau = 1: every anchor has one
# positive (similarity 1) and two negatives (similarity 0), so NT-Xent = ln(e + 2) - 1.
Z = [[1.0, 0.0], [0.0, 1.0]]
NT_XENT = math.log(math.e + 2) - 1.0  # 0.55144
# KL(N(mu, e^lv) || N(0, 1)) = 1/2 sum_d (mu^2 + e^lv - 1 - lv), mean over events:
# view 1: mu = (1, 0), lv = 0 for both events -> 1/2 (1 + 0) = .5
# view 2: mu = 0, lv = (ln 2, 0) for both events -> 1/2 (2 - 1 - ln 2) = .15343
MUS = [[[1.0, 0.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]
LOGVARS = [[[0.0, 0.0], [0.0, 0.0]], [[math.log(2), 0.0], [math.log(2), 0.0]]]
KL_MEAN = (0.5 + 0.5 * (1 - math.log(2))) / 2  # .32672


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
    assert kl_standard_normal(torch.tensor(MUS[1]), torch.tensor(LOGVARS[1])).item() == pytest.approx(
        0.5 * (1 - math.log(2)), rel=1e-6
    )
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
        else:  # signal-aware setups keep every SM sample too (hold-outs are BSM only)
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
    return pd.DataFrame(
        {
            "event_id": EVAL_IDS,
            "sample": ["Y400"] * 4 + ["yy"] * 10 + ["Y999"],
            "group": np.r_[np.full(4, -6), np.zeros(10), [-7]].astype(np.int64),
            "is_signal": np.r_[LABELS, True],
            "myy": 125.0,
            "weight": 1.0,
        }
    )


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
    d = np.random.default_rng(len(scores)).uniform(-0.4, 0.4, len(scores))  # mean is `scores`
    prov = provenance("test")
    folder = root / f"{strength:g}"
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "0.parquet"
    write_parquet(
        pd.DataFrame(
            {
                "event_id": ids,
                "sample": "s",
                "myy": myy,
                "is_signal": is_sig,
                "group": np.where(is_sig, -1, 0),
            }
        ),
        data,
        prov,
    )
    role = np.where(np.arange(len(scores)) < n_sr, "sr", "sb")
    # template: classifier 0 sees the SR scores again (AUC .5), classifier 1 sees them all
    # 100 lower (AUC 1)
    sr0, sr1 = (scores + d)[:n_sr], (scores - d)[:n_sr]
    n_ev = len(EVAL_SCORES)
    de = np.random.default_rng(n_ev).uniform(-0.4, 0.4, n_ev)  # mean is EVAL_SCORES
    frame = pd.DataFrame(
        {
            "role": np.r_[role, ["template"] * n_sr, ["eval"] * n_ev],
            "event_id": np.r_[ids, 5000 + np.arange(n_sr), EVAL_IDS],
            "myy": np.r_[myy, np.full(n_sr, 125.0), np.full(n_ev, 125.0)],
            "weight": np.r_[np.ones(len(scores)), np.full(n_sr, 0.5), np.ones(n_ev)],
            "fold": np.r_[np.zeros(len(scores) + n_sr, np.int64), np.full(n_ev, -1)],
            "score_0": np.r_[scores + d, sr0, EVAL_SCORES + de],
            "score_1": np.r_[scores - d, sr1 - 100.0, EVAL_SCORES - de],
        }
    )
    score_path = root / "scores" / f"{strength:g}" / "0.parquet"
    score_path.parent.mkdir(parents=True, exist_ok=True)
    write_parquet(frame, score_path, prov)
    ref_path = root / "ref" / f"{strength:g}" / "0.parquet"
    ref_path.parent.mkdir(parents=True, exist_ok=True)
    write_parquet(
        frame.assign(iad_0=frame["score_0"] + frame["score_1"], sup_0=-(frame["score_0"] + frame["score_1"])),
        ref_path,
        prov,
    )
    return {"data": data, "scores": [score_path], "references": [ref_path]}


def test_sensitivity_rows_from_files_follow_the_definitions(tmp_path):
    sb = [0.5, 9.5, -5.0, 20.0]
    datasets = {
        (2.0, 0): _write_dataset(tmp_path, 2.0, SIG_SCORES, BKG_SCORES, sb),
        (0.0, 0): _write_dataset(tmp_path, 0.0, [], BKG_SCORES, sb),
    }
    cfg = {
        "working_points": list(EPS_S),
        "ensemble_size": 2,
        "mass_bins": 11,
        "sculpting_efficiency": 0.2,
        "bootstrap": 5,
    }
    out = evaluate.sensitivity("ID", "Y400", datasets, _evaluation_set(), cfg, EVAL_SR, WINDOW, held_out=True)
    sens = out["sensitivity"]
    assert set(sens["method"]) == {"cathode", "iad", "supervised"}
    # the columns the readers downstream use (cathode.plots, tables, comparison, summarise)
    assert list(sens.columns) == evaluate.SENS_COLS and sens["ensemble"].notna().all()
    assert {"classifier", "auc", "auc_boot_std"} <= set(out["sculpting_auc"].columns)
    assert {"classifier", "fpr", "tpr"} <= set(out["sculpting_roc"].columns)
    mass_cols = {"ensemble", "efficiency", "bin_lo", "bin_hi", "n_before", "n_after", "chi2", "ndf", "jsd"}
    assert mass_cols <= set(out["sculpting_mass"].columns)
    for name in ("sculpting_auc", "sculpting_roc", "sculpting_mass"):
        assert set(evaluate.SET_KEYS) <= set(out[name].columns) and out[name].notna().all().all()
    # sensitivity rows only for injected signal (strength 0 feeds the sculpting frames only)
    assert set(sens["strength"]) == {2.0} and sens["held_out"].all()
    assert set(sens["instance"]) == {0} and set(out["sculpting_auc"]["instance"]) == {0}
    # a second strength-0 instance adds its sculpting rows to the first one's
    two = {**datasets, (0.0, 1): _write_dataset(tmp_path / "b", 0.0, [], BKG_SCORES, sb)}
    out2 = evaluate.sensitivity("ID", "Y400", two, _evaluation_set(), cfg, EVAL_SR, WINDOW, held_out=True)
    for name in ("sculpting_auc", "sculpting_roc", "sculpting_mass"):
        assert set(out2[name]["instance"]) == {0, 1} and len(out2[name]) == 2 * len(out[name])
    ev = _evaluation_set()
    with pytest.raises(SaladError, match=r"^evaluation set: no events of signal Y999$"):
        evaluate.sensitivity(
            "ID", "Y999", datasets, ev[~ev["is_signal"]], cfg, EVAL_SR, WINDOW, held_out=True
        )
    injected = sens
    assert len(injected) == 3 * len(EPS_S)  # one ensemble per method
    for _, row in injected.iterrows():
        # efficiencies on the evaluation set (Y400 + background only): same scores as the data
        score = -SCORES if row["method"] == "supervised" else SCORES
        eps_b = row["eps_b"]
        assert row["n_sig"] == 4 and row["n_bkg"] == 10  # SR truth only, SB not counted
        assert row["n_bkg_eval"] == 10  # the Y999 event is not background
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
    assert len(mass) == 11 and set(mass["ndf"]) == {2}  # 3 occupied bins (110, 125, 140)
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
    assert metrics.required_strength([0, 1], [3.0, 2.0], 3.0) == (0.0, True)  # met, then lost
    assert metrics.required_strength([0, 1], [1.0, 3.0], 3.0) == (1.0, True)  # met at the end
    assert metrics.required_strength([0, 1], [2.0, 4.0]) == (0.5, True)  # default target 3
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
    two = [
        metrics.auc(scores[i], labels[i])
        for i in (lambda r: [r.integers(0, 6, 6) for _ in range(2)])(np.random.default_rng(0))
    ]
    assert metrics.bootstrap_auc(scores, labels, n=2, seed=0) == pytest.approx(np.std(two, ddof=1))
    assert metrics.bootstrap_auc(scores, labels) == metrics.bootstrap_auc(scores, labels, None, 100, 0)
    assert metrics.bootstrap_auc(scores, labels) != metrics.bootstrap_auc(scores, labels, None, 101, 0)
    assert metrics.bootstrap_auc(scores, labels) != metrics.bootstrap_auc(scores, labels, None, 100, 1)
    # unweighted = unit weights
    assert metrics.bootstrap_auc(scores, labels, n=6, seed=2) == metrics.bootstrap_auc(
        scores, labels, np.ones(6), n=6, seed=2
    )


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
    default = vicreg(z1, z2)  # paper weights 25, 25, 1
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
    cfg = {
        "loss": "vicreg_ce",
        "variational": False,
        "kl_weight": 0.1,
        "temperature": 1.0,
        "vicreg": {"invariance": 2.0, "variance": 3.0, "covariance": 0.5, "ce_scale": 2.0},
    }
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    outs = [
        {"proj": t(V1), "mu": t(V1), "logvar": None, "logits": t([[0, 0], [0, 0]])},
        {"proj": t(V2), "mu": t(V2), "logvar": None, "logits": t([[math.log(3), 0], [0, 0]])},
    ]
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
    rows = [
        {
            "setup": "ID",
            "signal": "Y400",
            "held_out": True,
            "method": m,
            "eps_b": 0.1,
            "strength": s,
            "instance": i,
            "ensemble": 0,
            "sic": 1.0,
            "sic_err": 0.1,
            "eps_s": 0.1,
            "significance": z * (1 if m == "cathode" else 0.2),
            "significance_data": z,
            "n_sig": 1,
            "n_bkg": 1,
            "n_bkg_eval": 10,
            "n_bkg_pass": 1,
        }
        for m in ("cathode", "iad")
        for s, zs in sig.items()
        for i, z in enumerate(zs)
    ]
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
    # target 5 (the band uses the same target): mean 4 at 2, 7 at 4 -> 2 + 2/3; mean + std
    # 2 + √2 at 1, 4 + √2 at 2 -> 1 + (3 - √2)/2; mean - std 4 - √2 at 2, 7 at 4 -> 2 + 2 (1 + √2)/(3 + √2)
    r5 = evaluate.summarise(pd.DataFrame(rows), 5.0)[1].set_index("method").loc["cathode"]
    assert r5["required_strength"] == pytest.approx(2 + 2 / 3) and r5["target_significance"] == 5.0
    assert r5["required_lo"] == pytest.approx(1 + (3 - r2) / 2)
    assert r5["required_hi"] == pytest.approx(2 + 2 * (1 + r2) / (3 + r2))


def test_markdown_and_dataset_keys():
    # evaluate.markdown is gone; Markdown is written by salad.tables.render, which for a table
    # without its own renderer writes '# title', an empty intro and the table: floats with 3
    # significant digits (2 -> 2.00), NaN as '–', +inf as '∞', strings as they are
    from salad.tables import render

    text = render("T", pd.DataFrame({"a": [1.23456, np.nan], "b": [np.inf, 2.0], "c": ["x", "y"]}), "T")
    assert text == ("# T\n\n\n\n| a | b | c |\n|---|---|---|\n| 1.23 | ∞ | x |\n| – | 2.00 | y |\n")
    assert evaluate.dataset_key("r/pseudodata/Y400/2.5/3.parquet") == (2.5, 3)
    assert evaluate.dataset_key("r/scores/ID/1/Y400/0.5/7.parquet") == (0.5, 7)
    for bad in ("r/pseudodata/Y400/x/3.parquet", "r/scores/ID/1/Y400/0.5/7/flow2.parquet", "3.parquet"):
        with pytest.raises(Exception, match="cannot read strength/instance"):
            evaluate.dataset_key(bad)
    assert evaluate.settings({"ensemble_size": 3})["ensemble_size"] == 3
    with pytest.raises(SaladError, match=r"evaluate\.unknown"):  # no longer dropped silently
        evaluate.settings({"ensemble_size": 3, "unknown": 1})
    assert evaluate.settings(None) == evaluate.DEFAULTS


def test_evaluate_cli_tables_carry_sic_of_every_row(tmp_path):
    import json

    sb = [0.5, 9.5, -5.0, 20.0]
    a = _write_dataset(tmp_path / "pseudodata", 2.0, SIG_SCORES, BKG_SCORES, sb)
    b = _write_dataset(tmp_path / "pseudodata", 0.0, [], BKG_SCORES, sb)
    cfg = json.dumps(
        {
            "evaluate": {
                "working_points": [0.1, 0.25],
                "bootstrap": 3,
                "mass_bins": 11,
                "target_significance": 1.0,
            },
            "regions": {"signal_region": list(EVAL_SR)},
            "window": list(WINDOW),
        }
    )
    from salad.artifacts import provenance, read_parquet, write_parquet

    evalset = tmp_path / "evaluation" / "set.parquet"
    evalset.parent.mkdir()
    write_parquet(_evaluation_set(), evalset, provenance("test"))
    out = tmp_path / "eval"
    evaluate.cli(
        [
            "sensitivity",
            "--setup",
            "ID",
            "--signal",
            "Y400",
            "--data",
            str(a["data"]),
            str(b["data"]),
            "--scores",
            *map(str, a["scores"] + b["scores"]),
            "--references",
            *map(str, a["references"] + b["references"]),
            "--evaluation-set",
            str(evalset),
            "--held-out",
            "false",
            "--output-dir",
            str(out),
            "--config",
            cfg,
        ]
    )
    sens = read_parquet(out / "sensitivity.parquet")
    # strength 2 only (strength 0 goes to the sculpting files): 3 methods x 2 working points
    assert len(sens) == 3 * 2 and set(sens["strength"]) == {2.0} and not sens["held_out"].any()
    assert sens["sic"].notna().all()
    np.testing.assert_allclose(sens["sic"], sens["eps_s"] / np.sqrt(sens["eps_b"]), rtol=1e-12)
    tables = tmp_path / "tables"
    evaluate.cli(
        [
            "tables",
            "--sensitivity",
            str(out / "sensitivity.parquet"),
            "--sculpting-auc",
            str(out / "sculpting_auc.parquet"),
            "--sculpting-mass",
            str(out / "sculpting_mass.parquet"),
            "--output-dir",
            str(tables),
            "--config",
            cfg,
        ]
    )
    summary = read_parquet(tables / "cathode_sensitivity.parquet")
    row = summary[
        (summary["method"] == "cathode") & (summary["strength"] == 2.0) & (summary["eps_b"] == 0.1)
    ].iloc[0]
    assert row["sic_mean"] == pytest.approx(0.75 / math.sqrt(0.1))
    assert row["sic_std"] == 0.0 and row["significance_std"] == 0.0 and row["n"] == 1
    md = (tables / "cathode_sensitivity.md").read_text()
    assert f"{0.75 / math.sqrt(0.1):.3g}" in md and md.startswith("# CATHODE sensitivity")
    req = read_parquet(tables / "cathode_required_injection.parquet")
    assert set(req["method"]) == {"cathode", "iad", "supervised"}
    md = (tables / "cathode_required_injection.md").read_text()
    assert md.startswith("# Required injection") and "1σ" in md  # the configured target, not 3
    # evaluate.target_significance = 1 is used: Z goes 0 -> 2.256 between strengths 0 and 2
    z = math.sqrt(2 * (4 * math.log(4) - 3))
    cat = req[(req["method"] == "cathode") & (req["eps_b"] == 0.1)].iloc[0]
    assert cat["reached"] and cat["required_strength"] == pytest.approx(2 / z)
    sculpt = read_parquet(tables / "cathode_sculpting.parquet")
    assert sculpt.iloc[0]["auc_mean"] == pytest.approx(0.75) and sculpt.iloc[0]["classifiers"] == 2
    with pytest.raises(Exception, match="no pseudo-data file given for strength 2, instance 0"):
        evaluate.cli(
            [
                "sensitivity",
                "--setup",
                "ID",
                "--signal",
                "Y400",
                "--data",
                str(b["data"]),
                "--scores",
                *map(str, a["scores"]),
                "--evaluation-set",
                str(evalset),
                "--held-out",
                "false",
                "--output-dir",
                str(out),
                "--config",
                cfg,
            ]
        )


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


# ---------------------------------------------------------------- split: SplitMix64 hash
# (this part and below: written from the survivors of `make mutate`, docs/testing.md; the
# references are written from the docstrings' definitions in plain Python, not from the code)

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
    return (splitmix64((event_id & MASK) ^ state) >> 11) / 2.0**53


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
    assert hash_uniform(np.array([0]))[0] == (0xE220A8397B1DCDAF >> 11) / 2.0**53


def reference_subset(u: float, encoder_fraction: float, tvt, evaluation_fraction: float) -> str:
    """Definition in salad.split's docstring."""
    if u < encoder_fraction:
        v = u / encoder_fraction
        return "train" if v < tvt[0] else "val" if v < tvt[0] + tvt[1] else "test"
    rest = (u - encoder_fraction) / (1.0 - encoder_fraction)
    return "eval" if rest < evaluation_fraction else "data"


@pytest.mark.parametrize(
    "encoder_fraction, tvt, evaluation_fraction",
    [(0.5, (0.6, 0.2, 0.2), 0.0), (0.3, (0.5, 0.3, 0.2), 0.25), (0.7, (0.2, 0.2, 0.6), 0.5)],
)
def test_assign_follows_the_definition_event_by_event(encoder_fraction, tvt, evaluation_fraction):
    ids = 7 * 10**9 + np.arange(3000, dtype=np.int64)
    got = assign(ids, 5, 9, encoder_fraction, tvt, evaluation_fraction)
    want = [
        reference_subset(reference_uniform(int(i), 5, 9), encoder_fraction, tvt, evaluation_fraction)
        for i in ids
    ]
    np.testing.assert_array_equal(got, want)
    frame = split_frame(
        ids,
        {"seed": 5, "encoder_fraction": encoder_fraction, "train_val_test": list(tvt)},
        9,
        {"fraction": evaluation_fraction, "reference_fraction": 0.9},
    )
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
        frame = split_frame(
            ids,
            {"seed": 4, "encoder_fraction": 0.5, "train_val_test": [0.6, 0.2, 0.2]},
            2,
            {"fraction": 0.9, "reference_fraction": fraction},
            evaluation_only=True,
        )
        np.testing.assert_array_equal(frame["subset"].to_numpy(str), want)
    # no evaluation section: reference_fraction 0 -> everything eval; fraction 0 -> no eval
    assert set(split_frame(ids, {"seed": 4}, 2, None, evaluation_only=True)["subset"]) == {"eval"}
    plain = split_frame(ids, {"seed": 4, "encoder_fraction": 0.5, "train_val_test": [0.6, 0.2, 0.2]}, 2)
    assert "eval" not in set(plain["subset"])
    small = split_frame(
        ids.astype(np.int32), {"seed": 4, "encoder_fraction": 0.5, "train_val_test": [0.6, 0.2, 0.2]}, 2
    )
    assert small["event_id"].dtype == np.int64  # the contract's id type
    np.testing.assert_array_equal(small["subset"], plain["subset"])


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: assign([1], 1, 7, 0.5, (0.6, 0.2, 0.3)),
            r"^split.train_val_test: three positive fractions summing to 1, got \[0.6, 0.2, 0.3\]$",
        ),
        (lambda: assign([1], 1, 7, 0.5, (0.6, 0.4)), "three positive fractions"),
        (lambda: assign([1], 1, 7, 0.5, (1.0, 0.0, 0.0)), "three positive fractions"),
        (lambda: assign([1], 1, 7, 0.0), r"^split.encoder_fraction: must be in \(0, 1\), got 0.0$"),
        (lambda: assign([1], 1, 7, 1.0), "encoder_fraction"),
        (
            lambda: assign([1], 1, 7, 0.5, evaluation_fraction=1.0),
            r"^evaluation.fraction: must be in \[0, 1\), got 1.0$",
        ),
        (lambda: assign([1], 1, 7, 0.5, evaluation_fraction=-0.1), "evaluation.fraction"),
        (
            lambda: assign_evaluation_only([1], 1, 7, 1.0),
            r"^evaluation.reference_fraction: must be in \[0, 1\), got 1.0$",
        ),
        (lambda: assign_evaluation_only([1], 1, 7, -0.5), "reference_fraction"),
    ],
)
def test_split_fraction_errors_name_the_key(call, message):
    with pytest.raises(SaladError, match=message):
        call()
    # the boundary values that are allowed
    assign([1], 1, 7, 0.5, (0.6, 0.2, 0.2), 0.0)
    assign_evaluation_only([1], 1, 7, 0.0)


# ---------------------------------------------------------------- encoder setups
GROUPS = {"yy": 0, "ggH": 1, "C1N2_200": -1, "C1N2_300": -1, "Y400": -6}


def test_resolve_setup_reads_past_seeds_copies_values_and_names_a_missing_setup():
    from salad.encoder import setups as S

    aug = {"mask": 0.2}
    enc = {"defaults": {}, "setups": {"A": {"seeds": [1, 2], "kl_weight": 0.3, "augmentations": aug}}}
    cfg = S.resolve_setup(enc, "A", GROUPS)
    assert cfg["kl_weight"] == 0.3 and "seeds" not in cfg  # keys after `seeds` still apply
    assert cfg["augmentations"] == aug and cfg["augmentations"] is not aug  # a copy, not the config's
    with pytest.raises(SaladError, match=r"^encoder.setups: unknown setup 'A'; configured: $"):
        S.resolve_setup({}, "A", GROUPS)


def test_resolve_setup_is_defaults_then_config_defaults_then_setup():
    enc = {
        "seeds": [3],
        "defaults": {"width": 16, "heads": 2, "lr": 1.0, "seeds": [9]},
        "setups": {"A": {"lr": 2.0, "holdout_groups": [-1], "seeds": [4]}, "B": None},
    }
    got = setups_mod.resolve_setup(enc, "A", GROUPS)
    want = {
        **setups_mod.DEFAULTS,
        "width": 16,
        "heads": 2,
        "lr": 2.0,
        "holdout_groups": [-1],
        "setup": "A",
        "train_samples": {"yy": 0, "ggH": 1, "Y400": -6},
    }
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


@pytest.mark.parametrize(
    "setup, message",
    [
        ({"foo": 1}, r"^encoder.setups.X: unknown setting 'foo'$"),
        (
            {"model": "cnn"},
            r"^encoder.setups.X.model: 'cnn' is not one of particle_transformer, "
            r"transformer, mlp$",
        ),
        (
            {"loss": "l2"},
            r"^encoder.setups.X.loss: 'l2' is not one of supcon, simclr, "
            r"simclr_supervised, vicreg_ce$",
        ),
        (
            {"augmentations": {"zoom": 1, "mask": 1, "blur": 1}},
            r"^encoder.setups.X.augmentations: unknown \['blur', 'zoom'\]; known: mask, drop_object, "
            r"rotate, flip_eta, smear_pt$",
        ),
        ({"optimizer": "sgd"}, r"^encoder.setups.X.optimizer: 'sgd' is not one of adam, adamw, lars$"),
        ({"positives": "x"}, r"^encoder.setups.X.positives: 'x' is not one of views, labels$"),
        ({"balance": "x"}, r"^encoder.setups.X.balance: 'x' is not one of classes, weighted$"),
        (
            {"positives": "labels", "loss": "simclr", **AUG},
            r"^encoder.setups.X.positives: 'labels' applies to loss vicreg_ce \(simclr_supervised and "
            r"supcon already use the labels\)$",
        ),
        ({"positives": "labels"}, "applies to loss vicreg_ce"),
        (
            {"loss": "simclr"},
            r"^encoder.setups.X.augmentations: loss 'simclr' compares two augmented "
            r"views and needs at least one augmentation$",
        ),
        ({"loss": "simclr_supervised"}, "needs at least one augmentation"),
        ({"loss": "vicreg_ce"}, "needs at least one augmentation"),
        (
            {"holdout_samples": ["Y999"]},
            r"^encoder.setups.X.holdout_samples: 'Y999' is not a "
            r"configured sample \(samples: yy, ggH, C1N2_200, C1N2_300, Y400\)$",
        ),
        ({"holdout_groups": [-5]}, r"^encoder.setups.X.holdout_groups: no configured sample has group -5$"),
        (
            {"signals": False, "holdout_groups": [1]},
            r"^encoder.setups.X: training needs at least two process groups, got \[0\]$",
        ),
        ({"width": 10, "heads": 4}, r"^encoder.setups.X.width: 10 is not divisible by heads=4$"),
    ],
)
def test_every_setup_error_names_the_key(setup, message):
    with pytest.raises(SaladError, match=message):
        setups_mod.resolve_setup({"setups": {"X": setup}}, "X", GROUPS)


def test_setups_that_are_allowed():
    ok = {"loss": "vicreg_ce", "positives": "labels"}  # one view: no augmentation needed
    assert setups_mod.resolve_setup({"setups": {"X": ok}}, "X", GROUPS)["positives"] == "labels"
    for loss in ("simclr", "simclr_supervised", "vicreg_ce"):
        assert setups_mod.resolve_setup({"setups": {"X": {"loss": loss, **AUG}}}, "X", GROUPS)
    two = {"yy": 0, "C1N2_200": -1}  # exactly two groups is enough
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
    z = np.column_stack([np.arange(20.0), np.full(20, 3.0)])  # second column constant
    tr, va, mean, std = flow.split_and_scale(z, np.zeros(20), 0.2, seed=4)
    perm = np.random.default_rng(4).permutation(20)  # the seeded split
    np.testing.assert_array_equal(va, perm[:4])  # round(0.2 * 20) = 4 rows
    np.testing.assert_array_equal(tr, perm[4:])
    np.testing.assert_allclose(mean, [np.mean(perm[4:]), 3.0])
    np.testing.assert_allclose(std, [np.std(perm[4:]), 1.0])  # population std; 0 -> 1
    # a narrow latent keeps its own std (no floor at 1): z / 100 -> std / 100
    _, _, _, narrow = flow.split_and_scale(z / 100, np.zeros(20), 0.2, seed=4)
    assert narrow[0] == pytest.approx(np.std(perm[4:]) / 100)
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

TEMPLATE_SR = (120.0, 130.0)


def _stub_sample(model, ckpt, myy, seed):
    """Stands in for flow.sample: z0 = the mass, z1 = the flow's marker."""
    return np.column_stack([myy, np.full(len(myy), float(model))])


def _flows(*markers, cols=("z0", "z1")):
    return [(m, {"latent_columns": list(cols)}) for m in markers]


def test_template_weights_sources_and_flow_interleaving(monkeypatch, caplog):
    monkeypatch.setattr(template.flowmod, "sample", _stub_sample)
    sr = pd.DataFrame({"myy": np.linspace(120.5, 129.5, 10)})  # N_SR = 10
    higgs = pd.DataFrame(
        {
            "z0": [1.0, 2.0, 3.0],
            "z1": [0.0, 0.0, 0.0],
            "myy": [125.0, 119.0, 130.0],  # only the first is in the SR
            "weight": [0.02, 5.0, 5.0],
            "subset_fraction": [0.4, 1.0, 1.0],
            "sample": ["ggH", "ggH", "ttH"],
        }
    )
    with caplog.at_level("INFO"):
        out = template.build(sr, _flows(7, 8), higgs, TEMPLATE_SR, 100.0, {"oversample": 3}, seed=2)
    assert caplog.messages[-1] == (
        "template: 30 samples of 2 flow(s) (yield 5.0) + 1 Higgs events (yield 5.00), N_SR = 10, oversample 3"
    )
    # Higgs: expected yield 0.02 / 0.4 * 100 fb^-1 = 5 events, weight 5 x oversample 3 = 15
    h = out[out["source"] != "flow"]
    assert list(h["source"]) == ["ggH"] and h["weight"].tolist() == pytest.approx([15.0])
    assert h["z0"].tolist() == [1.0] and h["myy"].tolist() == [125.0]
    # flow: round(3 x 10) = 30 samples carrying 3 x (10 - 5) = 15, i.e. 0.5 each
    f = out[out["source"] == "flow"]
    assert len(f) == 30 and (out["source"].iloc[:30] == "flow").all()  # flow rows first
    assert out.index.tolist() == list(range(31))  # one fresh row index
    assert f["weight"].tolist() == pytest.approx([0.5] * 30)
    assert out["weight"].sum() == pytest.approx(3 * 10)
    assert ((f["myy"] >= TEMPLATE_SR[0]) & (f["myy"] < TEMPLATE_SR[1])).all()
    # flow i samples every len(flows)-th mass, at those masses
    np.testing.assert_array_equal(f["z1"].to_numpy()[0::2], 7.0)
    np.testing.assert_array_equal(f["z1"].to_numpy()[1::2], 8.0)
    np.testing.assert_array_equal(f["z0"].to_numpy(), f["myy"].to_numpy())
    assert all(out[c].dtype == np.float32 for c in ("z0", "z1", "myy"))
    assert list(out.columns) == ["z0", "z1", "myy", "weight", "source"]
    # same seed, same template; no Higgs frame -> the flow carries all N_SR
    again = template.build(sr, _flows(7, 8), higgs, TEMPLATE_SR, 100.0, {"oversample": 3}, seed=2)
    pd.testing.assert_frame_equal(out, again)
    with caplog.at_level("INFO"):
        alone = template.build(sr, _flows(7), None, TEMPLATE_SR, 100.0, {"oversample": 2}, seed=2)
    assert caplog.messages[-1] == (
        "template: 20 samples of 1 flow(s) (yield 10.0) + 0 Higgs events "
        "(yield 0.00), N_SR = 10, oversample 2"
    )
    assert len(alone) == 20 and alone["weight"].tolist() == pytest.approx([1.0] * 20)
    empty = template.build(sr, _flows(7), higgs.iloc[:0], TEMPLATE_SR, 100.0, {"oversample": 2}, seed=2)
    assert len(empty) == 20 and set(empty["source"]) == {"flow"}
    # kde_bandwidth reaches the mass KDE: a narrow kernel keeps the masses at the two data peaks
    peaks = pd.DataFrame({"myy": [121.0, 121.0, 121.2, 128.8, 129.0, 129.0]})
    narrow = template.build(
        peaks, _flows(7), None, TEMPLATE_SR, 1.0, {"oversample": 20, "kde_bandwidth": 0.01}, seed=3
    )["myy"].to_numpy()
    assert np.all(np.minimum(np.abs(narrow - 121.1), np.abs(narrow - 128.9)) < 0.5)
    # the SR is [lo, hi): a Higgs event at exactly 120 GeV counts, one at 130 does not
    edge = template.build(
        sr, _flows(7), higgs.assign(myy=[120.0, 119.0, 130.0]), TEMPLATE_SR, 100.0, {"oversample": 1}, seed=2
    )
    assert edge.loc[edge["source"] != "flow", "myy"].tolist() == [120.0]


def test_template_flow_share_is_floored(monkeypatch, caplog):
    monkeypatch.setattr(template.flowmod, "sample", _stub_sample)
    sr = pd.DataFrame({"myy": np.linspace(120.5, 129.5, 10)})
    higgs = pd.DataFrame(
        {
            "z0": [1.0],
            "z1": [0.0],
            "myy": [125.0],
            "weight": [1.0],
            "subset_fraction": [0.5],
            "sample": ["ggH"],
        }
    )  # 1 / .5 * 10 = 20 > N_SR
    with caplog.at_level("WARNING"):
        out = template.build(
            sr, _flows(7), higgs, TEMPLATE_SR, 10.0, {"oversample": 1, "min_flow_fraction": 0.6}, seed=0
        )
    assert "expected SM Higgs yield 20.0 vs 10 SR data events: flow share floored at 60 %" in caplog.messages
    f = out[out["source"] == "flow"]
    assert f["weight"].sum() == pytest.approx(0.6 * 10)  # floored at 60 % of N_SR
    assert out.loc[out["source"] == "ggH", "weight"].tolist() == pytest.approx([20.0])
    # exactly at the floor: 10 - 8 = 2 = 0.2 x 10, no change
    higgs["weight"] = 0.4
    out = template.build(
        sr, _flows(7), higgs, TEMPLATE_SR, 10.0, {"oversample": 1, "min_flow_fraction": 0.2}, seed=0
    )
    assert out.loc[out["source"] == "flow", "weight"].sum() == pytest.approx(2.0)
    # Higgs 9 of N_SR = 10: flow share 1 < 0.2 x 10 -> 2
    higgs["weight"] = 0.45
    out = template.build(
        sr, _flows(7), higgs, TEMPLATE_SR, 10.0, {"oversample": 1, "min_flow_fraction": 0.2}, seed=0
    )
    assert out.loc[out["source"] == "flow", "weight"].sum() == pytest.approx(2.0)
    # the default floor is 10 %
    higgs["weight"] = 1.0
    out = template.build(sr, _flows(7), higgs, TEMPLATE_SR, 10.0, {"oversample": 1}, seed=0)
    assert out.loc[out["source"] == "flow", "weight"].sum() == pytest.approx(1.0)


def test_template_errors_and_mass_kde():
    sr = pd.DataFrame({"myy": [121.0, 125.0, 129.0]})
    with pytest.raises(SaladError, match=r"^template: no flows given$"):
        template.build(sr, [], None, TEMPLATE_SR, 1.0, None, seed=0)
    with pytest.raises(SaladError, match=r"^template: the flows were fitted on different latent columns$"):
        template.build(sr, _flows(1) + _flows(2, cols=("z0",)), None, TEMPLATE_SR, 1.0, None, seed=0)
    rng = np.random.default_rng(0)
    for bad in ([125.0], [125.0, 125.0], []):
        with pytest.raises(SaladError, match=rf"^signal region: {len(bad)} data event\(s\), too few"):
            template.sample_masses(np.array(bad), 5, TEMPLATE_SR, rng)
    m = template.sample_masses(np.array([120.1, 120.2, 129.8, 129.9]), 4000, TEMPLATE_SR, rng)
    assert len(m) == 4000 and m.min() >= TEMPLATE_SR[0] and m.max() < TEMPLATE_SR[1]
    narrow = template.sample_masses(np.array([124.0, 126.0]), 2000, TEMPLATE_SR, rng, bandwidth=0.1)
    # KDE of {124, 126} with bandwidth factor 0.1: kernel variance 0.1^2 x var(ddof=1) = 0.02,
    # mixture variance 1 + 0.02
    assert abs(narrow.mean() - 125.0) < 0.05 and narrow.std() == pytest.approx(np.sqrt(1 + 0.02), rel=0.03)
    assert template.settings({"oversample": 2}) == {**template.DEFAULTS, "oversample": 2}
    with pytest.raises(SaladError, match=r"flow\.template\.other"):  # unknown keys are errors
        template.settings({"oversample": 2, "other": 1})


# ---------------------------------------------------------------- classify: k-fold bookkeeping


class _StubModel:
    """Stands in for a BDT: score = 1000 x seed + row tag (column 0); records what it saw."""

    def __init__(self, X, y, w, seed):
        self.X, self.y, self.w, self.seed = X, y, w, seed

    def predict_proba(self, X):
        return np.column_stack([np.zeros(len(X)), 1000.0 * self.seed + X[:, 0]])


def test_kfold_scores_out_of_fold_weights_and_seeds(monkeypatch):
    monkeypatch.setattr(classify, "fit_bdt", lambda X, y, w, cfg, seed, threads=1: _StubModel(X, y, w, seed))
    n_pos, n_neg, n_extra, k = 7, 11, 5, 3
    X_pos = np.column_stack([np.arange(n_pos), np.zeros(n_pos)])  # tags 0..6
    X_neg = np.column_stack([100 + np.arange(n_neg), np.zeros(n_neg)])  # tags 100..110
    X_extra = np.column_stack([200 + np.arange(n_extra), np.zeros(n_extra)])
    X_eval = np.column_stack([300.0 + np.arange(2), np.zeros(2)])
    w_neg = np.arange(1.0, n_neg + 1)  # sum 66
    out = classify.kfold_scores(
        X_pos,
        X_neg,
        w_neg,
        {"folds": k},
        seeds=[10, 20],
        fold_seed=3,
        X_extra=X_extra,
        keep_models=True,
        X_eval=X_eval,
    )
    assert out["pos"].shape == (n_pos, 2) and out["neg"].shape == (n_neg, 2)
    assert out["extra"].shape == (n_extra, 2) and out["eval"].shape == (2, 2)
    for name, n in (("pos_fold", n_pos), ("neg_fold", n_neg), ("extra_fold", n_extra)):
        counts = np.bincount(out[name], minlength=k)
        assert len(out[name]) == n and counts.max() - counts.min() <= 1  # balanced folds
    fold = np.concatenate([out["pos_fold"], out["neg_fold"]])
    tags = np.concatenate([X_pos[:, 0], X_neg[:, 0]])
    for j, seed in enumerate((10, 20)):
        models = out["models"][j]
        assert [m.seed for m in models] == [seed, seed + 1, seed + 2]  # seed + fold
        for f, m in enumerate(models):
            np.testing.assert_array_equal(m.X[:, 0], tags[fold != f])  # trained off-fold
            np.testing.assert_array_equal(m.y, np.r_[np.ones(n_pos), np.zeros(n_neg)][fold != f])
            # positives weight 1, negatives rescaled to sum n_pos: w x 7 / 66
            np.testing.assert_allclose(m.w, np.r_[np.ones(n_pos), w_neg * n_pos / 66.0][fold != f])
        # every row scored by the model of its own fold (which never saw it)
        np.testing.assert_array_equal(out["pos"][:, j], 1000.0 * (seed + out["pos_fold"]) + X_pos[:, 0])
        np.testing.assert_array_equal(out["neg"][:, j], 1000.0 * (seed + out["neg_fold"]) + X_neg[:, 0])
        np.testing.assert_array_equal(out["extra"][:, j], 1000.0 * (seed + out["extra_fold"]) + X_extra[:, 0])
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


@pytest.mark.parametrize(
    "n_pos, n_neg, w, message",
    [
        (2, 5, None, r"^classify: 2 positive / 5 negative events, fewer than folds = 3$"),
        (5, 2, None, "5 positive / 2 negative"),
        (5, 5, [1, 1, 1, 1, -1], r"^classify: negative-class weights must be finite, >= 0, not all 0$"),
        (5, 5, [1, 1, 1, 1, np.nan], "must be finite"),
        (5, 5, [0, 0, 0, 0, 0], "not all 0"),
    ],
)
def test_kfold_scores_input_errors(n_pos, n_neg, w, message):
    w = np.ones(n_neg) if w is None else np.asarray(w, float)
    with pytest.raises(SaladError, match=message):
        classify.kfold_scores(np.zeros((n_pos, 1)), np.zeros((n_neg, 1)), w, {"folds": 3}, [1], 0)


def test_kfold_scores_accepts_its_boundary_inputs(monkeypatch):
    """Exactly `folds` events per class; zero weights among the negatives; negative weights
    summing below 1: all valid (weights >= 0, not all 0), and the negatives are re-weighted to
    sum n_pos whatever their scale."""
    monkeypatch.setattr(classify, "fit_bdt", lambda X, y, w, cfg, seed, threads=1: _StubModel(X, y, w, seed))
    k = 3
    for n_neg, w_neg in ((3, [1.0, 0.0, 1.0]), (3, [0.1, 0.1, 0.1]), (4, [0.2, 0.2, 0.0, 0.05])):
        out = classify.kfold_scores(
            np.arange(3.0)[:, None], np.arange(n_neg)[:, None] + 10.0, w_neg, {"folds": k}, [1], 0
        )
        assert out["pos"].shape == (3, 1) and out["neg"].shape == (n_neg, 1)
        assert np.isfinite(out["pos"]).all() and np.isfinite(out["neg"]).all()


def test_kfold_scores_passes_its_config_and_threads_to_every_bdt(monkeypatch):
    seen = []

    def stub(X, y, w, cfg, seed, threads=1):
        seen.append((cfg, threads))
        return _StubModel(X, y, w, seed)

    monkeypatch.setattr(classify, "fit_bdt", stub)
    cfg = {"folds": 3, "lightgbm": {"n_estimators": 7}}
    classify.kfold_scores(
        np.arange(6.0)[:, None], np.arange(6.0)[:, None], np.ones(6), cfg, [1, 2], 0, threads=3
    )
    assert len(seen) == 6  # 2 seeds x 3 folds
    for got, threads in seen:
        assert threads == 3 and got == classify.settings(cfg) and got["lightgbm"]["n_estimators"] == 7


def test_assign_folds_balanced_and_permuted():
    folds = classify.assign_folds(10, 3, np.random.default_rng(1))
    np.testing.assert_array_equal(np.sort(folds), [0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(folds, np.random.default_rng(1).permutation(np.arange(10) % 3))


# ---------------------------------------------------------------- pseudo-data draws


def _sample_frame(code, weights, myy=None, subset="data", name="s"):
    n = len(weights)
    return pd.DataFrame(
        {
            "event_id": code * 10**9 + np.arange(n, dtype=np.int64),
            "sample": name,
            "weight": np.asarray(weights, float),
            "myy": np.full(n, 125.0) if myy is None else np.asarray(myy, float),
            "subset": subset,
        }
    )


def test_weighted_order_is_efraimidis_spirakis():
    # weighted sampling without replacement: order by key u^(1/w) (u uniform), largest first;
    # zero weights never drawn (last, in row order)
    w = np.array([1.0, 0.0, 5.0, 2.0, 0.0, 0.5, 3.0])
    order = pseudodata.weighted_order(w, np.random.default_rng(11))
    u = np.random.default_rng(11).random(len(w))
    keys = np.where(w > 0, u ** (1.0 / np.where(w > 0, w, 1.0)), -1.0)
    np.testing.assert_array_equal(order[:5], np.argsort(-keys)[:5])
    np.testing.assert_array_equal(order[5:], [1, 4])
    # a heavy event is drawn first far more often: P(first = i) = w_i / sum w
    firsts = np.bincount(
        [pseudodata.weighted_order(np.array([1.0, 3.0]), np.random.default_rng(s))[0] for s in range(2000)],
        minlength=2,
    )
    assert firsts[1] / 2000 == pytest.approx(0.75, abs=0.04)


def test_data_half_rescales_to_the_whole_sample_yield():
    frame = _sample_frame(3, [1.0, 2.0, 3.0, 4.0])
    frame["subset"] = ["data", "train", "data", "val"]
    half = pseudodata.data_half(frame)
    # data rows 0 and 2 (weights 1, 3) scaled by 10 / 4
    assert half.index.tolist() == [0, 2] and half["weight"].tolist() == [2.5, 7.5]
    assert frame["weight"].tolist() == [1.0, 2.0, 3.0, 4.0]  # input untouched
    frame["weight"] = [0.0, 2.0, 0.0, 4.0]
    with pytest.raises(SaladError, match=r"^s: no weighted events in its pseudo-data half$"):
        pseudodata.data_half(frame)
    frame["weight"] = [1.0, -2.0, 0.0, 4.0]
    with pytest.raises(SaladError, match=r"^s: negative event weights"):
        pseudodata.data_half(frame)


def test_draw_background_poisson_count_then_weighted_order():
    a = _sample_frame(3, [0.5, 1.0, 0.0, 2.0, 1.5] * 20, name="a")  # sum w = 100
    b = _sample_frame(4, [1.0] * 50, name="b")  # sum w = 50
    out, info = pseudodata.draw_background([a, b], 0.2, seed=5, instance=2)
    # the draw of each sample, from rng([seed, instance, sample code]): N ~ Poisson(L sum w),
    # then the first N rows of the weighted order of that rng
    parts = []
    for frame, code in ((a, 3), (b, 4)):
        rng = np.random.default_rng([5, 2, code])
        n = int(rng.poisson(0.2 * frame["weight"].sum()))
        parts.append(frame.iloc[pseudodata.weighted_order(frame["weight"].to_numpy(), rng)[:n]])
        pool = int((frame["weight"] > 0).sum())
        assert info[frame["sample"].iloc[0]] == {
            "expected": pytest.approx(0.2 * frame["weight"].sum()),
            "drawn": n,
            "pool": pool,
            "pool_fraction": n / pool,
        }
    pd.testing.assert_frame_equal(out, pd.concat(parts, ignore_index=True))
    assert (out["weight"] > 0).all()
    other, _ = pseudodata.draw_background([a, b], 0.2, seed=5, instance=3)
    assert not out["event_id"].equals(other["event_id"])
    with pytest.raises(
        SaladError,
        match=r"^a: pseudo-data at 10.0 fb\^-1 needs \d+ events "
        r"\(expected 1000.0\) but its data half holds only 80; ",
    ):
        pseudodata.draw_background([a], 10.0, seed=5, instance=2)


def test_pseudodata_draw_boundaries():
    """One-event samples work; the whole pool may be drawn (N = pool); zero-weight events are
    never in the pool; strength 0 draws nothing even for a signal without SR events."""
    one = _sample_frame(5, [2.0], name="one")
    assert len(pseudodata.data_half(one)) == 1
    assert pseudodata.inject_signal(one, 1.0, (120.0, 130.0), 1, 0)[1] == 1
    assert pseudodata.draw_background([one], 0.1, seed=0, instance=0)[1]["one"]["pool"] == 1
    # N = pool is allowed: Poisson(5) draws of a 5-event sample, over seeds, hit N = 5
    five = _sample_frame(6, [1.0] * 5, name="five")
    full = []
    for seed in range(40):
        try:
            out, info = pseudodata.draw_background([five], 1.0, seed=seed, instance=0)
        except SaladError as err:
            assert "generate more events or lower pseudodata.luminosity_ifb" in str(err)
            continue
        full += [info["five"]["drawn"] == 5 == len(out)]
    assert any(full)
    with pytest.raises(SaladError, match="; generate more events or lower pseudodata.luminosity_ifb$"):
        pseudodata.draw_background([five], 10.0, seed=0, instance=0)
    # 3 weighted + 2 zero-weight events, all in the SR: S_SR = 4 needs 4 > 3 drawable events
    mixed = _sample_frame(7, [1.0, 1.0, 1.0, 0.0, 0.0], name="mixed")
    with pytest.raises(SaladError, match="needs 4 events but its data half holds only 3"):
        pseudodata.inject_signal(mixed, 4.0, (120.0, 130.0), 1, 0)
    assert pseudodata.inject_signal(mixed, 3.0, (120.0, 130.0), 1, 0)[1] == 3
    # a signal without SR events: strength 0 is no injection, any other strength an error
    outside = _sample_frame(8, [1.0] * 4, myy=[110.0] * 4, name="outside")
    drawn, n = pseudodata.inject_signal(outside, 0.0, (120.0, 130.0), 1, 0)
    assert n == 0 and len(drawn) == 0
    with pytest.raises(SaladError, match="no events of its pseudo-data half in the signal region"):
        pseudodata.inject_signal(outside, 1.0, (120.0, 130.0), 1, 0)


def test_inject_signal_count_is_target_over_sr_efficiency():
    # equal weights, 3 of every 10 events in the SR [120, 130): eps_SR = .3, S_SR = 3 -> 10 events
    myy = [119.99, 120.0, 125.0, 129.99, 130.0, 100, 110, 140, 150, 160] * 2
    sig = _sample_frame(12, [0.5] * 20, myy=myy, name="sig")
    np.testing.assert_array_equal(in_signal_region(myy[:5], (120.0, 130.0)), [False, True, True, True, False])
    drawn, n = pseudodata.inject_signal(sig, 3.0, (120.0, 130.0), seed=1, instance=4)
    assert n == 10 and len(drawn) == 10 and drawn["event_id"].is_unique
    rng = np.random.default_rng([1, 4, 12])
    pd.testing.assert_frame_equal(
        drawn, sig.iloc[pseudodata.weighted_order(sig["weight"].to_numpy(), rng)[:10]]
    )
    assert pseudodata.inject_signal(sig, 0.0, (120.0, 130.0), 1, 4)[1] == 0
    assert len(pseudodata.inject_signal(sig, 0.0, (120.0, 130.0), 1, 4)[0]) == 0
    # round(): S_SR = 1.3 -> 4.33 -> 4 events; 1.5 -> 5; 6 -> 20 = the whole pool (allowed)
    assert pseudodata.inject_signal(sig, 1.3, (120.0, 130.0), 1, 4)[1] == 4
    assert pseudodata.inject_signal(sig, 1.5, (120.0, 130.0), 1, 4)[1] == 5
    assert len(pseudodata.inject_signal(sig, 6.0, (120.0, 130.0), 1, 4)[0]) == 20
    with pytest.raises(
        SaladError,
        match=r"^sig: injecting S_SR = 9.0 needs 30 events but its "
        r"data half holds only 20; generate more",
    ):
        pseudodata.inject_signal(sig, 9.0, (120.0, 130.0), 1, 4)
    with pytest.raises(
        SaladError,
        match=r"^sig: no events of its pseudo-data half in the signal "
        r"region \[200.0, 210.0\] GeV; cannot inject it$",
    ):
        pseudodata.inject_signal(sig, 1.0, (200.0, 210.0), 1, 4)


# ---------------------------------------------------------------- NPLM statistic and Z


def test_nplm_statistic_z_and_null_fit_by_hand():
    from scipy import stats

    from salad import nplm

    # t = 2 [sum_D f - sum_R w (e^f - 1)]: f_D = (1, 2), f_R = (0, ln 2), w_R = (1, .5)
    # -> 2 [3 - (0 + .5 x 1)] = 5
    assert nplm.test_statistic(
        np.array([0.0, np.log(2.0)]), np.array([1.0, 0.5]), np.array([1.0, 2.0])
    ) == pytest.approx(5.0, rel=1e-12)
    # Z = Phi^-1(1 - p): p = .5 -> 0, p = Phi(-3) -> 3; log p > 0 is p = 1 -> -inf
    assert nplm.z_from_logp(np.log(0.5)) == pytest.approx(0.0, abs=1e-12)
    assert nplm.z_from_logp(stats.norm.logsf(3.0)) == pytest.approx(3.0, rel=1e-12)
    assert nplm.z_from_logp(stats.norm.logsf(40.0)) == pytest.approx(40.0, rel=1e-12)
    assert nplm.z_from_logp(0.3) == -np.inf
    # the chi2 null fit: ML dof (loc 0, scale 1), KS against the fitted law, toy summaries
    t_null = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    fit = nplm.chi2_fit(t_null)
    dof = stats.chi2.fit(t_null, floc=0, fscale=1)[0]
    ks = stats.kstest(t_null, stats.chi2(dof).cdf)
    assert fit == {
        "dof": pytest.approx(dof),
        "ks_statistic": pytest.approx(ks.statistic),
        "ks_pvalue": pytest.approx(ks.pvalue),
        "n_toys": 5,
        "t_median": 3.0,
        "t_mean": 4.0,
    }
    with pytest.raises(SaladError, match=r"^nplm: 4 toys are too few for a chi2 fit$"):
        nplm.chi2_fit(t_null[:4])
    with pytest.raises(SaladError, match=r"^nplm: no null toys$"):
        nplm.significance(1.0, np.array([]), 3.0)
    # chi2 log survival: scipy where finite; beyond, the first two terms of the asymptotic series
    # log Q(a, x) = (a - 1) ln x - x - lnGamma(a) + log(1 + (a - 1)/x), a = dof/2, x = t/2
    assert float(nplm.chi2_logsf(7.0, 4.0)) == pytest.approx(stats.chi2.logsf(7.0, 4.0), rel=1e-12)
    a, x = 2.0, 2000.0
    assert float(nplm.chi2_logsf(4000.0, 4.0)) == pytest.approx(
        (a - 1) * np.log(x) - x - math.lgamma(a) + np.log1p((a - 1) / x), rel=1e-12
    )
    a, x = 0.5, 1500.0  # dof 1: (a - 1)/x < 0
    assert float(nplm.chi2_logsf(3000.0, 1.0)) == pytest.approx(
        (a - 1) * np.log(x) - x - math.lgamma(a) + np.log1p((a - 1) / x), rel=1e-12
    )
    # significance: the chi2 columns are the pure asymptotic p and Z
    sig = nplm.significance(7.0, np.arange(1.0, 11.0), 4.0)  # toys 7..10 reach 7: k = 4
    assert (sig["k_toys"], sig["n_toys"], sig["z_source"]) == (4, 10, "toys")
    assert sig["p"] == pytest.approx(5 / 11) and sig["log10_p"] == pytest.approx(np.log10(5 / 11))
    assert sig["z"] == pytest.approx(stats.norm.isf(5 / 11))
    assert sig["p_chi2"] == pytest.approx(stats.chi2.sf(7.0, 4.0))
    assert sig["z_chi2"] == pytest.approx(stats.norm.isf(stats.chi2.sf(7.0, 4.0)))
    # beyond the largest toy: p = 1/(N+1) sf(t)/sf(t_max), never above 1/(N+1)
    far = nplm.significance(12.0, np.arange(1.0, 11.0), 4.0)
    assert far["z_source"] == "chi2_extrapolation" and far["k_toys"] == 0
    assert far["p"] == pytest.approx(stats.chi2.sf(12.0, 4.0) / stats.chi2.sf(10.0, 4.0) / 11)
    low_dof = nplm.significance(10.5, np.arange(1.0, 11.0), 100.0)  # heavier-tailed than toys
    assert low_dof["p"] <= 1 / 11


def test_nplm_observed_z_for_the_null_plot():
    import math

    from scipy import stats

    from salad import nplm

    # the plot shows the table's Z: k of N toys with t_toy >= t: p = (k + 1) / (N + 1);
    # beyond the largest toy the chi2 tail anchored there: p = sf(t) / sf(t_max) / (N + 1)
    t_null = np.array([4.0, 1.0, 3.0, 2.0])
    z, extrapolated = nplm.observed_z(np.array([2.0, 3.5, 5.0]), t_null, 3.0)
    assert z[0] == pytest.approx(stats.norm.isf(4 / 5)) and z[1] == pytest.approx(stats.norm.isf(2 / 5))
    p_far = stats.chi2.sf(5.0, 3.0) / stats.chi2.sf(4.0, 3.0) / 5
    assert z[2] == pytest.approx(stats.norm.isf(p_far))
    np.testing.assert_array_equal(extrapolated, [False, False, True])
    for t, zt in zip([2.0, 3.5, 5.0], z):
        assert nplm.significance(t, t_null, 3.0)["z"] == pytest.approx(zt)
    assert z[2] > stats.norm.isf(1 / 5) and not math.isnan(z[2])


# ---------------------------------------------------------------- artifacts: data contracts


def test_read_parquet_names_every_duplicate_and_unreadable_data(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from salad.artifacts import read_parquet

    dup = tmp_path / "dup.parquet"
    pq.write_table(pa.table([[1], [2], [3.0], [4.0]], names=["a", "a", "b", "b"]), dup)
    with pytest.raises(SaladError, match=r"dup.parquet: duplicate column name\(s\) a, b$"):
        read_parquet(dup, {"a": "int", "b": "float"})
    # a valid footer over damaged column data: the error names the file
    good = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"x": np.arange(1000.0)}), good, compression="snappy")
    raw = bytearray(good.read_bytes())
    raw[8:400] = b"\xff" * 392
    good.write_bytes(bytes(raw))
    with pytest.raises(SaladError, match=r"bad.parquet: cannot read Parquet data \("):
        read_parquet(good, {"x": "float"})


def test_read_parquet_contract_checks_by_hand(tmp_path):
    import re

    import pyarrow as pa
    import pyarrow.parquet as pq

    from salad.artifacts import read_parquet

    path = tmp_path / "a.parquet"
    pq.write_table(
        pa.table(
            {
                "i": [1, 2, 3],
                "f": [0.5, np.nan, np.inf],
                "s": ["a", "b", "c"],
                "b": [True, False, True],
                "l": [[1.0], [2.0], [3.0]],
                "g": [1.0, 2.0, 3.0],
            }
        ),
        path,
    )
    out = read_parquet(path, {"i": "int", "s": "str", "b": "bool", "l": "list", "g": "float"})
    assert list(out.columns) == ["i", "s", "b", "l", "g"] and out["i"].tolist() == [1, 2, 3]
    assert list(read_parquet(path).columns) == ["i", "f", "s", "b", "l", "g"]
    assert read_parquet(path, {"f": "float"}, finite=False)["f"].isna().sum() == 1
    with pytest.raises(SaladError, match=rf"^{re.escape(str(path))}: column 'f' has 2 NaN/inf value\(s\)$"):
        read_parquet(path, {"f": "float"})
    with pytest.raises(SaladError, match=rf"^{re.escape(str(path))}: missing column\(s\) x, y$"):
        read_parquet(path, {"i": "int", "x": "int", "y": "float"})
    for name, kind, dtype in (
        ("g", "int", "float64"),
        ("i", "float", "int64"),
        ("i", "str", "int64"),
        ("g", "bool", "float64"),
        ("i", "list", "int64"),
    ):
        with pytest.raises(
            SaladError,
            match=rf"^{re.escape(str(path))}: column '{name}' has dtype {dtype}, "
            rf"expected {kind}$",
        ):
            read_parquet(path, {name: kind})
    with pytest.raises(ValueError, match=r"^unknown column kind 'complex'$"):
        read_parquet(path, {"i": "complex"})
    empty = tmp_path / "e.parquet"
    pq.write_table(pa.table({"f": pa.array([], pa.float64())}), empty)
    assert len(read_parquet(empty, {"f": "float"})) == 0
    twice = tmp_path / "t.parquet"
    pq.write_table(
        pa.Table.from_arrays([pa.array([1]), pa.array([2]), pa.array([3])], names=["x", "x", "y"]), twice
    )
    with pytest.raises(SaladError, match=rf"^{re.escape(str(twice))}: duplicate column name\(s\) x$"):
        read_parquet(twice, {"x": "int", "y": "int"})
    with pytest.raises(SaladError, match=rf"^{re.escape(str(tmp_path / 'none.parquet'))}: file not found$"):
        read_parquet(tmp_path / "none.parquet")
