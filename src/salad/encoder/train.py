"""Stage `train-encoder`: train one encoder setup with one seed.

    python -m salad train-encoder --preselected P1.parquet ... --split S1.parquet ... \\
        --model results/encoders/{setup}/{seed}/model.pt --history .../history.parquet \\
        --plot .../loss.png --seed 1 --threads 2 --log LOG --config '{"encoder": {...}}'

--config holds the resolved setup (salad.encoder.setups.resolve_setup). Training uses the
`train` subset of the listed samples, early stopping on the `val` subset; labels are the
process `group` (labelled simulation only). A resumable state is written atomically after
every epoch next to the model (`state.pt`); a restarted job with the same settings, data and
seed continues from it and ends with the same weights as an uninterrupted run.

Checkpoint `model.pt` (torch.save dict): format, config, seed, groups (label order),
normaliser (log1p + standardisation stats), state_dict (best validation epoch), best_epoch,
best_val_loss, epochs_run, n_parameters, provenance.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..artifacts import config_hash, provenance, save_checkpoint, write_parquet
from ..artifacts import load_checkpoint as read_checkpoint
from ..cli import derive_seed, pick_device, setup_logging
from ..config import parse_stage_config
from ..errors import SaladError
from .augment import Augmenter
from .data import (
    BalancedSampler,
    EventTensors,
    Normaliser,
    RawEvents,
    cap_per_sample,
    load_events,
    to_tensors,
)
from .lars import LARS
from .losses import build_objective
from .models import build_model, count_parameters
from .sampling import WeightedSampler, cocktail_probabilities

log = logging.getLogger("salad.encoder")
CHECKPOINT_FORMAT = "salad-encoder-1"
#: Encoder-half subsets training reads (train: gradient steps, val: early stopping); the
#: `test` subset is withheld (NPLM reference, salad.nplm.EMBEDDING_TRAINING_SUBSETS).
TRAINING_SUBSETS = ("train", "val")


PRECISIONS = ("auto", "fp32", "bf16")


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """Autocast dtype of the encoder forward pass in training (None: plain float32).

    `auto`: bf16 on a cuda device that supports it, else float32 (CPU training stays float32).
    bf16 has float32's exponent range, so no GradScaler is needed and the -1e9 attention bias of
    padded objects stays finite; fp16 is not offered (that bias overflows to -inf in fp16, and
    a GradScaler would add state to the resumable checkpoint). Losses are computed in float32.
    """
    if precision not in PRECISIONS:
        raise SaladError(f"encoder precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


# --------------------------------------------------------------------------- data
def training_subsets(cfg: Mapping, events: RawEvents, seed: int) -> tuple[RawEvents, RawEvents]:
    """The train and val events (TRAINING_SUBSETS), each capped per sample (val at 1/3 of the cap)."""
    subsets = []
    cap = cfg["max_events_per_sample"]
    for name, share in zip(TRAINING_SUBSETS, (1.0, 1 / 3)):
        part = events.take(events.subset == name)
        subsets.append(
            cap_per_sample(
                part, None if cap is None else max(1, math.ceil(cap * share)), derive_seed(seed, name)
            )
        )
    return subsets[0], subsets[1]


def prepare_data(cfg: Mapping, events: RawEvents, seed: int):
    """Train/val tensors (normalised once), normaliser and label order from raw events."""
    train, val = training_subsets(cfg, events, seed)
    if len(train) == 0 or len(val) == 0:
        raise SaladError("--split: no events in the train or val subset of the training samples")
    groups = sorted(int(g) for g in np.unique(train.group))
    if len(groups) < 2:
        raise SaladError(f"training events: need at least two process groups, got {groups}")
    missing = sorted(set(np.unique(val.group).tolist()) - set(groups))
    if missing:
        raise SaladError(f"--split: group(s) {missing} have validation but no training events")
    norm = Normaliser.fit(train.objects, train.event)
    label = lambda e: np.searchsorted(groups, e.group).astype(np.int64)  # noqa: E731
    fingerprint = hashlib.sha256(train.event_id.tobytes() + val.event_id.tobytes()).hexdigest()[:16]
    return to_tensors(train, norm, label(train)), to_tensors(val, norm, label(val)), norm, groups, fingerprint


def build_optimizer(cfg: Mapping, params) -> torch.optim.Optimizer:
    """cfg `optimizer`: adam (L2 weight_decay), adamw (decoupled) or lars (paper B's MLP)."""
    name = cfg.get("optimizer", "adam")
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    if name == "adamw":
        return torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    if name == "lars":
        return LARS(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    raise SaladError(f"encoder optimizer: {name!r} is not one of adam, adamw, lars")


# --------------------------------------------------------------------------- training
class Trainer:
    """One training run: model, optimiser, schedule, early stopping, resumable state."""

    def __init__(
        self,
        cfg: Mapping,
        train: EventTensors,
        val: EventTensors,
        norm: Normaliser,
        groups: list[int],
        seed: int,
        state_path: str | Path,
        data_fingerprint: str = "",
        device: str | None = None,
        precision: str = "auto",
        cocktail: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        """cocktail: (train, val) draw probabilities, required with cfg balance: weighted."""
        self.cfg, self.seed, self.groups, self.norm = dict(cfg), int(seed), groups, norm
        self.device = pick_device(device)
        self.amp_dtype = autocast_dtype(self.device, precision)
        self.train, self.val = train.to(self.device), val.to(self.device)
        self.state_path = Path(state_path)
        self.fingerprint = f"{config_hash(self.cfg)}-{seed}-{data_fingerprint}"
        torch.manual_seed(derive_seed(seed, "init"))
        self.model = build_model(self.cfg, len(groups), norm).to(self.device)
        self.objective = build_objective(self.cfg)
        self.augment = Augmenter(self.cfg["augmentations"], norm, self.device)
        self.opt = build_optimizer(self.cfg, self.model.parameters())
        if self.cfg.get("balance", "classes") == "weighted":
            if cocktail is None:
                raise SaladError("encoder balance: weighted needs the events' MC weights (cocktail)")
            self.sampler = WeightedSampler(cocktail[0], self.cfg["batch_size"], derive_seed(seed, "train"))
            val_sampler = WeightedSampler(cocktail[1], self.cfg["batch_size"], derive_seed(seed, "val"))
        else:
            self.sampler = BalancedSampler(
                train.label.numpy(), self.cfg["batch_size"], derive_seed(seed, "train")
            )
            val_sampler = BalancedSampler(val.label.numpy(), self.cfg["batch_size"], derive_seed(seed, "val"))
        self.val_batches = val_sampler.epoch(0)
        self.epoch, self.best_loss, self.best_epoch, self.bad_epochs = 0, math.inf, -1, 0
        self.best_state: dict | None = None
        self.history: list[dict] = []
        self.stopped = False

    # schedule: linear warm-up over warmup_epochs, then cosine to lr * min_lr_ratio at max_epochs
    def lr_at(self, step: int) -> float:
        per = self.sampler.n_batches
        warm, total = self.cfg["warmup_epochs"] * per, self.cfg["max_epochs"] * per
        base = self.cfg["lr"]
        if step < warm:
            return base * (step + 1) / warm
        frac = (step - warm) / max(1, total - warm)
        floor = base * self.cfg["min_lr_ratio"]
        return floor + (base - floor) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))

    def _views(self, b: EventTensors, g: torch.Generator):
        n = self.objective.n_views
        if not self.augment:
            return [(b.obj, b.evt, b.mask)] * n
        return [self.augment(b.obj, b.evt, b.mask, g) for _ in range(n)]

    def _step_terms(self, b: EventTensors, g: torch.Generator) -> dict:
        views = self._views(b, g)
        if self.amp_dtype is None:
            outs = [self.model(*v, generator=g) for v in views]
        else:  # mixed precision for the forward pass only; the objective sees float32
            with torch.autocast(self.device.type, dtype=self.amp_dtype):
                outs = [self.model(*v, generator=g) for v in views]
            outs = [{k: v.float() if torch.is_tensor(v) else v for k, v in o.items()} for o in outs]
        return self.objective(outs, b.label)

    def train_epoch(self) -> dict:
        self.model.train()
        seed = derive_seed(self.seed, "epoch", self.epoch)
        torch.manual_seed(seed)  # dropout; a resumed epoch draws exactly the same numbers
        g = torch.Generator(self.device).manual_seed(seed)
        sums: dict[str, float] = {}
        batches = self.sampler.epoch(self.epoch)
        for i, idx in enumerate(batches):
            lr = self.lr_at(self.epoch * self.sampler.n_batches + i)
            for group in self.opt.param_groups:
                group["lr"] = lr
            terms = self._step_terms(self.train.batch(torch.from_numpy(idx).to(self.device)), g)
            if not torch.isfinite(terms["loss"]):
                raise SaladError(
                    f"encoder training: non-finite loss at epoch {self.epoch} (lower encoder lr?)"
                )
            self.opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            self.opt.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
        out = {f"train_{k}": v / len(batches) for k, v in sums.items()}
        out["lr"] = lr
        out["events"] = len(batches) * len(batches[0])
        return out

    @torch.no_grad()
    def validate(self) -> dict:
        self.model.eval()
        g = torch.Generator(self.device).manual_seed(derive_seed(self.seed, "val"))
        sums: dict[str, float] = {}
        for idx in self.val_batches:
            for k, v in self._step_terms(self.val.batch(torch.from_numpy(idx).to(self.device)), g).items():
                sums[k] = sums.get(k, 0.0) + float(v)
        return {f"val_{k}": v / len(self.val_batches) for k, v in sums.items()}

    # resumable state ---------------------------------------------------------
    _STATE_KEYS = ("epoch", "best_loss", "best_epoch", "bad_epochs", "best_state", "history", "stopped")

    def save_state(self) -> None:
        state = {k: getattr(self, k) for k in self._STATE_KEYS}
        state.update(
            fingerprint=self.fingerprint, model=self.model.state_dict(), optimizer=self.opt.state_dict()
        )
        save_checkpoint(state, self.state_path)

    def try_resume(self) -> bool:
        """Load state.pt if it belongs to this run (same settings, data, seed)."""
        if not self.state_path.exists():
            return False
        try:
            state = read_checkpoint(self.state_path, "training state", self.device)
        except SaladError as exc:  # a corrupt state is only a lost head start
            log.warning("%s; training from scratch", exc)
            return False
        if state.get("fingerprint") != self.fingerprint:
            log.warning("%s: from other settings/data/seed; training from scratch", self.state_path)
            return False
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        for k in self._STATE_KEYS:
            setattr(self, k, state[k])
        log.info("resumed from %s after epoch %d", self.state_path, self.epoch)
        return True

    def run(self, on_epoch_end: Callable[[Trainer], None] | None = None) -> None:
        """Train until max_epochs or early stopping, saving state after every epoch."""
        log.info(
            "training %s on %s (%s): %d train / %d val events, groups %s, %d parameters, "
            "%d batches/epoch of %d (%s)",
            self.cfg.get("setup"),
            self.device,
            f"autocast {self.amp_dtype}" if self.amp_dtype else "float32",
            len(self.train),
            len(self.val),
            self.groups,
            count_parameters(self.model),
            self.sampler.n_batches,
            len(self.val_batches[0]),
            self.cfg.get("balance", "classes"),
        )
        while not self.stopped and self.epoch < self.cfg["max_epochs"]:
            start = time.perf_counter()
            row = {"epoch": self.epoch, **self.train_epoch()}
            train_s = time.perf_counter() - start
            row.update(self.validate())
            row["time_s"] = time.perf_counter() - start  # train + validation
            row["events_per_s"] = row.pop("events") / train_s  # training steps only
            if row["val_loss"] < self.best_loss:
                self.best_loss, self.best_epoch, self.bad_epochs = row["val_loss"], self.epoch, 0
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            else:
                self.bad_epochs += 1
            self.history.append(row)
            self.epoch += 1
            self.stopped = self.bad_epochs >= self.cfg["patience"]
            log.info(
                "epoch %3d  %s",
                row["epoch"],
                "  ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"),
            )
            self.save_state()
            if on_epoch_end is not None:
                on_epoch_end(self)
        if self.stopped:
            log.info("early stopping after epoch %d (best epoch %d)", self.epoch - 1, self.best_epoch)

    def checkpoint(self) -> dict:
        """The final checkpoint dict (best validation weights)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.cfg,
            "seed": self.seed,
            "groups": self.groups,
            "normaliser": self.norm.state_dict(),
            "state_dict": {k: v.cpu() for k, v in self.best_state.items()},
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_loss,
            "epochs_run": self.epoch,
            "n_parameters": count_parameters(self.model),
            "provenance": provenance("train-encoder", self.cfg, seed=self.seed),
        }


def train_encoder(
    cfg: Mapping,
    preselected: Sequence[str | Path],
    split: Sequence[str | Path],
    seed: int,
    model_path: str | Path,
    history_path: str | Path,
    plot_path: str | Path | None = None,
    device: str | None = None,
    on_epoch_end: Callable | None = None,
    precision: str = "auto",
) -> dict:
    """Train (or resume) one encoder; write model.pt, history.parquet and the loss plot.

    Returns the checkpoint dict. The resumable state lives at model_path's folder/state.pt
    and is removed once the outputs are written.
    """
    events = load_events(preselected, split, cfg["train_samples"])
    train, val, norm, groups, fp = prepare_data(cfg, events, seed)
    cocktail = None
    if cfg.get("balance", "classes") == "weighted":
        cocktail = tuple(
            cocktail_probabilities(preselected, part.event_id) for part in training_subsets(cfg, events, seed)
        )
    state_path = Path(model_path).with_name("state.pt")
    trainer = Trainer(cfg, train, val, norm, groups, seed, state_path, fp, device, precision, cocktail)
    trainer.try_resume()
    trainer.run(on_epoch_end)
    ckpt = trainer.checkpoint()
    save_checkpoint(ckpt, model_path)
    history = pd.DataFrame(trainer.history)
    write_parquet(history, history_path, provenance("train-encoder", cfg, seed=seed))
    if plot_path is not None:
        from .plots import plot_history

        plot_history(history, plot_path, f"{cfg.get('setup')} seed {seed}")
    state_path.unlink(missing_ok=True)
    return ckpt


def load_checkpoint(path: str | Path, device="cpu"):
    """(model in eval mode, normaliser, checkpoint dict) from a model.pt file."""
    ckpt = read_checkpoint(path, "encoder checkpoint", device)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise SaladError(f"{path}: not a salad encoder checkpoint (format {CHECKPOINT_FORMAT})")
    norm = Normaliser.from_state_dict(ckpt["normaliser"])
    model = build_model(ckpt["config"], len(ckpt["groups"]), norm)
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), norm, ckpt


# --------------------------------------------------------------------------- CLI
def stage_setup(text: str | None) -> dict:
    """The resolved setup dict from --config ({"encoder": {...}})."""
    cfg = parse_stage_config(text).get("encoder")
    if not isinstance(cfg, dict) or "train_samples" not in cfg:
        raise SaladError(
            '--config: expected {"encoder": <resolved setup>} (salad.encoder.setups.resolve_setup)'
        )
    return cfg


def cli(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="salad train-encoder", description=__doc__.split("\n")[0])
    p.add_argument("--preselected", nargs="+", required=True)
    p.add_argument("--split", nargs="+", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--history", required=True)
    p.add_argument("--plot")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="forward-pass autocast (auto: bf16 on cuda, float32 on cpu)",
    )
    p.add_argument("--log")
    p.add_argument("--config", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    setup_logging(args.log, append=True)
    cfg = stage_setup(args.config)
    train_encoder(
        cfg,
        args.preselected,
        args.split,
        args.seed,
        args.model,
        args.history,
        args.plot,
        args.device,
        precision=args.precision,
    )
