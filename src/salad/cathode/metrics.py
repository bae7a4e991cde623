"""Figures of merit. Truth labels enter only here (and in the reference classifiers).

Conventions: a cut keeps events with score >= threshold; efficiencies are weighted
fractions; the ROC curve is the step-free polyline through the points obtained by lowering
the threshold one distinct score at a time, starting at (0, 0), and efficiencies at a given
background efficiency are read off it by linear interpolation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def roc_curve(scores, labels, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """(eps_B, eps_S) arrays along the ROC curve, from (0, 0) to (1, 1); ties grouped."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels).astype(bool)
    w = np.ones_like(scores) if weights is None else np.asarray(weights, np.float64)
    if labels.all() or not labels.any():
        raise ValueError("roc_curve needs both classes")
    order = np.argsort(-scores, kind="mergesort")
    s, lab, w = scores[order], labels[order], w[order]
    cs, cb = np.cumsum(w * lab), np.cumsum(w * ~lab)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each tie group
    tpr = np.r_[0.0, cs[last] / cs[-1]]
    fpr = np.r_[0.0, cb[last] / cb[-1]]
    return fpr, tpr


def auc(scores, labels, weights=None) -> float:
    """Area under the ROC curve (trapezoid; 0.5 = no separation)."""
    fpr, tpr = roc_curve(scores, labels, weights)
    return float(np.trapezoid(tpr, fpr))


def signal_efficiency(scores, labels, eps_b: float, weights=None) -> float:
    """eps_S at background efficiency eps_b (linear interpolation along the ROC curve)."""
    fpr, tpr = roc_curve(scores, labels, weights)
    return float(tpr_at(fpr, tpr, eps_b))


def tpr_at(fpr: np.ndarray, tpr: np.ndarray, x) -> np.ndarray:
    """eps_S on the ROC polyline (fpr, tpr) at eps_B = x (scalar or array): the last vertex
    with fpr <= x if it lies exactly at x (top of a vertical segment), else linear
    interpolation to the next vertex."""
    x = np.asarray(x, np.float64)
    i = np.clip(np.searchsorted(fpr, x, side="right") - 1, 0, len(fpr) - 1)
    j = np.minimum(i + 1, len(fpr) - 1)
    span = fpr[j] - fpr[i]
    frac = np.where(span > 0, (x - fpr[i]) / np.where(span > 0, span, 1.0), 0.0)
    return tpr[i] + np.clip(frac, 0.0, 1.0) * (tpr[j] - tpr[i])


def working_points(
    scores, labels, eps_b: Sequence[float], weights=None, n_boot: int = 0, seed: int = 0
) -> dict:
    """eps_S, SIC = eps_S / sqrt(eps_B) and their statistical errors at each eps_B.

    Returns {eps_s, sic: (len(eps_b),), eps_s_err, sic_err: bootstrap standard deviations
    (NaN if n_boot < 2), n_bkg_pass: unweighted background events at or above the cut that
    gives eps_B (the last tie group reaching eps_B included)}. The errors resample the events
    with Poisson(1) multiplicities (weighted events keep their weights), so they include the
    fluctuation of the cut position from the finite background sample and of eps_S from the
    finite signal sample; the events are sorted once for all replicas.
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels).astype(bool)
    w = np.ones_like(scores) if weights is None else np.asarray(weights, np.float64)
    if labels.all() or not labels.any():
        raise ValueError("working_points needs both classes")
    eps_b = np.asarray(eps_b, np.float64)
    order = np.argsort(-scores, kind="mergesort")
    s, lab, w = scores[order], labels[order], w[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each tie group

    def curve(mult):
        cs, cb = np.cumsum(w * mult * lab), np.cumsum(w * mult * ~lab)
        return np.r_[0.0, cb[last] / cb[-1]], np.r_[0.0, cs[last] / cs[-1]]

    fpr, tpr = curve(np.ones(len(s)))
    eps_s = tpr_at(fpr, tpr, eps_b)
    group = np.clip(np.searchsorted(fpr, eps_b, side="left"), 1, len(last))
    n_bkg_pass = np.cumsum(~lab)[last[group - 1]]
    out = {
        "eps_s": eps_s,
        "sic": eps_s / np.sqrt(eps_b),
        "n_bkg_pass": n_bkg_pass,
        "eps_s_err": np.full(len(eps_b), np.nan),
        "sic_err": np.full(len(eps_b), np.nan),
    }
    if n_boot >= 2:
        rng = np.random.default_rng(seed)
        boot = np.array([tpr_at(*curve(rng.poisson(1.0, len(s))), eps_b) for _ in range(n_boot)])
        out["eps_s_err"] = boot.std(axis=0, ddof=1)
        out["sic_err"] = out["eps_s_err"] / np.sqrt(eps_b)
    return out


def sic(scores, labels, eps_b: float, weights=None) -> float:
    """Significance improvement eps_S / sqrt(eps_B) at eps_B = eps_b."""
    return signal_efficiency(scores, labels, eps_b, weights) / np.sqrt(eps_b)


def significance(n_sig: float, n_bkg: float, eps_s: float, eps_b: float) -> float:
    """Post-selection median discovery significance (Asimov, Cowan et al. 2011) of a counting
    experiment with expected S = eps_s * n_sig over B = eps_b * n_bkg:
    Z = sqrt(2 [(S + B) ln(1 + S/B) - S]). It equals S/sqrt(B) for S << B and, unlike
    S/sqrt(B), stays finite and honest when the cut leaves only a few background events."""
    if n_bkg <= 0 or eps_b <= 0:
        raise ValueError("significance needs n_bkg > 0 and eps_b > 0")
    s, b = eps_s * n_sig, eps_b * n_bkg
    return float(np.sqrt(2.0 * ((s + b) * np.log1p(s / b) - s)))


def required_strength(
    strengths: Sequence[float], values: Sequence[float], target: float = 3.0
) -> tuple[float, bool]:
    """Smallest strength where `values` (e.g. significance vs injected strength) reaches
    `target`, by linear interpolation between neighbouring scanned points.

    Returns (strength, True) if reached, else (largest scanned strength, False): a lower
    bound. NaN values are ignored.
    """
    s = np.asarray(strengths, np.float64)
    v = np.asarray(values, np.float64)
    keep = np.isfinite(v)
    s, v = s[keep], v[keep]
    order = np.argsort(s)
    s, v = s[order], v[order]
    if len(s) == 0:
        return float("nan"), False
    if v[0] >= target:
        return float(s[0]), True
    for i in range(1, len(s)):
        if v[i] >= target:
            frac = (target - v[i - 1]) / (v[i] - v[i - 1])
            return float(s[i - 1] + frac * (s[i] - s[i - 1])), True
    return float(s[-1]), False


def selection_flatness(before: np.ndarray, after: np.ndarray) -> tuple[float, int]:
    """chi^2 and ndf of the hypothesis that a cut keeps the same fraction in every bin.

    before, after: histogram counts (after is a subset of before). Binomial errors:
    chi^2 = sum_i (a_i - eps n_i)^2 / (n_i eps (1 - eps)) over bins with n_i > 0,
    eps = sum a / sum n; ndf = (bins with n_i > 0) - 1.
    """
    n = np.asarray(before, np.float64)
    a = np.asarray(after, np.float64)
    use = n > 0
    eps = a.sum() / n.sum()
    if eps <= 0 or eps >= 1:
        return float("nan"), int(use.sum() - 1)
    chi2 = np.sum((a[use] - eps * n[use]) ** 2 / (n[use] * eps * (1 - eps)))
    return float(chi2), int(use.sum() - 1)


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between two histograms (normalised here)."""
    p = np.asarray(p, np.float64)
    q = np.asarray(q, np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(x):
        nz = x > 0
        return np.sum(x[nz] * np.log2(x[nz] / m[nz]))

    return float(0.5 * kl(p) + 0.5 * kl(q))


def bootstrap_auc(scores, labels, weights=None, n: int = 100, seed: int = 0) -> float:
    """Standard deviation of the AUC over `n` bootstrap resamples of the events."""
    scores = np.asarray(scores)
    labels = np.asarray(labels).astype(bool)
    w = np.ones(len(scores)) if weights is None else np.asarray(weights, np.float64)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        idx = rng.integers(0, len(scores), len(scores))
        if labels[idx].all() or not labels[idx].any():
            continue
        values.append(auc(scores[idx], labels[idx], w[idx]))
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def ensembles(n_classifiers: int, size: int, seed: int) -> list[np.ndarray]:
    """Random disjoint groups of `size` classifier indices (leftovers dropped); at least one."""
    if n_classifiers < 1:
        raise ValueError("no classifiers")
    size = min(size, n_classifiers)
    perm = np.random.default_rng(seed).permutation(n_classifiers)
    return [perm[i * size : (i + 1) * size] for i in range(n_classifiers // size)]
