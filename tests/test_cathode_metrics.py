"""Figures of merit against values computed by hand."""

import numpy as np
import pandas as pd
import pytest

from salad.cathode import metrics

# 3 signal, 10 background; descending: B .95, S .9, S .8, B .7, B .6, B .5, S .4, B ...
SIG = [0.9, 0.8, 0.4]
BKG = [0.95, 0.7, 0.6, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01]
SCORES = np.array(SIG + BKG)
LABELS = np.array([1] * 3 + [0] * 10)


def test_roc_vertices_by_hand():
    fpr, tpr = metrics.roc_curve(SCORES, LABELS)
    assert np.allclose(fpr[:8], [0, 0.1, 0.1, 0.1, 0.2, 0.3, 0.4, 0.4])
    assert np.allclose(tpr[:8], [0, 0, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 2 / 3, 1])


@pytest.mark.parametrize(
    "eps_b, expected",
    [
        (0.1, (2 / 3) / np.sqrt(0.1)),  # top of the vertical segment at eps_B = 0.1
        (0.05, 0.0),  # between (0, 0) and (0.1, 0): nothing selected yet
        (0.15, (2 / 3) / np.sqrt(0.15)),
        (0.4, 1 / np.sqrt(0.4)),
    ],
)
def test_sic_by_hand(eps_b, expected):
    assert metrics.sic(SCORES, LABELS, eps_b) == pytest.approx(expected)


def test_weights_scale_background_efficiency():
    # doubling the weight of the top background event: eps_B after it = 2/11
    w = np.ones(13)
    w[3] = 2.0
    fpr, tpr = metrics.roc_curve(SCORES, LABELS, w)
    assert fpr[1] == pytest.approx(2 / 11)
    assert metrics.signal_efficiency(SCORES, LABELS, 2 / 11, w) == pytest.approx(2 / 3)


def test_auc_by_hand():
    # pairs (s, b) with s > b: .9 and .8 beat 9 backgrounds each, .4 beats 6 -> 24/30
    assert metrics.auc(SCORES, LABELS) == pytest.approx(24 / 30)
    # ties count one half
    assert metrics.auc([1, 1], [1, 0]) == pytest.approx(0.5)


def test_significance_by_hand():
    # S = 0.5 * 40 = 20, B = 0.01 * 400 = 4 -> 20 / 2 = 10
    # S = 20, B = 4: sqrt(2 (24 ln 6 - 20)) = 6.7827 (S/sqrt(B) would say 10)
    assert metrics.significance(40, 400, 0.5, 0.01) == pytest.approx(6.78266, abs=1e-4)
    # S << B: the Asimov Z tends to S/sqrt(B)
    assert metrics.significance(100, 1e6, 0.1, 0.1) == pytest.approx(10 / np.sqrt(1e5), rel=1e-3)
    assert metrics.significance(0, 100, 0.5, 0.1) == 0.0


def test_required_strength_interpolates_first_crossing():
    value, reached = metrics.required_strength([0, 1, 2, 5], [0.0, 1.0, 2.0, 6.0], 3.0)
    assert reached and value == pytest.approx(2 + (3 - 2) / (6 - 2) * 3)
    value, reached = metrics.required_strength([5, 0, 2], [4.0, 0.0, 3.0], 3.0)  # unsorted input
    assert reached and value == pytest.approx(2.0)
    value, reached = metrics.required_strength([0, 2, 5], [0.0, 1.0, 2.5], 3.0)
    assert not reached and value == 5.0


def test_selection_flatness_and_jsd_by_hand():
    before, after = np.array([100, 100]), np.array([30, 10])
    chi2, ndf = metrics.selection_flatness(before, after)
    # eps = 0.2; (30-20)^2/(100*.2*.8) + (10-20)^2/16 = 12.5
    assert (chi2, ndf) == (pytest.approx(12.5), 1)
    assert metrics.selection_flatness(before, np.array([20, 20]))[0] == 0.0
    assert metrics.jensen_shannon([1, 1], [1, 1]) == 0.0
    assert metrics.jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    # p = (1, 0), q = (1/2, 1/2): m = (3/4, 1/4); JSD = 0.5 log2(4/3) + 0.5 (0.5 log2(2/3) + 0.5 log2 2)
    expected = 0.5 * np.log2(4 / 3) + 0.5 * (0.5 * np.log2(2 / 3) + 0.5 * np.log2(2))
    assert metrics.jensen_shannon([2, 0], [1, 1]) == pytest.approx(expected)


def test_ensembles_are_disjoint_pairs():
    groups = metrics.ensembles(20, 2, seed=1)
    assert len(groups) == 10 and all(len(g) == 2 for g in groups)
    assert sorted(np.concatenate(groups)) == list(range(20))
    assert [list(g) for g in groups] == [list(g) for g in metrics.ensembles(20, 2, seed=1)]
    assert len(metrics.ensembles(1, 2, seed=0)) == 1


def test_sculpting_summary_counts_shared_datasets_once():
    from salad.cathode.evaluate import sculpting_summary

    auc = pd.DataFrame(
        {
            "setup": "ID",
            "instance": [0, 0, 1, 1],
            "classifier": [0, 1, 0, 1],
            "auc": [0.50, 0.52, 0.51, 0.53],
            "auc_boot_std": 0.01,
        }
    )
    mass = pd.DataFrame(
        {
            "setup": "ID",
            "instance": [0, 1],
            "ensemble": 0,
            "efficiency": 0.2,
            "bin_lo": 105.0,
            "n_before": 100,
            "n_after": [20, 22],
            "chi2": [10.0, 30.0],
            "ndf": 10,
            "jsd": [0.001, 0.003],
        }
    )
    # two signals share the same no-injection datasets: identical rows under both names
    both = sculpting_summary(
        pd.concat([auc.assign(signal="A"), auc.assign(signal="B")]),
        pd.concat([mass.assign(signal="A"), mass.assign(signal="B")]),
    )
    assert len(both) == 1
    row = both.iloc[0]
    assert row["classifiers"] == 4 and row["datasets"] == 2
    assert row["auc_mean"] == pytest.approx(0.515)
    assert row["auc_std"] == pytest.approx(np.std([0.50, 0.52, 0.51, 0.53], ddof=1))
    assert row["chi2_ndf"] == pytest.approx(2.0) and row["jsd"] == pytest.approx(0.002)
    # distinct datasets per signal (different values) are all pooled
    other = auc.assign(signal="B", auc=auc["auc"] + 0.01)
    pooled = sculpting_summary(pd.concat([auc.assign(signal="A"), other]), mass.assign(signal="A"))
    assert pooled.iloc[0]["classifiers"] == 8 and pooled.iloc[0]["datasets"] == 4
