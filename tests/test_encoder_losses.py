"""Encoder objectives against independent reference computations."""

import math

import pytest
import torch
import torch.nn.functional as F

from salad.encoder.losses import kl_standard_normal, nt_xent, supcon, vicreg


def supcon_reference(features, labels, tau):
    """Paper A eq. 1 written as loops (mean over anchors with at least one positive)."""
    z = [[x / math.sqrt(sum(v * v for v in f)) for x in f] for f in features.tolist()]
    y = labels.tolist()
    dot = lambda a, b: sum(p * q for p, q in zip(a, b))  # noqa: E731
    total, anchors = 0.0, 0
    for i in range(len(z)):
        positives = [p for p in range(len(z)) if p != i and y[p] == y[i]]
        if not positives:
            continue
        denom = sum(math.exp(dot(z[i], z[a]) / tau) for a in range(len(z)) if a != i)
        total += -sum(math.log(math.exp(dot(z[i], z[p]) / tau) / denom) for p in positives) / len(positives)
        anchors += 1
    return total / anchors


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_supcon_matches_loop_reference(seed):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(12, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (12,), generator=g)
    labels[0] = 9  # an anchor without positive: excluded, still a negative for others
    assert supcon(feats, labels, 0.5).item() == pytest.approx(supcon_reference(feats, labels, 0.5), rel=1e-10)


def test_supcon_hand_checkable_cases():
    # identical embeddings: every logit equal -> loss = log(N - 1)
    same = torch.ones(6, 3)
    assert supcon(same, torch.tensor([0, 0, 0, 1, 1, 1]), 0.1).item() == pytest.approx(math.log(5), rel=1e-6)
    # two classes on orthogonal axes, tau = 1: positive logit 1, negative logit 0
    feats = torch.tensor([[1.0, 0], [2.0, 0], [0, 1.0], [0, 3.0]])
    expected = -math.log(math.e / (math.e + 2))
    assert supcon(feats, torch.tensor([0, 0, 1, 1]), 1.0).item() == pytest.approx(expected, rel=1e-6)
    # no positives at all: zero, with a graph
    feats.requires_grad_(True)
    loss = supcon(feats, torch.arange(4), 1.0)
    assert loss.item() == 0.0 and loss.requires_grad


def test_supcon_stable_at_tiny_temperature():
    feats = torch.randn(64, 8, requires_grad=True)
    loss = supcon(feats, torch.randint(0, 3, (64,)), 1e-4)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(feats.grad).all()


def test_nt_xent_matches_cross_entropy_form():
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / 0.3
    logits.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(8, 16), torch.arange(8)])
    assert nt_xent(z1, z2, 0.3).item() == pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-6)
    # views identical and the events far apart -> near the minimum 0
    basis = torch.eye(8)
    assert nt_xent(basis, basis, 0.05).item() < 1e-6


def test_kl_against_torch_distributions():
    g = torch.Generator().manual_seed(4)
    mu, logvar = torch.randn(10, 6, generator=g), torch.randn(10, 6, generator=g)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros(6), torch.ones(6))
    ref = torch.distributions.kl_divergence(q, p).sum(1).mean()
    assert kl_standard_normal(mu, logvar).item() == pytest.approx(ref.item(), rel=1e-6)
    assert kl_standard_normal(torch.zeros(3, 2), torch.zeros(3, 2)).item() == 0.0


def test_vicreg_terms():
    g = torch.Generator().manual_seed(5)
    z = torch.randn(4000, 4, generator=g)
    terms = vicreg(z, z, 1.0, 1.0, 1.0)
    assert terms["invariance"].item() == 0.0
    assert terms["variance"].item() < 0.05 and terms["covariance"].item() < 0.05  # whitened
    collapsed = torch.zeros(16, 4)
    terms = vicreg(collapsed, collapsed + 1.0, 1.0, 1.0, 1.0)
    assert terms["invariance"].item() == pytest.approx(1.0)
    # variance hinge averaged over the two views (authors' convention): 1 - sqrt(eps), not twice that
    assert terms["variance"].item() == pytest.approx(1 - math.sqrt(1e-4), rel=1e-5)
    corr = torch.randn(4000, 1, generator=g).repeat(1, 2)  # two identical dimensions: cov 1
    assert vicreg(corr, corr, 0, 0, 1.0)["covariance"].item() == pytest.approx(2 * 2 / 2, rel=0.1)


def vicreg_reference(z1, z2, eps=1e-4):
    """VICReg (Bardes et al. eq. 1-5; paper B eq. 3) in plain Python floats, loops only.

    s(z) = (1/D) sum_j max(0, 1 - sqrt(Var(z_j) + eps)), Var unbiased;
    c(z) = (1/D) sum_{i != j} C(z)_ij^2; returns (inv, [s(z1) + s(z2)] / 2, c(z1) + c(z2)).
    """
    n, d = len(z1), len(z1[0])
    inv = sum((z1[a][j] - z2[a][j]) ** 2 for a in range(n) for j in range(d)) / (n * d)

    def stats_of(z):
        mean = [sum(z[a][j] for a in range(n)) / n for j in range(d)]
        cov = [
            [sum((z[a][i] - mean[i]) * (z[a][j] - mean[j]) for a in range(n)) / (n - 1) for j in range(d)]
            for i in range(d)
        ]
        s = sum(max(0.0, 1 - math.sqrt(cov[j][j] + eps)) for j in range(d)) / d
        c = sum(cov[i][j] ** 2 for i in range(d) for j in range(d) if i != j) / d
        return s, c

    (s1, c1), (s2, c2) = stats_of(z1), stats_of(z2)
    return inv, (s1 + s2) / 2, c1 + c2


def test_vicreg_matches_float64_reference_on_hand_case():
    # hand case: view 1 has column variances 1/3 and 4/3 (unbiased), view 2 = view 1 / 2
    z1 = [[0.0, 0.0], [1.0, 2.0], [0.0, 0.0], [1.0, 2.0]]
    z2 = [[a / 2 for a in row] for row in z1]
    inv, var, cov = vicreg_reference(z1, z2)
    # by hand: inv = mean((z1/2)^2) = (4 * 0.25 + 4 * 1) / 8 / 2 ... computed explicitly:
    assert inv == pytest.approx((2 * 0.25 + 2 * 1.0) / 8)
    s1 = (max(0, 1 - math.sqrt(1 / 3 + 1e-4)) + max(0, 1 - math.sqrt(4 / 3 + 1e-4))) / 2
    s2 = (max(0, 1 - math.sqrt(1 / 12 + 1e-4)) + max(0, 1 - math.sqrt(1 / 3 + 1e-4))) / 2
    assert var == pytest.approx((s1 + s2) / 2)
    assert cov == pytest.approx(2 * (2 / 3) ** 2 / 2 + 2 * (1 / 6) ** 2 / 2)
    t1, t2 = torch.tensor(z1, dtype=torch.float64), torch.tensor(z2, dtype=torch.float64)
    terms = vicreg(t1, t2, 25.0, 25.0, 1.0)
    assert terms["invariance"].item() == pytest.approx(25 * inv, rel=1e-12)
    assert terms["variance"].item() == pytest.approx(25 * var, rel=1e-12)
    assert terms["covariance"].item() == pytest.approx(cov, rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_vicreg_matches_float64_reference_random(seed):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(7, 3, generator=g, dtype=torch.float64) * 0.7
    z2 = z1 + 0.3 * torch.randn(7, 3, generator=g, dtype=torch.float64)
    inv, var, cov = vicreg_reference(z1.tolist(), z2.tolist())
    terms = vicreg(z1, z2, 2.0, 3.0, 5.0)
    assert var > 0  # the hinge is active: the test sees the variance convention
    assert terms["invariance"].item() == pytest.approx(2 * inv, rel=1e-12)
    assert terms["variance"].item() == pytest.approx(3 * var, rel=1e-12)
    assert terms["covariance"].item() == pytest.approx(5 * cov, rel=1e-12)
