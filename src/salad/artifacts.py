"""Reading and writing pipeline artifacts: atomic writes, provenance, data contracts.

Every Parquet artifact carries provenance in its schema metadata under the key
``salad.provenance`` (JSON: salad version, stage, SHA-256 of the config subsection it
depends on, code version (git commit + dirty flag, or package version outside git), and a
content hash of every input file the process read); checkpoints carry the same record
under their "provenance" key. Writes go to a temporary file in the same folder and are renamed into
place, so a killed job never leaves a file that looks complete.

Torch checkpoints (`save_checkpoint` / `load_checkpoint`) hold only tensors and plain data
(dicts, lists, str, numbers, None): they load with `torch.load(weights_only=True)`, so a
crafted checkpoint cannot run code; one that tries is refused with a one-line SaladError.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

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
    """Provenance record stored with an artifact (the writers add `code_version` and `inputs`)."""
    return {
        "salad_version": __version__,
        "stage": stage,
        "config_hash": config_hash(config),
        **{k: v for k, v in extra.items()},
    }


# ------------------------------------------------------------------ code version, input hashes
_REPO = Path(__file__).resolve().parents[2]
_CODE_PATHS = ("src", "rules", "Snakefile", "workflow", "envs")
_INPUTS: dict[str, None] = {}  # files read by this process, in order (see note_input)
_HASHES: dict[tuple, str] = {}


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    """{"git_commit", "git_dirty"} of the checkout the library runs from (dirty: tracked code
    files under src/, rules/, Snakefile, workflow/, envs/ differ from the commit), or
    {"package_version"} when it is not a git checkout (or git is not installed)."""
    import subprocess

    def git(*args):
        return subprocess.run(
            ["git", "-C", str(_REPO), *args], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()

    try:
        if not (_REPO / ".git").exists():
            raise FileNotFoundError
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", *_CODE_PATHS))
    except (OSError, subprocess.SubprocessError):
        return {"package_version": __version__}
    return {"git_commit": commit, "git_dirty": dirty}


def note_input(path: str | os.PathLike) -> None:
    """Record `path` as an input of this process; the next artifact written lists its hash.
    The readers (Parquet, ROOT, YAML, checkpoints) call this; `salad.__main__` resets the list
    for every stage it runs (`reset_inputs`)."""
    _INPUTS[str(path)] = None


def reset_inputs() -> None:
    _INPUTS.clear()


def file_hash(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """SHA-256 (hex, first 16 chars) of a file's bytes, read in `block`-byte pieces (memory
    flat whatever the size); cached per (path, size, mtime) within the process."""
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(block):
                digest.update(chunk)
        _HASHES[key] = digest.hexdigest()[:16]
    return _HASHES[key]


def _input_name(path: str) -> str:
    """Path relative to the working directory when inside it, else its last two components
    (so that artifacts do not depend on where a checkout or a test folder lies)."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(Path(*absolute.parts[-2:]))


def input_hashes() -> dict[str, str]:
    """{input name: content hash} of the existing files recorded by note_input."""
    return {_input_name(p): file_hash(p) for p in _INPUTS if os.path.isfile(p)}


def _full_provenance(prov: Mapping) -> dict:
    """`prov` plus the code version and the input hashes (written with every artifact)."""
    return {"code_version": code_version(), "inputs": input_hashes(), **prov}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete `.{name}.tmp<pid>` files next to `path` whose writer process is gone (e.g. a
    job SIGKILLed mid-write); return them. Temporaries of live processes are kept."""
    path = Path(path)
    stale = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.tmp*"):
        pid = tmp.name[len(path.name) + 5 :]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            stale.append(tmp)
    return stale


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only on success.

    Stale temporaries of dead writers of the same path are removed first. An OSError while
    writing (disk full, permission denied, ...) becomes a one-line SaladError naming `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
        raise SaladError(f"{path}: cannot write ({reason})") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def _plain(value):
    """`value` with numpy arrays/scalars turned into lists/Python numbers (tensors kept)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_checkpoint(checkpoint: Mapping, path: str | os.PathLike, prov: dict | None = None) -> None:
    """Write a torch checkpoint atomically as tensors + plain data (loadable weights-only).

    numpy arrays become lists and numpy scalars Python numbers; `prov` (if given) is stored
    under the key "provenance"."""
    import torch

    payload = _plain(checkpoint)
    if prov is not None or "provenance" in payload:
        payload["provenance"] = _full_provenance(prov if prov is not None else payload["provenance"])
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike, what: str = "checkpoint", map_location="cpu") -> dict:
    """Load a checkpoint written by `save_checkpoint` with `torch.load(weights_only=True)`.

    A file that would need code to unpickle (any global other than torch's tensor types) is
    refused before anything in it runs. Raises a one-line SaladError naming the file."""
    import pickle

    import torch

    path = Path(path)
    if not path.exists():
        raise SaladError(f"{path}: file not found")
    note_input(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found:
            raise SaladError(
                f"{path}: refused to load {what}: it would call {found.group(1)} "
                "(a checkpoint may hold only tensors and plain data; it is loaded "
                "weights-only and nothing in it was run)"
            ) from None
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if ln.startswith("Unsupported")), lines[-1] if lines else "")
        raise SaladError(
            f"{path}: not a readable {what} (weights-only unpickler: {detail}; nothing in the file was run)"
        ) from None
    except Exception as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise SaladError(f"{path}: not a readable {what} ({first.strip()})") from None
    if not isinstance(ckpt, dict):
        raise SaladError(
            f"{path}: not a readable {what} (top level is {type(ckpt).__name__}, expected a dict)"
        )
    return ckpt


def write_parquet(frame: pd.DataFrame | pa.Table, path: str | os.PathLike, prov: dict) -> None:
    """Write `frame` to `path` atomically with provenance metadata `prov`."""
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[PROVENANCE_KEY] = json.dumps(_full_provenance(prov), sort_keys=True).encode()
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
    note_input(path)
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise SaladError(f"{path}: not a readable Parquet file ({exc})") from None


def parquet_file(path: str | os.PathLike) -> pq.ParquetFile:
    """An opened Parquet artifact (metadata, schema), checked to exist and be readable."""
    return _open_parquet(path)


def parquet_columns(path: str | os.PathLike) -> list[str]:
    """Column names of a Parquet artifact (schema only; no data read)."""
    return _open_parquet(path).schema_arrow.names


def read_parquet(
    path: str | os.PathLike, columns: Mapping[str, str] | None = None, finite: bool = True
) -> pd.DataFrame:
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
    "str": lambda s: (
        pd.api.types.is_string_dtype(s) or isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object
    ),
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
        flat = (
            np.concatenate(series.to_numpy()).astype(np.float32) if len(series) else np.zeros(0, np.float32)
        )
    except ValueError as exc:
        raise SaladError(f"{path}: column {series.name!r} is not a list column ({exc})") from None
    if flat.size != len(series) * size:
        raise SaladError(f"{path}: column {series.name!r} rows are not all of length {size}")
    if not np.isfinite(flat).all():
        raise SaladError(f"{path}: column {series.name!r} has NaN/inf value(s)")
    return flat.reshape((len(series), *shape))
