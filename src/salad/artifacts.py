"""Reading and writing pipeline artifacts: atomic writes, provenance, data contracts.

Every Parquet artifact carries provenance in its schema metadata under the key
``salad.provenance`` (JSON: salad version, stage, SHA-256 of the config subsection it
depends on). Writes go to a temporary file in the same folder and are renamed into
place, so a killed job never leaves a file that looks complete.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from .errors import SaladError

PROVENANCE_KEY = b"salad.provenance"


def config_hash(config: Mapping | None) -> str:
    """SHA-256 (hex, first 16 chars) of a config subsection in canonical JSON."""
    text = json.dumps(config if config is not None else {}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def provenance(stage: str, config: Mapping | None = None, **extra) -> dict:
    """Provenance record stored with an artifact."""
    return {"salad_version": __version__, "stage": stage, "config_hash": config_hash(config),
            **{k: v for k, v in extra.items()}}


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_parquet(frame: pd.DataFrame | pa.Table, path: str | os.PathLike, prov: dict) -> None:
    """Write `frame` to `path` atomically with provenance metadata `prov`."""
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[PROVENANCE_KEY] = json.dumps(prov, sort_keys=True).encode()
    table = table.replace_schema_metadata(meta)
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp)


def read_provenance(path: str | os.PathLike) -> dict:
    """The provenance record of a Parquet artifact ({} if it has none)."""
    meta = _open_parquet(path).schema_arrow.metadata or {}
    raw = meta.get(PROVENANCE_KEY)
    if not raw:
        return {}
    try:
        record = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise SaladError(f"{path}: provenance metadata is not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise SaladError(f"{path}: provenance metadata is not a JSON object")
    return record


def _open_parquet(path: str | os.PathLike) -> pq.ParquetFile:
    path = Path(path)
    if not path.exists():
        raise SaladError(f"{path}: file not found")
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise SaladError(f"{path}: not a readable Parquet file ({exc})") from None


def read_parquet(path: str | os.PathLike, columns: Mapping[str, str] | None = None,
                 finite: bool = True) -> pd.DataFrame:
    """Read a Parquet artifact and check it against a data contract.

    columns: {name: kind} with kind one of 'int', 'float', 'str', 'bool', 'list' (any
    subset of the file's columns; only these are read). With finite=True, float
    columns must hold no NaN or inf. Raises SaladError naming the file and problem.
    """
    pf = _open_parquet(path)
    all_names = pf.schema_arrow.names
    names = set(all_names)
    if columns:
        missing = [c for c in columns if c not in names]
        if missing:
            raise SaladError(f"{path}: missing column(s) {', '.join(missing)}")
        twice = sorted({c for c in columns if all_names.count(c) > 1})
        if twice:
            raise SaladError(f"{path}: duplicate column name(s) {', '.join(twice)}")
    try:
        frame = pf.read(columns=list(columns) if columns else None).to_pandas()
    except Exception as exc:
        raise SaladError(f"{path}: cannot read Parquet data ({exc})") from None
    for name, kind in (columns or {}).items():
        _check_column(path, name, kind, frame[name], finite)
    return frame


_KIND_CHECK = {
    "int": pd.api.types.is_integer_dtype,
    "float": pd.api.types.is_float_dtype,
    "bool": pd.api.types.is_bool_dtype,
    "str": lambda s: pd.api.types.is_string_dtype(s) or isinstance(s.dtype, pd.CategoricalDtype)
    or s.dtype == object,
    "list": lambda s: s.dtype == object,
}


def _check_column(path, name: str, kind: str, series: pd.Series, finite: bool) -> None:
    if kind not in _KIND_CHECK:
        raise ValueError(f"unknown column kind {kind!r}")
    if not _KIND_CHECK[kind](series):
        raise SaladError(f"{path}: column {name!r} has dtype {series.dtype}, expected {kind}")
    if finite and kind == "float" and len(series) and not np.isfinite(series.to_numpy()).all():
        bad = int((~np.isfinite(series.to_numpy())).sum())
        raise SaladError(f"{path}: column {name!r} has {bad} NaN/inf value(s)")


def list_column_to_array(path, series: pd.Series, shape: tuple[int, ...]) -> np.ndarray:
    """Stack a list-valued column into a float32 array of shape (len(series), *shape)."""
    size = int(np.prod(shape))
    try:
        flat = np.concatenate(series.to_numpy()).astype(np.float32) if len(series) else \
            np.zeros(0, np.float32)
    except ValueError as exc:
        raise SaladError(f"{path}: column {series.name!r} is not a list column ({exc})") from None
    if flat.size != len(series) * size:
        raise SaladError(f"{path}: column {series.name!r} rows are not all of length {size}")
    if not np.isfinite(flat).all():
        raise SaladError(f"{path}: column {series.name!r} has NaN/inf value(s)")
    return flat.reshape((len(series), *shape))
