"""Augmentations of normalised batches for two-view objectives (paper B, section V.B).

Each takes (obj (B, 11, 12), evt (B, 2), mask (B, 11), norm, strength, generator) and returns
new (obj, evt, mask); config `augmentations: {name: strength}` applies them in this order:
  mask        zero each continuous feature of real objects and events with probability p
              (zero = training mean after standardisation; one-hot kept)  [paper B's best]
  drop_object drop each real object (row set to padding) with probability p
  rotate      rotate every object's phi by one uniform angle per event (strength: apply prob.)
  flip_eta    eta -> -eta for the whole event with probability p
  smear_pt    pT -> pT * exp(sigma * N(0, 1)) per object (strength: sigma)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch

from .data import CONTINUOUS, ETA, PHI, PT, Normaliser
from .setups import AUGMENTATION_NAMES


class NormStats:
    """Normalisation constants as tensors, to undo/redo standardisation of single features."""

    def __init__(self, norm: Normaliser, device):
        self.mean = torch.as_tensor(norm.obj_mean, device=device)
        self.std = torch.as_tensor(norm.obj_std, device=device)

    def raw(self, obj, f):
        return obj[..., f] * self.std[f] + self.mean[f]

    def set(self, obj, f, raw, mask):
        obj[..., f] = torch.where(mask, (raw - self.mean[f]) / self.std[f], obj[..., f])


def _u(shape, obj, g):
    return torch.rand(shape, generator=g, device=obj.device)


def mask_features(obj, evt, mask, stats, p, g):
    drop = _u(obj.shape[:2] + (len(CONTINUOUS),), obj, g) < p
    obj = obj.clone()
    obj[..., CONTINUOUS] = obj[..., CONTINUOUS].masked_fill(drop, 0.0)
    return obj, evt.masked_fill(_u(evt.shape, obj, g) < p, 0.0), mask


def drop_objects(obj, evt, mask, stats, p, g):
    mask = mask & ~(_u(mask.shape, obj, g) < p)
    return obj * mask[..., None], evt, mask


def rotate_phi(obj, evt, mask, stats, p, g):
    angle = (_u((len(obj), 1), obj, g) * 2 - 1) * math.pi * (_u((len(obj), 1), obj, g) < p)
    phi = torch.remainder(stats.raw(obj, PHI) + angle + math.pi, 2 * math.pi) - math.pi
    obj = obj.clone()
    stats.set(obj, PHI, phi, mask)
    return obj, evt, mask


def flip_eta(obj, evt, mask, stats, p, g):
    sign = torch.where(_u((len(obj), 1), obj, g) < p, -1.0, 1.0)
    obj = obj.clone()
    stats.set(obj, ETA, stats.raw(obj, ETA) * sign, mask)
    return obj, evt, mask


def smear_pt(obj, evt, mask, stats, sigma, g):
    noise = torch.randn(mask.shape, generator=g, device=obj.device)
    pt = torch.expm1(stats.raw(obj, PT)).clamp_min(0.0) * torch.exp(sigma * noise)
    obj = obj.clone()
    stats.set(obj, PT, torch.log1p(pt), mask)
    return obj, evt, mask


AUGMENTATIONS: dict[str, Callable] = {
    "mask": mask_features,
    "drop_object": drop_objects,
    "rotate": rotate_phi,
    "flip_eta": flip_eta,
    "smear_pt": smear_pt,
}


assert tuple(AUGMENTATIONS) == AUGMENTATION_NAMES


class Augmenter:
    """Applies the configured augmentations in AUGMENTATIONS order."""

    def __init__(self, spec: Mapping[str, float], norm: Normaliser, device):
        self.steps = [(AUGMENTATIONS[name], float(spec[name])) for name in AUGMENTATIONS if name in spec]
        self.stats = NormStats(norm, device)

    def __bool__(self) -> bool:
        return bool(self.steps)

    def __call__(self, obj, evt, mask, generator: torch.Generator):
        for fn, strength in self.steps:
            obj, evt, mask = fn(obj, evt, mask, self.stats, strength, generator)
        return obj, evt, mask
