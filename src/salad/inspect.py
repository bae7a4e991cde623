"""`python -m salad inspect FILE...`: show an artifact's provenance and shape."""
from __future__ import annotations

import argparse
import json

import pyarrow.parquet as pq

from .artifacts import _open_parquet, read_provenance


def describe(path: str) -> str:
    """Human-readable summary: provenance JSON, row count, column names and types."""
    pf: pq.ParquetFile = _open_parquet(path)
    lines = [f"{path}", f"  rows: {pf.metadata.num_rows}",
             "  provenance: " + json.dumps(read_provenance(path), sort_keys=True)]
    lines += [f"  column {f.name}: {f.type}" for f in pf.schema_arrow]
    return "\n".join(lines)


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="salad inspect", description=__doc__)
    parser.add_argument("files", nargs="+")
    for path in parser.parse_args(argv).files:
        print(describe(path))
