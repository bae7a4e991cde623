"""Small helpers every stage's command line uses (the bottom layer, next to contracts):
argument parser, logging, torch device, seed derivation, Markdown tables.

Figures are saved atomically by `salad.plotstyle.save` (PNG + PDF), the one figure writer.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .artifacts import atomic_output

LOG_FORMAT = "%(asctime)s %(name)s %(message)s"


def stage_parser(description: str, prog: str | None = None) -> argparse.ArgumentParser:
    """Argument parser with the options every stage run by a rule takes: --config (JSON
    config subsections from the rule), --threads, --log (Snakemake's log file)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", default="", help="JSON config subsections (from the rule)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log", default=None, help="log file")
    return parser


def add_sample_pairs(parser: argparse.ArgumentParser, flag: str, help: str, repeat: bool = True) -> None:
    """`flag PRESELECTED SPLIT`: a simulated sample as its preselected and split Parquet files
    (repeatable: a list of pairs, default [])."""
    extra = {"action": "append", "default": []} if repeat else {}
    parser.add_argument(flag, nargs=2, metavar=("PRESELECTED", "SPLIT"), help=help, **extra)


def parse_stage_args(parser: argparse.ArgumentParser, argv) -> tuple[argparse.Namespace, dict]:
    """(arguments, decoded --config) of a stage_parser command line; logging set up (--log)."""
    from .config import parse_stage_config

    args = parser.parse_args(argv)
    setup_logging(args.log)
    return args, parse_stage_config(args.config)


def setup_logging(path: str | Path | None = None, append: bool = False) -> None:
    """INFO log lines to stderr and, if given, to `path` (Snakemake's log: file; `append` keeps
    the history of a resumed job)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="a" if append else "w"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True, format=LOG_FORMAT)


def pick_device(device: str | None = None):
    """torch device: `device`, else cuda if available, else cpu."""
    import torch

    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def stable_seed(*parts) -> int:
    """Deterministic 31-bit seed from a config seed and wildcard values: crc32 of their text
    joined by '/' (not Python's hash(), so equal in every process)."""
    return zlib.crc32("/".join(map(str, parts)).encode()) & 0x7FFFFFFF


def derive_seed(*parts) -> int:
    """Deterministic 63-bit seed from any parts (sha256 of their repr; the encoder's streams,
    kept as they are so trained encoders do not change)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def hash_uniform(event_ids, *keys: int) -> np.ndarray:
    """Deterministic uniform [0, 1) float64 per event id, a different stream for each `keys`."""
    state = np.zeros(1, np.uint64)
    for key in keys:
        state = _mix(state ^ np.uint64(int(key) & 0xFFFFFFFFFFFFFFFF))
    x = _mix(np.asarray(event_ids, dtype=np.int64).view(np.uint64) ^ state)
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53


def write_markdown(frames: Mapping[str, pd.DataFrame], path: str) -> None:
    """Tables as Markdown sections (plain text, no extra dependency), written atomically."""
    lines = []
    for title, frame in frames.items():
        lines += [
            f"## {title}",
            "",
            "| " + " | ".join(map(str, frame.columns)) + " |",
            "|" + "---|" * len(frame.columns),
        ]
        for row in frame.itertuples(index=False):
            cells = (f"{v:.4g}" if isinstance(v, float) else str(v) for v in row)
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(lines))
