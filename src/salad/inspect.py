"""`python -m salad inspect FILE...`: show an artifact's provenance and shape.

Parquet artifacts: rows, provenance JSON, column types. Torch checkpoints (`.pt`, loaded
weights-only: a file that would run code is refused): provenance JSON and every top-level key
with its type (tensors: shape and dtype; state dicts: tensor and parameter counts)."""

from __future__ import annotations

import argparse
import json

import pyarrow.parquet as pq

from .artifacts import load_checkpoint, parquet_file, read_provenance


def _summary(value) -> str:
    import torch

    if isinstance(value, torch.Tensor):
        return f"tensor {tuple(value.shape)} {str(value.dtype).replace('torch.', '')}"
    if isinstance(value, dict):
        tensors = [v for v in value.values() if isinstance(v, torch.Tensor)]
        if tensors and len(tensors) == len(value):
            return f"state dict, {len(tensors)} tensors, {sum(t.numel() for t in tensors)} values"
        return f"dict, keys {', '.join(map(str, list(value)[:8]))}{' ...' if len(value) > 8 else ''}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of {len(value)}"
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def describe_checkpoint(path: str) -> str:
    """Human-readable summary of a checkpoint: provenance JSON and its top-level keys."""
    ckpt = load_checkpoint(path)
    lines = [
        f"{path}",
        "  kind: torch checkpoint (weights-only)",
        "  provenance: " + json.dumps(ckpt.get("provenance", {}), sort_keys=True, default=str),
    ]
    lines += [f"  key {k}: {_summary(v)}" for k, v in ckpt.items() if k != "provenance"]
    return "\n".join(lines)


def describe(path: str) -> str:
    """Human-readable summary: provenance JSON, row count, column names and types."""
    if str(path).endswith(".pt"):
        return describe_checkpoint(path)
    pf: pq.ParquetFile = parquet_file(path)
    lines = [
        f"{path}",
        f"  rows: {pf.metadata.num_rows}",
        "  provenance: " + json.dumps(read_provenance(path), sort_keys=True),
    ]
    lines += [f"  column {f.name}: {f.type}" for f in pf.schema_arrow]
    return "\n".join(lines)


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="salad inspect", description=__doc__)
    parser.add_argument("files", nargs="+")
    for path in parser.parse_args(argv).files:
        print(describe(path))
