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
    assert terms["variance"].item() == pytest.approx(2 * (1 - math.sqrt(1e-4)), rel=1e-5)
    corr = torch.randn(4000, 1, generator=g).repeat(1, 2)  # two identical dimensions: cov 1
    assert vicreg(corr, corr, 0, 0, 1.0)["covariance"].item() == pytest.approx(2 * 2 / 2, rel=0.1)
