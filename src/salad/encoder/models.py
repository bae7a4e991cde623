"""Encoders: particle transformer (paper A), Transformer with CLS token and MLP (paper B).

Every encoder is a backbone (normalised inputs -> representation h) followed by the shared
output block (h -> latent mean, log-variance; z by reparameterisation when variational) and
heads used only in training (projection head; classifier for the CE loss).
Inputs: obj (B, 11, 12), evt (B, 2) = normalised (dR_yy, pT_yy), mask (B, 11) bool, True =
real object. Padding objects are masked in attention and never reach the output.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .data import N_FEATURES, N_OBJECTS

NEG = -1e9  # additive attention bias of padded keys (finite: no NaN for all-padding events)
# Initial log-variance of the output block. Starting at the prior (0) makes the sampling noise
# (std 1) swamp the initially small means (std ~0.05); SupCon then prefers collapsing all
# projections to one point (loss log(N-1)) and KL keeps the posterior at the prior. Starting
# with small noise lets the means separate first; KL then grows the variance.
LOGVAR_INIT = -6.0


class Attention(nn.Module):
    """Multi-head attention of queries (B, Q, d) on keys/values (B, K, d) with key mask (B, K)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        b, nq, d = x.shape
        h = self.heads
        q = self.q(x).view(b, nq, h, d // h).transpose(1, 2)
        k, v = self.kv(ctx).view(b, -1, 2, h, d // h).permute(2, 0, 3, 1, 4)
        bias = torch.zeros(key_mask.shape, dtype=q.dtype, device=q.device).masked_fill(~key_mask, NEG)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[:, None, None, :],
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, nq, d))


class Block(nn.Module):
    """Pre-norm attention + feed-forward block; `normformer` adds ParT's extra layer norms."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, dropout: float, normformer: bool):
        super().__init__()
        extra = (lambda n: nn.LayerNorm(n)) if normformer else (lambda n: nn.Identity())
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.post_attn = extra(dim)
        self.ff = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, mlp_ratio * dim), nn.GELU(),
                                extra(mlp_ratio * dim), nn.Dropout(dropout),
                                nn.Linear(mlp_ratio * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """x (B, Q, d) attends to ctx (B, K, d) (self-attention: ctx is x)."""
        x = x + self.drop(self.post_attn(self.attn(self.norm(x), self.norm(ctx), key_mask)))
        return x + self.drop(self.ff(x))


def mlp(sizes: list[int], act=nn.GELU) -> nn.Sequential:
    """Linear layers with `act` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class _TokenBackbone(nn.Module):
    """Shared parts of the attention backbones: object embedding and the (dR, pT) MLP."""

    def __init__(self, cfg: Mapping):
        super().__init__()
        d = cfg["width"]
        self.embed = mlp([N_FEATURES, cfg["mlp_ratio"] * d, d])
        self.hl = mlp([2, cfg["hl_width"], cfg["hl_width"]])
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        nn.init.trunc_normal_(self.cls, std=0.02)
        self.out_dim = d + cfg["hl_width"]

    def tokens(self, obj, mask):
        return self.embed(obj) * mask[..., None]

    def finish(self, cls, evt):
        return torch.cat([cls[:, 0], self.hl(evt)], dim=1)


class ParticleTransformer(_TokenBackbone):
    """Paper A: per-object embedding, particle-attention blocks, class-attention blocks with a
    class token, concatenated with an MLP on (dR_yy, pT_yy). No pairwise interaction features."""

    def __init__(self, cfg: Mapping):
        super().__init__(cfg)
        args = (cfg["width"], cfg["heads"], cfg["mlp_ratio"], cfg["dropout"], True)
        self.particle = nn.ModuleList(Block(*args) for _ in range(cfg["particle_blocks"]))
        self.klass = nn.ModuleList(Block(*args) for _ in range(cfg["class_blocks"]))
        self.norm = nn.LayerNorm(cfg["width"])

    def forward(self, obj, evt, mask):
        x = self.tokens(obj, mask)
        keep = mask[..., None].to(x.dtype)
        for block in self.particle:
            x = block(x, x, mask) * keep          # padded tokens stay exactly zero
        cls = self.cls.expand(len(x), -1, -1)
        ctx_mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        for block in self.klass:
            cls = block(cls, torch.cat([cls, x], dim=1), ctx_mask)
        return self.finish(self.norm(cls), evt)


class TransformerEncoder(_TokenBackbone):
    """Paper B: standard (pre-norm) Transformer over [CLS, objects] with learned slot
    embeddings; the CLS output (plus the (dR, pT) MLP) is the representation."""

    def __init__(self, cfg: Mapping):
        super().__init__(cfg)
        self.slot = nn.Parameter(torch.zeros(1, N_OBJECTS, cfg["width"]))
        nn.init.trunc_normal_(self.slot, std=0.02)
        args = (cfg["width"], cfg["heads"], cfg["mlp_ratio"], cfg["dropout"], False)
        self.blocks = nn.ModuleList(Block(*args) for _ in range(cfg["blocks"]))
        self.norm = nn.LayerNorm(cfg["width"])

    def forward(self, obj, evt, mask):
        x = torch.cat([self.cls.expand(len(obj), -1, -1), self.tokens(obj, mask) + self.slot], 1)
        full = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        keep = full[..., None].to(x.dtype)
        for block in self.blocks:
            x = block(x, x, full) * keep
        return self.finish(self.norm(x[:, :1]), evt)


class MLPEncoder(nn.Module):
    """Paper B: blocks of batch-normalised Linear + LeakyReLU on the flattened inputs."""

    def __init__(self, cfg: Mapping):
        super().__init__()
        sizes = [N_OBJECTS * N_FEATURES + 2] + [cfg["width"]] * cfg["blocks"]
        self.net = nn.Sequential(*(m for a, b in zip(sizes[:-1], sizes[1:])
                                   for m in (nn.Linear(a, b), nn.BatchNorm1d(b), nn.LeakyReLU(0.1))))
        self.out_dim = cfg["width"]

    def forward(self, obj, evt, mask):
        # padding rows are zero after normalisation; zero them again so their values never count
        return self.net(torch.cat([(obj * mask[..., None]).flatten(1), evt], dim=1))


BACKBONES = {"particle_transformer": ParticleTransformer, "transformer": TransformerEncoder,
             "mlp": MLPEncoder}


class Encoder(nn.Module):
    """Backbone + VAE-like output block (+ projection head and optional classifier for training).

    forward(obj, evt, mask) -> {"mu", "logvar", "z", "proj"[, "logits"]}; z is sampled by
    reparameterisation in training mode (variational) and equals mu otherwise.
    """

    def __init__(self, cfg: Mapping, n_classes: int = 0):
        super().__init__()
        self.variational = bool(cfg["variational"])
        self.backbone = BACKBONES[cfg["model"]](cfg)
        latent = cfg["latent_dim"]
        self.output = mlp([self.backbone.out_dim, cfg["head_width"],
                           (2 if self.variational else 1) * latent])
        if self.variational:
            with torch.no_grad():
                self.output[-1].bias[latent:].fill_(LOGVAR_INIT)
        self.projector = mlp([latent, cfg["proj_width"], cfg["proj_dim"]], act=nn.ReLU)
        self.classifier = nn.Linear(latent, n_classes) if n_classes else None

    def encode(self, obj, evt, mask) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Latent mean (B, latent) and log-variance (None if not variational)."""
        out = self.output(self.backbone(obj, evt, mask))
        if not self.variational:
            return out, None
        mu, logvar = out.chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def forward(self, obj, evt, mask, generator: torch.Generator | None = None) -> dict:
        mu, logvar = self.encode(obj, evt, mask)
        z = mu
        if self.variational and self.training:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + eps * torch.exp(0.5 * logvar)
        out = {"mu": mu, "logvar": logvar, "z": z, "proj": self.projector(z)}
        if self.classifier is not None:
            out["logits"] = self.classifier(z)
        return out


def build_model(cfg: Mapping, n_classes: int) -> Encoder:
    """The encoder of a resolved setup (salad.encoder.setups.resolve_setup)."""
    return Encoder(cfg, n_classes if cfg["loss"] == "vicreg_ce" else 0)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of `module`."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
