"""CATHODE in the contrastive latent space (paper A, section III.B).

Stages (each a module with `cli(argv)`):
- `flow`      fit_flow:  conditional normalizing flow p(z | m_yy) on sideband data.
- `template`  sample_sr: background template in the SR (flow samples + simulated SM Higgs).
- `classify`  classify:  k-fold CWoLa LightGBM (SR data vs template) + references.
- `evaluate`  evaluate:  SIC, significance, 3 sigma injection, sculpting check, tables.
Shared helpers (latent columns, regions, seeds, dataset joins) live here.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts import read_parquet
from ..contracts import REFERENCE_SUBSETS, in_signal_region, read_split_sample, select_subsets
from ..errors import SaladError

LOG = logging.getLogger("salad.cathode")
_Z_RE = re.compile(r"^z(\d+)$")
PSEUDODATA_COLUMNS = {"event_id": "int", "myy": "float", "is_signal": "bool", "group": "int"}


def stable_seed(base: int, *keys) -> int:
    """Deterministic 31-bit seed from a config seed and wildcard values (not Python's hash)."""
    text = "/".join(str(k) for k in (base, *keys))
    return zlib.crc32(text.encode()) & 0x7FFFFFFF


def latent_columns(frame: pd.DataFrame, source="embeddings") -> list[str]:
    """The latent columns z0..z{d-1} of `frame`, in index order; error if absent or gapped."""
    idx = sorted(int(m.group(1)) for c in frame.columns if (m := _Z_RE.match(str(c))))
    if not idx or idx != list(range(len(idx))):
        raise SaladError(f"{source}: expected latent columns z0..z{{d-1}}, found {idx or 'none'}")
    return [f"z{i}" for i in idx]


def read_embeddings(path) -> pd.DataFrame:
    """Embeddings artifact: event_id + float latent columns (checked, finite)."""
    read_parquet(path, {"event_id": "int"})  # existence, readability, id column
    cols = latent_columns(pd.DataFrame(columns=_parquet_names(path)), str(path))
    frame = read_parquet(path, {"event_id": "int", **{c: "float" for c in cols}})
    if frame["event_id"].duplicated().any():
        raise SaladError(f"{path}: duplicate event_id values")
    return frame


TEMPLATE_COLUMNS = {"myy": "float", "weight": "float", "source": "str"}


def read_template(path, columns) -> pd.DataFrame:
    """sample_sr artifact: `columns` (latent, float) + myy [GeV], weight, source (checked)."""
    return read_parquet(path, {**TEMPLATE_COLUMNS, **{c: "float" for c in columns}})


def _parquet_names(path) -> list[str]:
    import pyarrow.parquet as pq
    return pq.ParquetFile(path).schema_arrow.names


def attach_latent(events: pd.DataFrame, emb: pd.DataFrame, source: str) -> pd.DataFrame:
    """Inner join of `events` with latent rows by event_id; every event must be embedded."""
    merged = events.merge(emb, on="event_id", how="left", validate="one_to_one")
    cols = latent_columns(emb)
    missing = merged[cols[0]].isna()
    if missing.any():
        raise SaladError(f"{source}: {int(missing.sum())} event(s) have no embedding "
                         f"(e.g. event_id {int(merged.loc[missing, 'event_id'].iloc[0])})")
    return merged


def read_dataset(pseudodata_path, emb: pd.DataFrame) -> pd.DataFrame:
    """Pseudo-data events with their latent: event_id, myy, is_signal, group, z0.. ."""
    data = read_parquet(pseudodata_path, PSEUDODATA_COLUMNS)
    if data["event_id"].duplicated().any():
        raise SaladError(f"{pseudodata_path}: an event appears more than once")
    return attach_latent(data, emb, str(pseudodata_path))


def region_masks(myy: np.ndarray, signal_region: Sequence[float],
                 window: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (SR, SB) for masses in GeV: SR = [lo, hi), SB = rest of the window."""
    lo, hi = signal_region
    wlo, whi = window
    if not (wlo < lo < hi < whi):
        raise SaladError(f"regions.signal_region: {list(signal_region)} must lie inside "
                         f"preselect.myy_range {list(window)}")
    myy = np.asarray(myy)
    sr = in_signal_region(myy, signal_region)
    sb = (myy >= wlo) & (myy <= whi) & ~sr
    return sr, sb


def simulation_events(presel_path, split_path, subsets: Sequence[str]) -> pd.DataFrame:
    """Simulation events of one sample in `subsets` (encoder half or the `ref` share of an
    evaluation-only sample; never pseudo-data or evaluation events): event_id, sample, group, weight, myy,
    plus `subset_fraction` = (sum of weights in `subsets`) / (sum of weights of the sample),
    so that weight / subset_fraction is the expected yield per fb^-1 of the chosen events."""
    bad = set(subsets) - set(REFERENCE_SUBSETS)
    if bad:
        raise SaladError(f"simulation subsets {sorted(bad)}: only {'/'.join(REFERENCE_SUBSETS)} "
                         "(encoder half, reference share) allowed")
    chosen = select_subsets(read_split_sample(presel_path, split_path), subsets, str(presel_path))
    if "sample" not in chosen:
        chosen["sample"] = str(presel_path)
    return chosen.drop(columns=["subset"]).reset_index(drop=True)


def setup_logging(log_path: str | None) -> None:
    """Log to stderr and, if given, to `log_path` (Snakemake's log: file)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(name)s %(message)s")


def base_parser(description: str) -> argparse.ArgumentParser:
    """Argument parser with the options every cathode stage takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default="", help="JSON config subsections (from the rule)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log", default=None, help="log file")
    return parser
