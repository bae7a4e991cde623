"""Encoder setups: resolve config `encoder` into one self-contained dict per setup.

A setup (the `{setup}` wildcard) is `encoder.defaults` overlaid with
`encoder.setups[<name>]`; it decides which simulated samples train the encoder:
  - `signals: true`  (default) all configured samples (ID), minus
  - `holdout_samples` (IP: one mass point) and `holdout_groups` (EP: whole models);
  - `signals: false` SM groups (group >= 0) only (background-only).
The resolved dict (settings + `train_samples` {sample: group}) is all a training job
reads, so editing one setup re-trains only that setup. `seeds` is resolved separately
(a wildcard), so adding a seed re-trains nothing.

`encoder.leave_one_model_out` {prefix, settings} generates a family of EP setups from the
process table (expand_setups): one per BSM group among the configured samples, named
`<prefix><|group|>` and holding out that group (paper A fig. 7: "EP" of a model = the encoder
trained without that model).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from ..errors import SaladError

#: Settings every setup has (config `encoder.defaults` and each setup override these).
DEFAULTS: dict = {
    "model": "particle_transformer",  # particle_transformer | transformer | mlp
    "loss": "supcon",  # supcon | simclr | simclr_supervised | vicreg_ce
    "latent_dim": 6,
    "width": 32,  # token / hidden width (paper scale: 120 -> ~1.1M params)
    "heads": 4,
    "particle_blocks": 4,  # particle_transformer
    "class_blocks": 2,  # particle_transformer
    "interactions": True,  # particle_transformer: ParT pair features as attention bias
    "blocks": 4,  # transformer / mlp depth
    "mlp_ratio": 4,  # feed-forward width / width in attention blocks
    "hl_width": 32,  # MLP on (dR_yy, pT_yy)
    "head_width": 64,  # output block hidden width
    "proj_width": 64,  # projection head hidden width (training only)
    "proj_dim": 32,  # projection head output
    "projector": "mlp",  # mlp | dino (paper B's supervised SimCLR Transformer, Table V)
    "proj_bottleneck": 64,  # dino: bottleneck before the L2 norm (paper B: 64)
    "proj_layers": 3,  # dino: MLP layers (paper B: 3)
    "dropout": 0.0,
    "variational": True,  # VAE-like output block (mean, log-variance)
    "kl_weight": 0.1,  # lambda
    "temperature": 0.1,  # tau
    "batch_size": 512,
    "max_epochs": 30,
    "lr": 2.0e-4,
    "weight_decay": 0.0,
    "warmup_epochs": 5,
    "min_lr_ratio": 0.0,  # cosine annealing ends at lr * min_lr_ratio
    "patience": 10,
    "max_events_per_sample": None,  # cap on training events per sample (paper: 60000)
    "augmentations": {},  # name -> probability / strength (see augment.py)
    "vicreg": {"invariance": 25.0, "variance": 25.0, "covariance": 1.0, "ce_scale": 1.0},
    "positives": "views",  # vicreg_ce: views (two augmentations) | labels (same class)
    "optimizer": "adam",  # adam | adamw | lars
    "balance": "classes",  # classes: class-balanced batches | weighted: by MC weight
    "signals": True,
    "holdout_samples": [],
    "holdout_groups": [],
}

MODELS = ("particle_transformer", "transformer", "mlp")
LOSSES = ("supcon", "simclr", "simclr_supervised", "vicreg_ce")
TWO_VIEW_LOSSES = ("simclr", "simclr_supervised", "vicreg_ce")
AUGMENTATION_NAMES = ("mask", "drop_object", "rotate", "flip_eta", "smear_pt")
CHOICES = {
    "projector": ("mlp", "dino"),
    "positives": ("views", "labels"),
    "optimizer": ("adam", "adamw", "lars"),
    "balance": ("classes", "weighted"),
}


def setup_names(encoder_cfg: Mapping) -> list[str]:
    """Configured setup names, in config order."""
    return list(encoder_cfg.get("setups", {}))


def seeds_for(encoder_cfg: Mapping, setup: str) -> list[int]:
    """Training seeds of `setup` (its own `seeds`, else `encoder.seeds`)."""
    _setup_entry(encoder_cfg, setup)
    own = encoder_cfg["setups"][setup] or {}
    return [int(s) for s in own.get("seeds", encoder_cfg.get("seeds", [1]))]


def expand_setups(encoder_cfg: Mapping, sample_groups: Mapping[str, int]) -> dict:
    """A copy of config `encoder` whose `setups` also hold the leave-one-model-out family.

    sample_groups: {sample: process group} of the configured samples. For each BSM group
    g < 0 among them (in order of first appearance), setup `<prefix><-g>` =
    leave_one_model_out.settings + {holdout_groups: [g]}. Without `leave_one_model_out`, the
    config is returned unchanged (copied). Raises SaladError if a generated name is configured.
    """
    cfg = copy.deepcopy(dict(encoder_cfg))
    family = cfg.get("leave_one_model_out")
    if not family:
        return cfg
    prefix, settings = family.get("prefix", "EP_m"), family.get("settings") or {}
    setups = dict(cfg.get("setups") or {})
    for group in dict.fromkeys(int(g) for g in sample_groups.values() if int(g) < 0):
        name = f"{prefix}{-group}"
        if name in setups:
            raise SaladError(
                f"encoder.setups.{name}: name taken by encoder.leave_one_model_out "
                f"(prefix {prefix!r}); rename the setup or the prefix"
            )
        setups[name] = {**copy.deepcopy(settings), "holdout_groups": [group]}
    cfg["setups"] = setups
    return cfg


def family_groups(encoder_cfg: Mapping, sample_groups: Mapping[str, int]) -> dict[str, int]:
    """{setup: held-out group} of the leave-one-model-out family (empty when not configured)."""
    expanded = expand_setups(encoder_cfg, sample_groups)
    if not encoder_cfg.get("leave_one_model_out"):
        return {}
    return {
        name: entry["holdout_groups"][0]
        for name, entry in expanded["setups"].items()
        if name not in (encoder_cfg.get("setups") or {})
    }


def _setup_entry(encoder_cfg: Mapping, setup: str) -> Mapping:
    setups = encoder_cfg.get("setups", {})
    if setup not in setups:
        raise SaladError(f"encoder.setups: unknown setup {setup!r}; configured: {', '.join(setups)}")
    return setups[setup] or {}


def resolve_setup(encoder_cfg: Mapping, setup: str, sample_groups: Mapping[str, int]) -> dict:
    """The self-contained training settings of `setup`.

    sample_groups: {sample: process group} of the run's configured samples (process table).
    Returns DEFAULTS <- encoder.defaults <- encoder.setups[setup], without `seeds`, plus
    `setup` and `train_samples` {sample: group}. Raises SaladError naming a bad key.
    """
    cfg = copy.deepcopy(DEFAULTS)
    for layer in (encoder_cfg.get("defaults") or {}, _setup_entry(encoder_cfg, setup)):
        for key, value in layer.items():
            if key == "seeds":
                continue
            if key not in DEFAULTS:
                raise SaladError(f"encoder.setups.{setup}: unknown setting {key!r}")
            cfg[key] = copy.deepcopy(value)
    where = f"encoder.setups.{setup}"
    if cfg["model"] not in MODELS:
        raise SaladError(f"{where}.model: {cfg['model']!r} is not one of {', '.join(MODELS)}")
    if cfg["loss"] not in LOSSES:
        raise SaladError(f"{where}.loss: {cfg['loss']!r} is not one of {', '.join(LOSSES)}")
    unknown = sorted(set(cfg["augmentations"]) - set(AUGMENTATION_NAMES))
    if unknown:
        raise SaladError(f"{where}.augmentations: unknown {unknown}; known: {', '.join(AUGMENTATION_NAMES)}")
    for key, allowed in CHOICES.items():
        if cfg[key] not in allowed:
            raise SaladError(f"{where}.{key}: {cfg[key]!r} is not one of {', '.join(allowed)}")
    if cfg["positives"] == "labels" and cfg["loss"] != "vicreg_ce":
        raise SaladError(
            f"{where}.positives: 'labels' applies to loss vicreg_ce "
            "(simclr_supervised and supcon already use the labels)"
        )
    two_views = cfg["loss"] in TWO_VIEW_LOSSES and not (
        cfg["loss"] == "vicreg_ce" and cfg["positives"] == "labels"
    )
    if two_views and not cfg["augmentations"]:
        raise SaladError(
            f"{where}.augmentations: loss {cfg['loss']!r} compares two augmented "
            "views and needs at least one augmentation"
        )
    for name in cfg["holdout_samples"]:
        if name not in sample_groups:
            raise SaladError(
                f"{where}.holdout_samples: {name!r} is not a configured sample "
                f"(samples: {', '.join(sample_groups)})"
            )
    groups = set(sample_groups.values())
    for group in cfg["holdout_groups"]:
        if group not in groups:
            raise SaladError(f"{where}.holdout_groups: no configured sample has group {group}")
    train = {
        s: int(g)
        for s, g in sample_groups.items()
        if s not in cfg["holdout_samples"] and g not in cfg["holdout_groups"] and (cfg["signals"] or g >= 0)
    }
    if len(set(train.values())) < 2:
        raise SaladError(
            f"{where}: training needs at least two process groups, got {sorted(set(train.values()))}"
        )
    if cfg["width"] % cfg["heads"]:
        raise SaladError(f"{where}.width: {cfg['width']} is not divisible by heads={cfg['heads']}")
    cfg["setup"] = setup
    cfg["train_samples"] = train
    return cfg


def held_out(resolved: Mapping | None, signal: str) -> bool:
    """Whether `signal` was excluded from the training of a resolved setup (resolve_setup):
    IP holds out its sample, EP its model group, background-only every signal; ID none.
    None (not an encoder, e.g. a baseline_* representation): nothing was trained on signals."""
    return resolved is None or signal not in resolved["train_samples"]
