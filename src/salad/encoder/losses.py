"""Training objectives: SupCon (paper A eq. 1) + KL, SimCLR/NT-Xent, supervised SimCLR,
VICReg + cross-entropy (paper B). Every objective is a `Objective` taking the encoder outputs
of `n_views` views of a batch and the batch labels, returning a dict of scalar terms whose
"loss" entry is minimised. Reductions are means over anchors / events (batch-size free).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F


def supcon(features: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss (paper A eq. 1), mean over anchors that have a positive.

    features (N, P) are L2-normalised here; labels (N,). For anchor i:
    -1/|P(i)| sum_{p in P(i)} log[exp(Z_i.Z_p/tau) / sum_{a != i} exp(Z_i.Z_a/tau)].
    Anchors without a positive are excluded; a batch without any positive gives 0.
    """
    z = F.normalize(features, dim=1)
    sim = z @ z.T / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    log_prob = sim - torch.logsumexp(sim.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = pos.sum(1)
    has = n_pos > 0
    if not has.any():
        return sim.sum() * 0.0
    per_anchor = -torch.where(pos, log_prob, torch.zeros_like(log_prob)).sum(1)
    return (per_anchor[has] / n_pos[has]).mean()


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR NT-Xent: each event's two views are positives, all other 2N-2 views negatives."""
    ids = torch.arange(len(z1), device=z1.device)
    return supcon(torch.cat([z1, z2]), torch.cat([ids, ids]), temperature)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) summed over latent dimensions, mean over events."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1).mean()


def vicreg(
    z1: torch.Tensor,
    z2: torch.Tensor,
    invariance: float = 25.0,
    variance: float = 25.0,
    covariance: float = 1.0,
    eps: float = 1e-4,
) -> dict:
    """VICReg (Bardes et al., paper B eq. 3) of two batches z1, z2 (N, D); weighted terms.

    invariance: mean over N*D of (z1 - z2)^2; variance: per view the mean over dimensions of
    relu(1 - sqrt(Var_j + eps)) (unbiased batch variance), AVERAGED over the two views as in
    the authors' implementation (facebookresearch/vicreg: (std_loss(x) + std_loss(y)) / 2);
    covariance: per view the sum of squared off-diagonal covariances / D, summed over views.
    """
    inv = F.mse_loss(z1, z2)
    var = cov = 0.0
    n, d = z1.shape
    for z in (z1, z2):
        z = z - z.mean(0)
        var = var + F.relu(1.0 - torch.sqrt(z.var(0) + eps)).mean() / 2
        c = (z.T @ z) / max(n - 1, 1)
        cov = cov + (c.pow(2).sum() - c.diagonal().pow(2).sum()) / d
    return {"invariance": invariance * inv, "variance": variance * var, "covariance": covariance * cov}


class Objective:
    """Base: n_views views per batch; adds lambda * KL of every view when variational."""

    n_views = 1

    def __init__(self, cfg: Mapping):
        self.cfg = cfg
        self.kl_weight = float(cfg["kl_weight"]) if cfg["variational"] else 0.0

    def terms(self, outs: list[dict], labels: torch.Tensor) -> dict:
        raise NotImplementedError

    def __call__(self, outs: list[dict], labels: torch.Tensor) -> dict:
        terms = self.terms(outs, labels)
        loss = sum(terms.values())
        if outs[0]["logvar"] is not None:
            terms["kl"] = sum(kl_standard_normal(o["mu"], o["logvar"]) for o in outs) / len(outs)
            loss = loss + self.kl_weight * terms["kl"]
        terms["loss"] = loss
        return terms


class SupCon(Objective):
    """Paper A: SupCon on the projections of one view (no augmentation) + lambda * KL."""

    def terms(self, outs, labels):
        return {"contrastive": supcon(outs[0]["proj"], labels, self.cfg["temperature"])}


class SimCLR(Objective):
    """Self-supervised NT-Xent between two augmented views (labels unused)."""

    n_views = 2

    def terms(self, outs, labels):
        return {"contrastive": nt_xent(outs[0]["proj"], outs[1]["proj"], self.cfg["temperature"])}


class SupervisedSimCLR(Objective):
    """SupCon over both augmented views: positives are all views sharing the label."""

    n_views = 2

    def terms(self, outs, labels):
        feats = torch.cat([outs[0]["proj"], outs[1]["proj"]])
        return {"contrastive": supcon(feats, torch.cat([labels, labels]), self.cfg["temperature"])}


def label_partners(labels: torch.Tensor) -> torch.Tensor:
    """For every event i, a random other event of the same label in the batch (i itself only
    if its label is unique): (N,) indices. Uses the global torch RNG (seeded per epoch)."""
    n = len(labels)
    keys = torch.rand(n, device=labels.device, dtype=torch.float64)
    order = torch.argsort(labels.double() * 2.0 + keys)  # by label, random inside a label
    sorted_labels = labels[order]
    start = torch.ones(n, dtype=torch.bool, device=labels.device)
    start[1:] = sorted_labels[1:] != sorted_labels[:-1]
    first = torch.cummax(torch.where(start, torch.arange(n, device=labels.device), 0), 0).values
    end = torch.ones(n, dtype=torch.bool, device=labels.device)
    end[:-1] = start[1:]
    nxt = torch.where(end, first, torch.arange(n, device=labels.device) + 1)  # cyclic shift in a label
    partner = torch.empty_like(order)
    partner[order] = order[nxt]
    return partner


class VICRegCE(Objective):
    """Paper B eq. 11: VICReg on pairs of positives' projections + scale * CE of a linear
    classifier on the latent (process group). cfg `positives`: `views` pairs two augmented
    views of each event; `labels` (paper B's supervised VICReg) pairs each event with a random
    other event of the same background class (one un-augmented view)."""

    n_views = 2

    def __init__(self, cfg: Mapping):
        super().__init__(cfg)
        self.by_label = cfg.get("positives", "views") == "labels"
        self.n_views = 1 if self.by_label else 2

    def terms(self, outs, labels):
        w = self.cfg["vicreg"]
        if self.by_label:
            z = outs[0]["proj"]
            pair = (z, z[label_partners(labels)])
        else:
            pair = (outs[0]["proj"], outs[1]["proj"])
        terms = vicreg(*pair, w["invariance"], w["variance"], w["covariance"])
        ce = sum(F.cross_entropy(o["logits"], labels) for o in outs) / len(outs)
        terms["cross_entropy"] = w["ce_scale"] * ce
        return terms


OBJECTIVES = {
    "supcon": SupCon,
    "simclr": SimCLR,
    "simclr_supervised": SupervisedSimCLR,
    "vicreg_ce": VICRegCE,
}


def build_objective(cfg: Mapping) -> Objective:
    return OBJECTIVES[cfg["loss"]](cfg)
