"""Encoder inputs: reading preselected events, normalisation, class-balanced batches.

Inputs per event (photon four-momenta and m_yy never enter):
  objects (11, 12): pt [GeV], eta, phi, mass [GeV], btag, tau32, tau43, one-hot(5);
  event (2): dr_yy, pt_yy [GeV].
Normalisation: log1p of pt and mass (object pt, mass; event pt_yy), then standardisation;
object statistics pooled over all real objects (one-hot not all zero), event statistics per
feature over events, both from the training split. One-hot columns stay 0/1 and padding
rows stay all zero. Normalised tensors are computed once and batches are index gathers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..artifacts import list_column_to_array, read_parquet
from ..contracts import (
    ETA,
    MASS,
    N_FEATURES,
    N_OBJECTS,
    ONEHOT,
    ONEHOT_COLUMN,
    PHI,
    PRESELECTED,
    PT,
    join_subsets,
    sample_code,
)
from ..errors import SaladError

CONTINUOUS = list(range(7))  # pt, eta, phi, mass, btag, tau32, tau43
LOG_OBJECT = [0, 3]  # pt, mass -> log1p
KINEMATICS = [PT, ETA, PHI, MASS]  # (pT, eta, phi, m): the four-momentum columns
IS_MET = ONEHOT_COLUMN["met"]  # one-hot column of the missing-E_T object (eta = m = 0)
EVENT_COLUMNS = ["dr_yy", "pt_yy"]
LOG_EVENT = [1]  # pt_yy -> log1p
PRESELECTED_COLUMNS = PRESELECTED.kinds("event_id", "sample", "group", "dr_yy", "pt_yy", "objects")


@dataclass
class RawEvents:
    """Events as read: objects (N, 11, 12) float32, event (N, 2) float32, ids, groups, subset."""

    objects: np.ndarray
    event: np.ndarray
    event_id: np.ndarray
    group: np.ndarray
    subset: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.event_id)

    def take(self, keep: np.ndarray) -> RawEvents:
        return RawEvents(
            self.objects[keep],
            self.event[keep],
            self.event_id[keep],
            self.group[keep],
            None if self.subset is None else self.subset[keep],
        )


def read_preselected(path: str | Path) -> tuple[pd.DataFrame, np.ndarray]:
    """A preselected Parquet file: (frame without `objects`, objects (N, 11, 12) float32)."""
    frame = read_parquet(path, PRESELECTED_COLUMNS)
    objects = list_column_to_array(path, frame["objects"], (N_OBJECTS, N_FEATURES))
    return frame.drop(columns="objects"), objects


def load_events(
    preselected: Sequence[str | Path],
    split: Sequence[str | Path] | None = None,
    sample_groups: Mapping[str, int] | None = None,
) -> RawEvents:
    """Read and concatenate samples; with `split`, attach each event's subset.

    preselected[i] and split[i] must be the same sample's files. sample_groups, if given,
    is checked against the files' `sample`/`group` columns.
    """
    if split is not None and len(split) != len(preselected):
        raise SaladError(f"--split: {len(split)} file(s) for {len(preselected)} preselected file(s)")
    parts = []
    for i, path in enumerate(preselected):
        frame, objects = read_preselected(path)
        if sample_groups is not None:
            names = set(frame["sample"].unique())
            unknown = names - set(sample_groups)
            if unknown:
                raise SaladError(
                    f"{path}: sample(s) {sorted(unknown)} not in this setup's "
                    f"training samples {sorted(sample_groups)}"
                )
            expected = frame["sample"].map(sample_groups).to_numpy()
            if (expected != frame["group"].to_numpy()).any():
                raise SaladError(f"{path}: column 'group' disagrees with the process table")
        subset = None
        if split is not None:
            if Path(split[i]).name != Path(path).name:
                raise SaladError(f"{split[i]}: does not match preselected file {path}")
            subset = join_subsets(frame[["event_id"]], [split[i]], [path])["subset"]
            subset = subset.to_numpy().astype(str)
        event = frame[EVENT_COLUMNS].to_numpy(np.float32)
        parts.append(
            RawEvents(
                objects,
                event,
                frame["event_id"].to_numpy(np.int64),
                frame["group"].to_numpy(np.int64),
                subset,
            )
        )
    if not parts:
        raise SaladError("no input files")
    return concat_events(parts)


def concat_events(parts: Sequence[RawEvents]) -> RawEvents:
    """Events of several samples in one RawEvents (subset kept only if every part has one);
    event ids must stay unique."""
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    with_subset = all(p.subset is not None for p in parts)
    events = RawEvents(
        cat("objects"), cat("event"), cat("event_id"), cat("group"), cat("subset") if with_subset else None
    )
    if len(np.unique(events.event_id)) != len(events.event_id):
        raise SaladError("input files: event_id is not unique over samples")
    return events


def cap_per_sample(events: RawEvents, cap: int | None, seed: int) -> RawEvents:
    """Keep at most `cap` events per sample (sample = event_id // 1e9), seeded random choice."""
    if cap is None:
        return events
    rng = np.random.default_rng([seed, 7])
    code = sample_code(events.event_id)
    keep = np.zeros(len(code), bool)
    for c in np.unique(code):
        idx = np.flatnonzero(code == c)
        keep[idx if len(idx) <= cap else rng.choice(idx, cap, replace=False)] = True
    return events.take(keep)


def padding_mask(objects: np.ndarray | torch.Tensor):
    """True where an object is real (one-hot not all zero); shape (N, 11)."""
    return (objects[..., ONEHOT] != 0).any(-1)


def raw_kinematics(obj: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(pT, eta, phi, m) (B, N, 4), GeV, of normalised objects (B, N, 12): the inverse of
    Normaliser.apply on the KINEMATICS columns, with `mean`, `std` (4,) their statistics.
    pT, m are clamped at 0 and the MET object gets eta = m = 0 (whatever an augmentation did);
    padding rows come out as arbitrary finite values (mask them)."""
    x = obj[..., KINEMATICS] * std + mean
    met = obj[..., IS_MET] > 0.5
    zero = torch.zeros_like(x[..., 0])
    return torch.stack(
        [
            torch.expm1(x[..., 0]).clamp_min(0.0),
            torch.where(met, zero, x[..., 1]),
            x[..., 2],
            torch.where(met, zero, torch.expm1(x[..., 3]).clamp_min(0.0)),
        ],
        -1,
    )


class Normaliser:
    """log1p + standardisation of object and event features (statistics from training events)."""

    def __init__(self, obj_mean, obj_std, evt_mean, evt_std):
        self.obj_mean = np.asarray(obj_mean, np.float32)  # (7,)
        self.obj_std = np.asarray(obj_std, np.float32)
        self.evt_mean = np.asarray(evt_mean, np.float32)  # (2,)
        self.evt_std = np.asarray(evt_std, np.float32)

    @staticmethod
    def _log(objects: np.ndarray, event: np.ndarray):
        obj = objects[..., CONTINUOUS].astype(np.float64)
        obj[..., LOG_OBJECT] = np.log1p(np.maximum(obj[..., LOG_OBJECT], 0.0))
        evt = event.astype(np.float64)
        evt[:, LOG_EVENT] = np.log1p(np.maximum(evt[:, LOG_EVENT], 0.0))
        return obj, evt

    @classmethod
    def fit(cls, objects: np.ndarray, event: np.ndarray) -> Normaliser:
        """Statistics over all real objects (objects) and per event feature (event)."""
        obj, evt = cls._log(objects, event)
        real = obj[padding_mask(objects)]
        if len(real) == 0 or len(evt) == 0:
            raise SaladError("training events: no real objects to compute normalisation from")
        floor = lambda s: np.where(s > 1e-6, s, 1.0)  # noqa: E731  constant features stay as is
        return cls(real.mean(0), floor(real.std(0)), evt.mean(0), floor(evt.std(0)))

    def apply(self, objects: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised copies: objects (N, 11, 12), event (N, 2), float32; padding rows zero."""
        obj, evt = self._log(objects, event)
        out = np.zeros(objects.shape, np.float32)
        out[..., CONTINUOUS] = (obj - self.obj_mean) / self.obj_std
        out[..., ONEHOT] = objects[..., ONEHOT]
        out[~padding_mask(objects)] = 0.0
        return out, ((evt - self.evt_mean) / self.evt_std).astype(np.float32)

    def state_dict(self) -> dict:
        return {k: torch.tensor(getattr(self, k)) for k in ("obj_mean", "obj_std", "evt_mean", "evt_std")}

    @classmethod
    def from_state_dict(cls, state: Mapping) -> Normaliser:
        return cls(*(np.asarray(state[k]) for k in ("obj_mean", "obj_std", "evt_mean", "evt_std")))


@dataclass
class EventTensors:
    """Normalised tensors: obj (N, 11, 12), evt (N, 2), mask (N, 11) bool (True = real), label (N,)."""

    obj: torch.Tensor
    evt: torch.Tensor
    mask: torch.Tensor
    label: torch.Tensor

    def __len__(self) -> int:
        return len(self.label)

    def batch(self, idx) -> EventTensors:
        idx = torch.as_tensor(idx)
        return EventTensors(self.obj[idx], self.evt[idx], self.mask[idx], self.label[idx])

    def to(self, device) -> EventTensors:
        return EventTensors(*(t.to(device) for t in (self.obj, self.evt, self.mask, self.label)))


def to_tensors(events: RawEvents, norm: Normaliser, labels: np.ndarray | None = None) -> EventTensors:
    """Normalise once and convert to torch tensors."""
    obj, evt = norm.apply(events.objects, events.event)
    lab = np.zeros(len(obj), np.int64) if labels is None else labels
    return EventTensors(
        torch.from_numpy(obj),
        torch.from_numpy(evt),
        torch.from_numpy(padding_mask(events.objects)),
        torch.from_numpy(lab),
    )


class BalancedSampler:
    """Class-balanced batches: each batch holds batch_size // n_classes events of every class.

    Each class is drawn without replacement from a cycle of fresh permutations (repeats only
    once a class is exhausted). Batches of epoch e depend only on (seed, e), so a resumed run
    sees the same batches as an uninterrupted one. Batches per epoch: max(1, N // batch_size).
    """

    def __init__(self, labels: np.ndarray, batch_size: int, seed: int):
        self.classes = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        self.per_class = max(1, batch_size // len(self.classes))
        self.n_batches = max(1, len(labels) // batch_size)
        self.seed = seed

    def epoch(self, epoch: int) -> list[np.ndarray]:
        """Index arrays (into labels) of the batches of `epoch`."""
        rng = np.random.default_rng([self.seed, epoch])
        need = self.n_batches * self.per_class
        draws = []
        for idx in self.classes:
            cycles = -(-need // len(idx))
            draws.append(
                np.concatenate([rng.permutation(idx) for _ in range(cycles)])[:need].reshape(
                    self.n_batches, self.per_class
                )
            )
        batches = np.concatenate(draws, axis=1)
        return [rng.permutation(b) for b in batches]
