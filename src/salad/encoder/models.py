"""Encoders: particle transformer (paper A), Transformer with CLS token and MLP (paper B).

Every encoder is a backbone (normalised inputs -> representation h) followed by the shared
output block (h -> latent mean, log-variance; z by reparameterisation when variational) and
heads used only in training (projection head; classifier for the CE loss).
Inputs: obj (B, 11, 12), evt (B, 2) = normalised (dR_yy, pT_yy), mask (B, 11) bool, True =
real object. Padding objects are masked in attention and never reach the output.
The particle transformer with `interactions` adds ParT's pairwise features (pair_features) as
a per-head attention bias; it recovers the GeV kinematics from `obj` with the normaliser's
statistics (buffers), so augmented views get the matching pair features.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .data import KINEMATICS, N_FEATURES, N_OBJECTS, Normaliser, raw_kinematics

NEG = -1e9  # additive attention bias of padded keys (finite: no NaN for all-padding events)
# Initial log-variance of the output block. Starting at the prior (0) makes the sampling noise
# (std 1) swamp the initially small means (std ~0.05); SupCon then prefers collapsing all
# projections to one point (loss log(N-1)) and KL keeps the posterior at the prior. Starting
# with small noise lets the means separate first; KL then grows the variance.
LOGVAR_INIT = -6.0
PAIR_EPS = 1e-8  # lower clamp of the pair-feature arguments before the log
N_PAIR_FEATURES = 4


def pair_features(p4: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """ParT's pairwise interaction features of every object pair (a, b).

    p4 (B, N, 4): (pT [GeV], eta, phi, m [GeV]); mask (B, N) bool, True = real object.
    Returns (B, 4, N, N): ln dR, ln kT, ln z, ln m^2 with dR = sqrt(dy^2 + dphi^2) (rapidity y
    from (pT, eta, m), dphi wrapped into [-pi, pi)), kT = min(pT_a, pT_b) dR,
    z = min(pT_a, pT_b) / (pT_a + pT_b), m^2 = (E_a + E_b)^2 - |p_a + p_b|^2 [GeV^2]; every
    argument clamped below at 1e-8 before the log. Zero where either object is masked and on
    the diagonal.
    """
    pt, eta, phi, m = p4.unbind(-1)
    mt = torch.sqrt(pt**2 + m**2)  # transverse mass
    y = torch.asinh(pt * torch.sinh(eta) / mt.clamp_min(PAIR_EPS))  # sinh y = pz / mT
    pair = lambda v: (v[:, :, None], v[:, None, :])  # noqa: E731  (B, N, 1), (B, 1, N)
    (ya, yb), (pa, pb), (ma, mb), (ta, tb) = pair(y), pair(pt), pair(m), pair(mt)
    dy = ya - yb
    dphi = torch.remainder(phi[:, :, None] - phi[:, None, :] + math.pi, 2 * math.pi) - math.pi
    dr = torch.sqrt(dy**2 + dphi**2)
    ptmin = torch.minimum(pa, pb)
    # E_a E_b - p_a.p_b = mT_a mT_b cosh(dy) - pT_a pT_b cos(dphi): m^2 without E^2 - p^2 cancellation
    m2 = ma**2 + mb**2 + 2 * (ta * tb * torch.cosh(dy) - pa * pb * torch.cos(dphi))
    z = ptmin / (pa + pb).clamp_min(PAIR_EPS)
    u = torch.stack([dr, ptmin * dr, z, m2], dim=1).clamp_min(PAIR_EPS).log()
    n = mask.shape[1]
    valid = mask[:, :, None] & mask[:, None, :] & ~torch.eye(n, dtype=torch.bool, device=mask.device)
    return torch.where(valid[:, None], u, torch.zeros((), dtype=u.dtype, device=u.device))


class PairEmbed(nn.Module):
    """ParT's interaction embedding: a pointwise MLP (BatchNorm on the inputs, then Linear,
    BatchNorm, GELU per hidden layer) on the 4 pair features of every real pair a < b, giving
    one attention bias per head, symmetric in (a, b); 0 on the diagonal and for padded pairs.
    Batch statistics are taken over real pairs only."""

    def __init__(self, hidden: list[int], heads: int):
        super().__init__()
        layers: list[nn.Module] = [nn.BatchNorm1d(N_PAIR_FEATURES)]
        for a, b in zip([N_PAIR_FEATURES] + hidden[:-1], hidden):
            layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.GELU()]
        layers.append(nn.Linear(hidden[-1], heads))
        self.net = nn.Sequential(*layers)
        self.heads = heads

    def forward(self, u: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """u (B, 4, N, N) from pair_features, mask (B, N) -> bias (B, heads, N, N)."""
        b, _, n, _ = u.shape
        i, j = torch.triu_indices(n, n, 1, device=u.device)
        ev, pr = (mask[:, i] & mask[:, j]).nonzero(as_tuple=True)  # real pairs a < b
        a, c = i[pr], j[pr]
        bias = u.new_zeros(b, n, n, self.heads)
        if len(ev) > (1 if self.training else 0):  # BatchNorm needs 2 rows to train on
            out = self.net(u.permute(0, 2, 3, 1)[ev, a, c]).to(bias.dtype)
            bias = bias.index_put((ev, a, c), out).index_put((ev, c, a), out)
        return bias.permute(0, 3, 1, 2)


class Attention(nn.Module):
    """Multi-head attention of queries (B, Q, d) on keys/values (B, K, d) with key mask (B, K)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        ctx: torch.Tensor,
        key_mask: torch.Tensor,
        pair_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """pair_bias (B, heads, Q, K): added to the attention logits (interaction features)."""
        b, nq, d = x.shape
        h = self.heads
        q = self.q(x).view(b, nq, h, d // h).transpose(1, 2)
        k, v = self.kv(ctx).view(b, -1, 2, h, d // h).permute(2, 0, 3, 1, 4)
        bias = torch.zeros(key_mask.shape, dtype=q.dtype, device=q.device).masked_fill(~key_mask, NEG)
        bias = bias[:, None, None, :]
        if pair_bias is not None:
            bias = bias + pair_bias.to(q.dtype)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(b, nq, d))


class Block(nn.Module):
    """Pre-norm attention + feed-forward block; `normformer` adds ParT's extra layer norms."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, dropout: float, normformer: bool):
        super().__init__()
        extra = (lambda n: nn.LayerNorm(n)) if normformer else (lambda n: nn.Identity())
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.post_attn = extra(dim)
        self.ff = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, mlp_ratio * dim),
            nn.GELU(),
            extra(mlp_ratio * dim),
            nn.Dropout(dropout),
            nn.Linear(mlp_ratio * dim, dim),
        )
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        ctx: torch.Tensor,
        key_mask: torch.Tensor,
        pair_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, Q, d) attends to ctx (B, K, d) (self-attention: ctx is x)."""
        x = x + self.drop(self.post_attn(self.attn(self.norm(x), self.norm(ctx), key_mask, pair_bias)))
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
    class token, concatenated with an MLP on (dR_yy, pT_yy).

    cfg `interactions` (ParT): pair_features of the GeV kinematics, embedded once per batch by
    PairEmbed (3 hidden layers of hl_width; 64 at paper width, as ParT), are added to the
    attention logits of every particle-attention block (not the class-attention blocks). The
    kinematics are recovered from the normalised obj with the buffers kin_mean, kin_std
    (set_normaliser; saved with the state dict). Without it (or without the key: older
    checkpoints) the model has no pair parameters or buffers.
    """

    def __init__(self, cfg: Mapping):
        super().__init__(cfg)
        args = (cfg["width"], cfg["heads"], cfg["mlp_ratio"], cfg["dropout"], True)
        self.particle = nn.ModuleList(Block(*args) for _ in range(cfg["particle_blocks"]))
        self.klass = nn.ModuleList(Block(*args) for _ in range(cfg["class_blocks"]))
        self.norm = nn.LayerNorm(cfg["width"])
        self.interactions = bool(cfg.get("interactions", False))
        if self.interactions:
            self.pair_embed = PairEmbed([cfg["hl_width"]] * 3, cfg["heads"])
            self.register_buffer("kin_mean", torch.zeros(len(KINEMATICS)))
            self.register_buffer("kin_std", torch.ones(len(KINEMATICS)))

    def set_normaliser(self, norm: Normaliser) -> None:
        """Take the input normalisation of the (pT, eta, phi, m) columns (interactions only)."""
        if self.interactions:
            self.kin_mean.copy_(torch.as_tensor(norm.obj_mean[KINEMATICS]))
            self.kin_std.copy_(torch.as_tensor(norm.obj_std[KINEMATICS]))

    def pair_bias(self, obj, mask) -> torch.Tensor | None:
        """(B, heads, N, N) attention bias of the interactions (None without them)."""
        if not self.interactions:
            return None
        with torch.no_grad():
            u = pair_features(raw_kinematics(obj.float(), self.kin_mean, self.kin_std), mask)
        return self.pair_embed(u, mask)

    def particles(self, obj, mask) -> torch.Tensor:
        """Object tokens (B, N, d) after the particle-attention blocks (padded rows zero)."""
        x = self.tokens(obj, mask)
        keep = mask[..., None].to(x.dtype)
        bias = self.pair_bias(obj, mask)  # once per batch, shared by all blocks
        for block in self.particle:
            x = block(x, x, mask, bias) * keep  # padded tokens stay exactly zero
        return x

    def forward(self, obj, evt, mask):
        x = self.particles(obj, mask)
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
        self.net = nn.Sequential(
            *(
                m
                for a, b in zip(sizes[:-1], sizes[1:])
                for m in (nn.Linear(a, b), nn.BatchNorm1d(b), nn.LeakyReLU(0.1))
            )
        )
        self.out_dim = cfg["width"]

    def forward(self, obj, evt, mask):
        # padding rows are zero after normalisation; zero them again so their values never count
        return self.net(torch.cat([(obj * mask[..., None]).flatten(1), evt], dim=1))


class DINOHead(nn.Module):
    """Paper B's projection head of the supervised SimCLR Transformer (DINO's head, its Table V).

    x (B, in_dim) -> MLP of `layers` Linear layers (GELU between them, no BatchNorm:
    in -> hidden -> ... -> bottleneck) -> L2 normalisation -> weight-normalised Linear
    (bottleneck -> out_dim, no bias; direction v and norm g per output unit, g initialised
    to 1 and trained: paper B's "normalize last layer: False") -> (B, out_dim).
    Hidden weights: truncated normal, std 0.02; biases 0. Used in training only.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int, bottleneck: int, layers: int = 3):
        super().__init__()
        if layers < 1:
            raise ValueError(f"DINOHead: layers must be >= 1, got {layers}")
        self.mlp = mlp([in_dim] + [hidden] * (layers - 1) + [bottleneck], act=nn.GELU)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        last = nn.Linear(bottleneck, out_dim, bias=False)
        self.last_layer = nn.utils.parametrizations.weight_norm(last)  # weight = g * v / |v| per row
        with torch.no_grad():
            self.last_layer.parametrizations.weight.original0.fill_(1.0)  # g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(F.normalize(self.mlp(x), dim=-1, p=2))


def projection_head(cfg: Mapping, latent: int) -> nn.Module:
    """cfg `projector`: mlp (latent -> proj_width -> proj_dim, ReLU) or dino (DINOHead with
    hidden proj_width, bottleneck proj_bottleneck, proj_layers layers, output proj_dim)."""
    if cfg.get("projector", "mlp") == "dino":
        return DINOHead(
            latent, cfg["proj_dim"], cfg["proj_width"], cfg["proj_bottleneck"], cfg["proj_layers"]
        )
    return mlp([latent, cfg["proj_width"], cfg["proj_dim"]], act=nn.ReLU)


BACKBONES = {
    "particle_transformer": ParticleTransformer,
    "transformer": TransformerEncoder,
    "mlp": MLPEncoder,
}


class Encoder(nn.Module):
    """Backbone + VAE-like output block (+ projection head and optional classifier for training).

    The embedding (salad.encoder.embed) is the output block's mu; `proj` (MLP or DINO head,
    cfg `projector`) and `logits` feed the training losses only.

    forward(obj, evt, mask) -> {"mu", "logvar", "z", "proj"[, "logits"]}; z is sampled by
    reparameterisation in training mode (variational) and equals mu otherwise.
    """

    def __init__(self, cfg: Mapping, n_classes: int = 0, norm: Normaliser | None = None):
        super().__init__()
        self.variational = bool(cfg["variational"])
        self.backbone = BACKBONES[cfg["model"]](cfg)
        if norm is not None and hasattr(self.backbone, "set_normaliser"):
            self.backbone.set_normaliser(norm)
        latent = cfg["latent_dim"]
        self.output = mlp([self.backbone.out_dim, cfg["head_width"], (2 if self.variational else 1) * latent])
        if self.variational:
            with torch.no_grad():
                self.output[-1].bias[latent:].fill_(LOGVAR_INIT)
        self.projector = projection_head(cfg, latent)
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


def build_model(cfg: Mapping, n_classes: int, norm: Normaliser | None = None) -> Encoder:
    """The encoder of a resolved setup (salad.encoder.setups.resolve_setup); `norm` is the
    input normaliser (the interactions need it to recover GeV kinematics; a checkpoint's
    state dict restores it)."""
    return Encoder(cfg, n_classes if cfg["loss"] == "vicreg_ce" else 0, norm)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of `module`."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
