"""fit_flow: conditional normalizing flow p(z | m_yy) on the sideband latent.

Model: masked autoregressive flow (MAF) layers interleaved with fixed random permutations
(normflows `Permute`), on a conditional diagonal Gaussian base whose mean and log-scale are a
small MLP of the scaled mass, assembled as a normflows `ConditionalNormalizingFlow`.
Layer (`arch["layer"]`): "masked" (new fits) is our affine layer on a plain masked MLP
(`blocks` hidden layers of `hidden` units, context = scaled m_yy; see masked_affine) with a
soft-bounded log-scale that can expand and contract; "normflows" (checkpoints without the key)
is normflows' `MaskedAffineAutoregressive` (MADE with `blocks` residual blocks), whose scale
sigmoid(.+2)+1e-3 can only contract. Orientation (`arch["autoregressive"]`): normflows
evaluates a density through each layer's `inverse`; for `MaskedAffineAutoregressive` that is
the sequential direction (one MADE pass per latent dimension). `DensityMAF` is that layer with
forward and inverse swapped, so that `log_prob` is one MADE pass per layer and sampling the
sequential one (Papamakarios et al.'s MAF; zuko's MAF is oriented the same way); the masked
layer has this orientation only. A checkpoint without the key was fitted with the legacy
orientation and is rebuilt with it.
Inputs are standardised first (per-dimension mean/std of the SB training latent, stored
in the checkpoint); m_yy [GeV] is mapped linearly from the preselection window onto [-1, 1].

Training: Adam on the negative log-likelihood, a random validation split (config
`val_fraction`), early stopping after `patience` epochs without improvement, best weights
kept, gradient-norm clipping. NaN safety: a batch whose loss is not finite is skipped (no
optimiser step) and counted; if more than `max_skipped_fraction` of an epoch's batches are
skipped, training restarts from the best weights so far with a fresh optimiser at half the
learning rate (at most `MAX_RESTARTS` times; logged); without best weights yet, after that many
restarts, or when the validation loss is not finite, training stops with a SaladError naming
the epoch (a diverged fit is never silently used).

Checkpoint (`salad.artifacts.save_checkpoint`: atomic, tensors + plain data only, loaded
weights-only): dict with `state_dict`, `arch`, `latent_columns`, `z_mean`, `z_std` (float64 [d];
lists on disk), `mass_window` (GeV), `history` (per-epoch train/val NLL), `best_epoch`,
`fit_seconds`, `n_train`, `n_val`, `seed`, `provenance`.
`CathodeFlow` wraps fit / sample / log_prob / save / load as one estimator object.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Mapping

import numpy as np
import torch

from ..artifacts import load_checkpoint, provenance, save_checkpoint
from ..cli import parse_stage_args, pick_device, stable_seed, stage_parser
from ..config import merge_defaults
from ..contracts import latent_columns
from ..errors import SaladError
from ..features import Standardiser
from .data import LOG, read_job

DEFAULTS = {
    "transforms": 4,
    "hidden": 64,
    "blocks": 2,
    "batch_size": 256,
    "learning_rate": 1e-3,
    "weight_decay": 0.0,
    "max_epochs": 100,
    "patience": 10,
    "val_fraction": 0.2,
    "max_skipped_fraction": 0.1,
    "seed": 0,
    "autoregressive": "density",
    "layer": "masked",
}
MAX_RESTARTS = 3  # restarts from the best weights after a diverged epoch


def settings(cfg: Mapping | None) -> dict:
    """Flow settings: DEFAULTS <- config `flow` (unknown keys are an error; `count` and
    `template` are read by the rules and salad.cathode.template)."""
    return merge_defaults("flow", cfg, DEFAULTS, ignore=("count", "template"))


def scale_mass(myy, window) -> np.ndarray:
    """m_yy [GeV] -> [-1, 1] over the preselection window, shape (n, 1) float32."""
    lo, hi = window
    return (2.0 * (np.asarray(myy, np.float64) - lo) / (hi - lo) - 1.0).astype(np.float32)[:, None]


ORIENTATIONS = ("density", "sampling")  # which direction is the single MADE pass


@functools.cache
def density_maf():
    """normflows' MaskedAffineAutoregressive with forward and inverse swapped (a class; built on
    first use so that importing this module does not import normflows)."""
    import normflows as nf

    class DensityMAF(nf.flows.MaskedAffineAutoregressive):
        """x -> u = scale(x_<i) * x + shift(x_<i) is `inverse`, the direction normflows'
        log_prob takes: one MADE pass. `forward` (sampling, u -> x) is the autoregressive loop,
        d passes. Same parameters and state_dict keys as the parent."""

        def forward(self, inputs, context=None):
            return super().inverse(inputs, context)

        def inverse(self, inputs, context=None):
            return super().forward(inputs, context)

    return DensityMAF


LAYERS = ("masked", "normflows")  # our masked affine layer; normflows' MADE (older fits)
LOG_SCALE_BOUND = math.log(1e3)  # |log scale| of the masked layer stays below this (soft)


@functools.cache
def masked_affine():
    """Our MAF layer (a class, built on first use): an affine autoregressive transform whose
    shift and log-scale come from one plain masked MLP (MADE: masked linear layers + ReLU,
    `hidden` units x `layers`, the context visible to every unit), in the density orientation
    (`inverse`: x -> u = x * exp(a(x_<i, c)) + b(x_<i, c), one pass; `forward`: d passes).
    The log-scale is soft-bounded, a = s / (1 + |s| / ln 1000), so each dimension can expand
    or contract by up to ~1000x (normflows' layer only contracts: scale in (0.001, 1.001])."""
    import normflows as nf

    class MaskedMLP(torch.nn.Module):
        """x (n, d), c (n, k) -> (n, d, 2): output i sees x_j for j < i (in index order) and c."""

        def __init__(self, dims: int, context: int, hidden: int, layers: int):
            super().__init__()
            deg_in = torch.arange(1, dims + 1)
            sizes, masks, prev = [], [], torch.cat([torch.zeros(context, dtype=torch.long), deg_in])
            for _ in range(layers):
                deg = torch.arange(hidden) % max(dims - 1, 1) + 1  # degrees 1..d-1
                masks.append((deg[:, None] >= prev[None, :]).float())
                sizes.append((len(prev), hidden))
                prev = deg
            out = deg_in.repeat_interleave(2)  # (shift, log-scale) per dim
            masks.append((out[:, None] > prev[None, :]).float())
            sizes.append((len(prev), 2 * dims))
            self.linears = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in sizes)
            for k, m in enumerate(masks):
                self.register_buffer(f"mask{k}", m)
            torch.nn.init.zeros_(self.linears[-1].weight)  # starts as the identity
            torch.nn.init.zeros_(self.linears[-1].bias)
            self.dims = dims

        def forward(self, x, context):
            h = torch.cat([context, x], dim=1)
            last = len(self.linears) - 1
            for k, lin in enumerate(self.linears):
                h = torch.nn.functional.linear(h, lin.weight * getattr(self, f"mask{k}"), lin.bias)
                if k < last:
                    h = torch.relu(h)
            return h.view(-1, self.dims, 2)

    class MaskedAffine(nf.flows.Flow):
        def __init__(self, dims: int, hidden: int, layers: int, context_features: int = 1):
            super().__init__()
            self.dims = dims
            self.autoregressive_net = MaskedMLP(dims, context_features, hidden, layers)

        def _params(self, x, context):
            out = self.autoregressive_net(x, context)
            s = out[..., 1]
            return out[..., 0], s / (1 + s.abs() / LOG_SCALE_BOUND)

        def inverse(self, x, context=None):  # density direction: one pass
            shift, log_scale = self._params(x, context)
            return x * log_scale.exp() + shift, log_scale.sum(1)

        def forward(self, u, context=None):  # sampling direction: d passes
            x = torch.zeros_like(u)
            for _ in range(self.dims):
                shift, log_scale = self._params(x, context)
                x = (u - shift) * torch.exp(-log_scale)
            return x, -log_scale.sum(1)

    return MaskedAffine


def build_flow(arch: Mapping):
    """The normflows model for `arch` = {dims, transforms, hidden, blocks[, layer,
    autoregressive]}. `layer` "masked" (new fits): our masked affine layer (masked_affine) with
    `blocks` hidden layers of `hidden` units, density orientation. `layer` "normflows" (the
    default for checkpoints without the key): normflows' MADE with `blocks` residual blocks;
    its `autoregressive` is "density" (one-pass log_prob) or "sampling" (one-pass sampling; the
    default for checkpoints without the key)."""
    import normflows as nf

    dims = int(arch["dims"])
    kind = arch.get("layer", "normflows")
    if kind not in LAYERS:
        raise SaladError(f"flow arch: layer={kind!r}, expected one of {LAYERS}")
    orientation = arch.get("autoregressive", "sampling")
    if orientation not in ORIENTATIONS:
        raise SaladError(f"flow arch: autoregressive={orientation!r}, expected one of {ORIENTATIONS}")
    if kind == "masked":
        if orientation != "density":
            raise SaladError(
                "flow arch: layer='masked' exists in the density orientation only "
                f"(got autoregressive={orientation!r})"
            )
        make = functools.partial(masked_affine(), dims, int(arch["hidden"]), int(arch["blocks"]))
    else:
        layer = density_maf() if orientation == "density" else nf.flows.MaskedAffineAutoregressive
        make = functools.partial(
            layer, dims, int(arch["hidden"]), context_features=1, num_blocks=int(arch["blocks"])
        )
    layers = []
    for _ in range(int(arch["transforms"])):
        layers.append(make())
        if dims > 1:
            layers.append(nf.flows.Permute(dims, mode="shuffle"))
    # Conditional Gaussian base: location and log-scale of every dimension are an MLP of the
    # mass. (In MADE the first feature of each layer cannot see the context, so without this a
    # dimension could stay unconditional.) Zero-initialised output: starts as N(0, 1).
    encoder = torch.nn.Sequential(
        torch.nn.Linear(1, int(arch["hidden"])),
        torch.nn.Tanh(),
        torch.nn.Linear(int(arch["hidden"]), 2 * dims),
    )
    torch.nn.init.zeros_(encoder[-1].weight)
    torch.nn.init.zeros_(encoder[-1].bias)
    base = nf.distributions.base.ConditionalDiagGaussian(dims, encoder)
    return nf.ConditionalNormalizingFlow(base, layers)


def _nll(model, z, ctx) -> torch.Tensor:
    return -model.log_prob(z, context=ctx).mean()


def _adam(model, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam with the fused kernel (one call for all ~80 parameter tensors instead of a Python
    loop over them: several times less optimiser time per step on one CPU thread)."""
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)


def split_and_scale(z: np.ndarray, myy, val_fraction: float, seed: int):
    """(train rows, validation rows, mean [d], std [d]) of a fit: a seeded random split, the
    validation part round(val_fraction * n) rows (at least 1), disjoint from the training part;
    the standardisation is the training part's per-dimension mean and std (std 0 -> 1)."""
    if z.ndim != 2 or len(z) != len(myy):
        raise SaladError(f"flow input: z shape {z.shape} does not match {len(myy)} masses")
    n = len(z)
    n_val = max(1, int(round(val_fraction * n)))
    if n - n_val < 10:
        raise SaladError(f"flow input: only {n} sideband events; need at least {n_val + 10}")
    perm = np.random.default_rng(seed).permutation(n)
    tr, va = perm[n_val:], perm[:n_val]
    scaler = Standardiser.fit(z[tr], min_std=0.0)
    return tr, va, scaler.mean, scaler.std


def fit(
    z: np.ndarray,
    myy: np.ndarray,
    window,
    cfg: Mapping | None = None,
    seed: int = 0,
    threads: int = 1,
    device: str | None = None,
) -> dict:
    """Fit p(z | m_yy) to sideband events. z: (n, d) latent, myy: (n,) GeV. Returns checkpoint
    (weights on the CPU). Always float32 (no autocast: density estimation is precision-sensitive).
    Batch order comes from a CPU generator, so cpu and cuda runs see the same batches."""
    cfg = settings(cfg)
    dev = pick_device(device)
    torch.set_num_threads(max(1, threads))
    z = np.asarray(z, np.float64)
    tr, va, mean, std = split_and_scale(z, myy, cfg["val_fraction"], seed)
    zs = torch.as_tensor(((z - mean) / std).astype(np.float32), device=dev)
    ctx = torch.as_tensor(scale_mass(myy, window), device=dev)
    arch = {
        "dims": z.shape[1],
        **{k: cfg[k] for k in ("transforms", "hidden", "blocks", "autoregressive", "layer")},
    }
    torch.manual_seed(seed)
    model = build_flow(arch).to(dev)
    opt = _adam(model, cfg["learning_rate"], cfg["weight_decay"])
    params = list(model.parameters())
    gen = torch.Generator().manual_seed(seed)
    tr_t, va_t = torch.as_tensor(tr), torch.as_tensor(va)
    best, best_state, best_epoch, wait, history = np.inf, None, -1, 0, []
    restarts, lr = 0, float(cfg["learning_rate"])
    start = time.perf_counter()
    for epoch in range(int(cfg["max_epochs"])):
        model.train()
        order = tr_t[torch.randperm(len(tr_t), generator=gen)]
        losses, skipped, batches = [], 0, 0
        for i in range(0, len(order), int(cfg["batch_size"])):
            idx = order[i : i + int(cfg["batch_size"])].to(dev)
            batches += 1
            loss = _nll(model, zs[idx], ctx[idx])
            if not torch.isfinite(loss):
                skipped += 1
                continue
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0, foreach=True)
            opt.step()
            losses.append(loss.item())
        if skipped > cfg["max_skipped_fraction"] * batches:
            if best_state is None or restarts >= MAX_RESTARTS:
                raise SaladError(
                    f"flow training diverged: {skipped}/{batches} batches with "
                    f"non-finite loss in epoch {epoch}"
                )
            restarts, lr = restarts + 1, lr / 2
            LOG.warning(
                "epoch %d: %d/%d batches with non-finite loss; restart %d from the best "
                "epoch %d at learning rate %.3g",
                epoch,
                skipped,
                batches,
                restarts,
                best_epoch,
                lr,
            )
            model.load_state_dict(best_state)
            opt = _adam(model, lr, cfg["weight_decay"])
            wait = 0
            continue
        model.eval()
        with torch.no_grad():
            val = _nll(model, zs[va_t.to(dev)], ctx[va_t.to(dev)]).item()
        if not np.isfinite(val):
            raise SaladError(f"flow training diverged: non-finite validation loss in epoch {epoch}")
        history.append(
            {"epoch": epoch, "train_nll": float(np.mean(losses)), "val_nll": val, "skipped_batches": skipped}
        )
        LOG.info(
            "epoch %3d  train NLL %.4f  val NLL %.4f%s",
            epoch,
            history[-1]["train_nll"],
            val,
            f"  ({skipped} batches skipped)" if skipped else "",
        )
        if val < best - 1e-4:
            best, best_epoch, wait = val, epoch, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            wait += 1
            if wait >= cfg["patience"]:
                LOG.info("early stop at epoch %d; best epoch %d (val NLL %.4f)", epoch, best_epoch, best)
                break
    return {
        "state_dict": best_state,
        "arch": arch,
        "z_mean": mean,
        "z_std": std,
        "mass_window": list(window),
        "history": history,
        "best_epoch": best_epoch,
        "fit_seconds": time.perf_counter() - start,
        "n_train": len(tr),
        "n_val": len(va),
        "seed": seed,
    }


def fit_many(
    z: np.ndarray,
    myy: np.ndarray,
    window,
    cfg: Mapping | None = None,
    seeds=(0,),
    threads: int = 1,
    device: str | None = None,
) -> list[dict]:
    """The flows of one dataset (config flow.count of them, e.g. paper A pools 4 into one
    template): one checkpoint per seed, each identical to `fit(z, myy, window, cfg, seed)` (own
    validation split and early stopping). One call pays the process and import start-up once."""
    if len(seeds) == 0:
        raise SaladError("fit_many: no seeds given")
    return [fit(z, myy, window, cfg, seed=int(s), threads=threads, device=device) for s in seeds]


def save(checkpoint: dict, path, columns: list[str]) -> None:
    """Write the checkpoint atomically as tensors + plain data (loads weights-only)."""
    save_checkpoint(
        {**checkpoint, "latent_columns": list(columns)},
        path,
        provenance("fit-flow", checkpoint.get("arch"), seed=checkpoint.get("seed")),
    )


def load(path) -> tuple[torch.nn.Module, dict]:
    """(model in eval mode, checkpoint dict) from a fit_flow checkpoint (weights-only load)."""
    ckpt = load_checkpoint(path, "flow checkpoint")
    try:
        model = build_flow(ckpt["arch"])
        model.load_state_dict(ckpt["state_dict"])
        ckpt["z_mean"] = np.asarray(ckpt["z_mean"], np.float64)
        ckpt["z_std"] = np.asarray(ckpt["z_std"], np.float64)
    except Exception as exc:
        raise SaladError(f"{path}: not a readable flow checkpoint ({exc})") from None
    return model.eval(), ckpt


def sample(
    model, ckpt: dict, myy: np.ndarray, seed: int, batch: int = 20000, device: str | None = None
) -> np.ndarray:
    """Latent samples (n, d) in the original (unstandardised) units at masses `myy` [GeV].

    Rows with a non-finite value are redrawn (error if more than 1 % are non-finite). The model
    is moved to `device` (default cuda if available); torch.manual_seed seeds cpu and cuda."""
    dev = pick_device(device)
    model = model.to(dev)
    torch.manual_seed(seed)
    ctx_all = torch.as_tensor(scale_mass(myy, ckpt["mass_window"]), device=dev)
    out = np.empty((len(myy), ckpt["arch"]["dims"]), np.float64)
    with torch.no_grad():
        for i in range(0, len(myy), batch):
            ctx = ctx_all[i : i + batch]
            zs, _ = model.sample(len(ctx), context=ctx)
            zs = zs.double().cpu().numpy()
            bad = ~np.isfinite(zs).all(1)
            if bad.mean() > 0.01:
                raise SaladError(f"flow sampling: {int(bad.sum())}/{len(zs)} non-finite samples")
            if bad.any():
                redo, _ = model.sample(int(bad.sum()), context=ctx[torch.as_tensor(bad, device=dev)])
                zs[bad] = redo.double().cpu().numpy()
            out[i : i + batch] = zs
    if not np.isfinite(out).all():
        raise SaladError("flow sampling: non-finite samples after redraw")
    return out * ckpt["z_std"] + ckpt["z_mean"]


class CathodeFlow:
    """The flow as an estimator (sk_cathode style): fit / sample / log_prob / save / load.

    Carries its standardiser (`scaler`: the SB training latent's mean/std) and its mass window
    [GeV]; a thin wrapper over fit / sample / save / load of this module (same numbers)."""

    def __init__(
        self, window, cfg: Mapping | None = None, seed: int = 0, threads: int = 1, device: str | None = None
    ):
        self.window, self.cfg, self.seed = tuple(window), cfg, seed
        self.threads, self.device = threads, device
        self.model, self.checkpoint, self.scaler = None, None, None

    def _adopt(self, checkpoint: dict, model=None) -> CathodeFlow:
        if model is None:
            model = build_flow(checkpoint["arch"])
            model.load_state_dict(checkpoint["state_dict"])
        self.model, self.checkpoint = model.eval(), checkpoint
        self.scaler = Standardiser(
            np.asarray(checkpoint["z_mean"], np.float64), np.asarray(checkpoint["z_std"], np.float64)
        )
        self.window = tuple(checkpoint["mass_window"])
        return self

    def fit(self, z: np.ndarray, myy: np.ndarray) -> CathodeFlow:
        """Fit p(z | m_yy) on sideband events: z (n, d), myy (n,) [GeV]."""
        return self._adopt(
            fit(z, myy, self.window, self.cfg, seed=self.seed, threads=self.threads, device=self.device)
        )

    def sample(self, myy: np.ndarray, seed: int) -> np.ndarray:
        """Latent samples (n, d) in the original units at masses `myy` [GeV]."""
        return sample(self.model, self.checkpoint, myy, seed, device=self.device)

    def log_prob(self, z: np.ndarray, myy: np.ndarray) -> np.ndarray:
        """log p(z | m_yy) (n,) in the original units of z (the standardisation's Jacobian,
        -sum(log std), included)."""
        dev = pick_device(self.device)
        zs = torch.as_tensor(self.scaler.transform(np.asarray(z, np.float64)).astype(np.float32), device=dev)
        ctx = torch.as_tensor(scale_mass(myy, self.window), device=dev)
        with torch.no_grad():
            lp = self.model.to(dev).log_prob(zs, context=ctx).double().cpu().numpy()
        return lp - np.log(self.scaler.std).sum()

    def save(self, path, columns: list[str]) -> None:
        save(self.checkpoint, path, columns)

    @classmethod
    def load(cls, path, device: str | None = None) -> CathodeFlow:
        model, checkpoint = load(path)
        return cls(checkpoint["mass_window"], seed=checkpoint.get("seed", 0), device=device)._adopt(
            checkpoint, model
        )


def cli(argv=None) -> None:
    parser = stage_parser("Fit the conditional flow p(z | m_yy) on sideband pseudo-data.")
    parser.add_argument("--embeddings", required=True)
    parser.add_argument("--data", required=True, help="pseudo-data Parquet")
    parser.add_argument("--output", required=True, help="checkpoint path (.pt)")
    parser.add_argument("--seed-key", default="", help="wildcards, mixed into the seed")
    args, cfg = parse_stage_args(parser, argv)
    flow_cfg = cfg.get("flow", {})
    window = cfg["window"]
    _, data, _, sb = read_job(args.embeddings, args.data, cfg)
    cols = latent_columns(data)
    seed = stable_seed(flow_cfg.get("seed", 0), args.seed_key)
    LOG.info("fitting flow on %d sideband events, %d latent dims, seed %d", sb.sum(), len(cols), seed)
    ckpt = fit(
        data.loc[sb, cols].to_numpy(),
        data.loc[sb, "myy"].to_numpy(),
        window,
        flow_cfg,
        seed=seed,
        threads=args.threads,
    )
    LOG.info("fit time %.1f s, best epoch %d", ckpt["fit_seconds"], ckpt["best_epoch"])
    save(ckpt, args.output, cols)
