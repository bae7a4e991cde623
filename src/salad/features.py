"""Feature helpers (a library layer, no stage): the one standardiser, and observables of the
11x12 object tensor (layout in salad.contracts) used by the baselines and the paper-B checks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .contracts import BTAG, ETA, MASS, ONEHOT_COLUMN, PHI, PT
from .errors import SaladError

LEADING_ORDER = [
    ("met", 0),
    ("jet", 0),
    ("electron", 0),
    ("muon", 0),
    ("fatjet", 0),
    ("jet", 1),
    ("electron", 1),
    ("muon", 1),
    ("fatjet", 1),
    ("jet", 2),
    ("jet", 3),
]
REF22_FEATURES = ["met", "ht", "n_jets", "n_bjets", "n_leptons", "pt_j1", "pt_j2", "pt_l1", "m_jj"]


@dataclass
class Standardiser:
    """Per-dimension (x - mean) / std; a std at or below `min_std` at fit time becomes 1
    (constant columns pass through centred). mean, std: float arrays [d]."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, min_std: float = 1e-12) -> Standardiser:
        """Mean and (population, ddof 0) std of the rows of x (n, d)."""
        std = x.std(axis=0)
        return cls(x.mean(axis=0), np.where(std > min_std, std, 1.0))

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std

    def inverse(self, u: np.ndarray) -> np.ndarray:
        return u * self.std + self.mean


def sorted_pt(objects: np.ndarray, kind: str) -> np.ndarray:
    """pT [GeV] of objects of one type, descending, padded with 0: (n, 11)."""
    mask = objects[:, :, ONEHOT_COLUMN[kind]] > 0.5
    pt = np.where(mask, objects[:, :, PT], 0.0)
    return -np.sort(-pt, axis=1)


def source_features(objects: np.ndarray, hl: np.ndarray) -> np.ndarray:
    """Flattened object tensor + (dR_yy, pT_yy): (n, 134)."""
    return np.concatenate([objects.reshape(len(objects), -1), hl], axis=1)


def leading_features(objects: np.ndarray, dim: int) -> np.ndarray:
    """pT [GeV] of the first `dim` entries of LEADING_ORDER: (n, dim)."""
    if not 1 <= dim <= len(LEADING_ORDER):
        raise SaladError(f"baselines.leading_dim: must be 1..{len(LEADING_ORDER)}, got {dim}")
    cache = {kind: sorted_pt(objects, kind) for kind in {k for k, _ in LEADING_ORDER[:dim]}}
    return np.stack([cache[kind][:, rank] for kind, rank in LEADING_ORDER[:dim]], axis=1)


def ref22_features(objects: np.ndarray) -> np.ndarray:
    """The nine REF22_FEATURES: (n, 9); GeV for pT, H_T, MET, m_jj; counts for N_*."""
    is_jet = objects[:, :, ONEHOT_COLUMN["jet"]] > 0.5
    is_lep = (objects[:, :, ONEHOT_COLUMN["electron"]] > 0.5) | (objects[:, :, ONEHOT_COLUMN["muon"]] > 0.5)
    pt = objects[:, :, PT]
    jets = sorted_pt(objects, "jet")
    lead_lep = np.where(is_lep, pt, 0.0).max(axis=1)
    met = np.where(objects[:, :, ONEHOT_COLUMN["met"]] > 0.5, pt, 0.0).sum(axis=1)
    # m_jj of the two leading jets (jets are pT ordered within their type)
    n = len(objects)
    jet_rows = np.argsort(~is_jet, axis=1, kind="stable")[:, :2]
    j = objects[np.arange(n)[:, None], jet_rows]  # (n, 2, 12)
    px, py = j[..., PT] * np.cos(j[..., PHI]), j[..., PT] * np.sin(j[..., PHI])
    pz = j[..., PT] * np.sinh(j[..., ETA])
    e = np.sqrt(px**2 + py**2 + pz**2 + j[..., MASS] ** 2)
    m2 = e.sum(1) ** 2 - px.sum(1) ** 2 - py.sum(1) ** 2 - pz.sum(1) ** 2
    two = is_jet.sum(axis=1) >= 2
    mjj = np.where(two, np.sqrt(np.clip(m2, 0.0, None)), 0.0)
    return np.stack(
        [
            met,
            np.where(is_jet, pt, 0).sum(1),
            is_jet.sum(1),
            (is_jet & (objects[:, :, BTAG] > 0.5)).sum(1),
            is_lep.sum(1),
            jets[:, 0],
            jets[:, 1],
            lead_lep,
            mjj,
        ],
        axis=1,
    ).astype(np.float64)
