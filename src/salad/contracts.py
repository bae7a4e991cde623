"""Shared meanings of `results/` artifacts that several stages read (one owner each).

- `SUBSETS`: values of `subset` in results/split/{sample}.parquet. Encoder half: train, val,
  test; pseudo-data half: data; `eval`: the truth-labelled evaluation set (salad.evalset),
  never pseudo-data, encoder training or reference training; `ref`: the part of an
  evaluation-only sample that trains the idealized / supervised references.
- `ENCODER_SUBSETS`: the encoder half.
- `in_signal_region`: the SR rule, m_yy in [lo, hi) GeV.
- `EVALUATION_SET_COLUMNS` / `read_evaluation_set`: results/evaluation/set.parquet
  (written by salad.evalset, read by the CATHODE evaluation).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .artifacts import read_parquet
from .errors import SaladError

SUBSETS = ("train", "val", "test", "data", "eval", "ref")
ENCODER_SUBSETS = SUBSETS[:3]
REFERENCE_SUBSETS = ("train", "val", "test", "ref")


def in_signal_region(myy, signal_region: Sequence[float]) -> np.ndarray:
    """Boolean mask: m_yy [GeV] in the signal region [lo, hi)."""
    lo, hi = signal_region
    myy = np.asarray(myy)
    return (myy >= lo) & (myy < hi)


EVALUATION_SET_COLUMNS = {"event_id": "int", "sample": "str", "group": "int", "is_signal": "bool",
                          "myy": "float", "weight": "float"}


def read_evaluation_set(path) -> pd.DataFrame:
    """The evaluation set: SR events with event_id, sample, group, is_signal, myy [GeV] and
    weight [expected events per fb^-1 the event stands for]; checked against the contract."""
    frame = read_parquet(path, EVALUATION_SET_COLUMNS)
    if frame["event_id"].duplicated().any():
        raise SaladError(f"{path}: duplicate event_id values")
    return frame


PRESELECTED_COLUMNS = {"event_id": "int", "group": "int", "weight": "float", "myy": "float"}


def read_split_sample(preselected, split) -> pd.DataFrame:
    """One sample's preselected events (event_id, group, weight [events per fb^-1], myy [GeV],
    sample if stored) joined with their split `subset`; every event must have one."""
    events = read_parquet(preselected, PRESELECTED_COLUMNS)
    import pyarrow.parquet as pq
    if "sample" in pq.ParquetFile(preselected).schema_arrow.names:
        events["sample"] = read_parquet(preselected, {"sample": "str"})["sample"].astype(str)
    subsets = read_parquet(split, {"event_id": "int", "subset": "str"})
    bad = set(subsets["subset"].astype(str)) - set(SUBSETS)
    if bad:
        raise SaladError(f"{split}: unknown subset value(s) {sorted(bad)}")
    merged = events.merge(subsets, on="event_id", how="left", validate="one_to_one")
    if merged["subset"].isna().any():
        raise SaladError(f"{split}: {int(merged['subset'].isna().sum())} preselected event(s) "
                         f"of {preselected} have no subset; re-run the split")
    merged["subset"] = merged["subset"].astype(str)
    return merged


def select_subsets(frame: pd.DataFrame, subsets: Sequence[str], source: str) -> pd.DataFrame:
    """Rows of `frame` (read_split_sample) in `subsets`, with `subset_fraction` = (sum of their
    weights) / (sum of all weights): weight / subset_fraction is then the expected yield per
    fb^-1 that each chosen event stands for."""
    total = frame["weight"].sum()
    chosen = frame[frame["subset"].isin(list(subsets))].copy()
    if total <= 0 or chosen.empty or chosen["weight"].sum() <= 0:
        raise SaladError(f"{source}: no weighted events in subset(s) {list(subsets)}")
    chosen["subset_fraction"] = chosen["weight"].sum() / total
    return chosen
