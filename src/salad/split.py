"""Encoder half / pseudo-data half split:
results/preselected/{sample}.parquet -> results/split/{sample}.parquet.

Each event gets u = hash(split.seed, sample code, event_id) mapped to [0, 1) (a SplitMix64
finaliser, vectorised in numpy). u < encoder_fraction -> encoder half, further cut at
train_val_test (60/20/20 by default) on u / encoder_fraction; else the pseudo-data half, of
which the first `evaluation_fraction` (in v = (u - encoder_fraction) / (1 - encoder_fraction))
goes to the evaluation set (`eval`) and the rest to `data`. An evaluation-only sample (config
`evaluation.samples`) has no encoder or pseudo-data half: u < reference_fraction -> `ref`
(trains the idealized / supervised references), else `eval`.
Why a per-event hash and not a seeded permutation: an event's subset depends only on its own
id, so adding events (a bigger sample, another file) never moves existing events between
halves, and the result does not depend on row order. Output: event_id int64, subset string.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .artifacts import provenance, read_parquet, write_parquet
from .cli import hash_uniform
from .config import parse_stage_config
from .contracts import SUBSETS
from .errors import SaladError


def assign(
    event_ids,
    seed: int,
    code: int,
    encoder_fraction: float,
    train_val_test=(0.6, 0.2, 0.2),
    evaluation_fraction: float = 0.0,
) -> np.ndarray:
    """Subset name ('train'|'val'|'test'|'data'|'eval') per event id, as a numpy str array."""
    fractions = np.asarray(train_val_test, float)
    if fractions.shape != (3,) or not np.isclose(fractions.sum(), 1.0) or (fractions <= 0).any():
        raise SaladError(
            f"split.train_val_test: three positive fractions summing to 1, got {list(train_val_test)}"
        )
    if not 0.0 < encoder_fraction < 1.0:
        raise SaladError(f"split.encoder_fraction: must be in (0, 1), got {encoder_fraction}")
    if not 0.0 <= evaluation_fraction < 1.0:
        raise SaladError(f"evaluation.fraction: must be in [0, 1), got {evaluation_fraction}")
    u = hash_uniform(event_ids, seed, code)
    v = u / encoder_fraction  # uniform in [0, 1) inside the half
    rest = (u - encoder_fraction) / (1.0 - encoder_fraction)  # uniform in [0, 1) in the other half
    index = np.where(
        u < encoder_fraction,
        np.searchsorted(np.cumsum(fractions)[:2], v, side="right"),
        np.where(rest < evaluation_fraction, SUBSETS.index("eval"), SUBSETS.index("data")),
    )
    return np.asarray(SUBSETS)[index]


def assign_evaluation_only(event_ids, seed: int, code: int, reference_fraction: float) -> np.ndarray:
    """Subset name ('ref'|'eval') per event id of an evaluation-only sample."""
    if not 0.0 <= reference_fraction < 1.0:
        raise SaladError(f"evaluation.reference_fraction: must be in [0, 1), got {reference_fraction}")
    u = hash_uniform(event_ids, seed, code)
    return np.where(u < reference_fraction, "ref", "eval").astype(str)


def split_frame(
    event_ids, cfg: Mapping, code: int, evaluation: Mapping | None = None, evaluation_only: bool = False
) -> pd.DataFrame:
    """The results/split/{sample}.parquet table for `event_ids` under config sections `split`
    and `evaluation` (fraction for this sample; reference_fraction if `evaluation_only`)."""
    ids = np.asarray(event_ids, np.int64)
    evaluation = evaluation or {}
    if evaluation_only:
        subset = assign_evaluation_only(
            ids, int(cfg["seed"]), code, float(evaluation.get("reference_fraction", 0.0))
        )
    else:
        subset = assign(
            ids,
            int(cfg["seed"]),
            code,
            float(cfg["encoder_fraction"]),
            cfg["train_val_test"],
            float(evaluation.get("fraction", 0.0)),
        )
    return pd.DataFrame({"event_id": ids, "subset": pd.array(subset, dtype="string")})


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="salad split", description=__doc__)
    parser.add_argument("--input", required=True, help="results/preselected/{sample}.parquet")
    parser.add_argument("--code", required=True, type=int, help="the sample's process code")
    parser.add_argument("--output", required=True, help="results/split/{sample}.parquet")
    parser.add_argument(
        "--config", required=True, help='JSON {"split": {...}, "evaluation": {fraction, reference_fraction}}'
    )
    parser.add_argument(
        "--evaluation-only", action="store_true", help="an evaluation-only sample: subsets ref / eval only"
    )
    args = parser.parse_args(argv)
    stage_cfg = parse_stage_config(args.config)
    if "split" not in stage_cfg:
        raise SaladError("--config: missing section 'split'")
    ids = read_parquet(args.input, {"event_id": "int"})["event_id"].to_numpy()
    if len(np.unique(ids)) != len(ids):
        raise SaladError(f"{args.input}: duplicate event_id values")
    frame = split_frame(ids, stage_cfg["split"], args.code, stage_cfg.get("evaluation"), args.evaluation_only)
    write_parquet(
        frame,
        args.output,
        provenance("split", stage_cfg, code=args.code, evaluation_only=args.evaluation_only),
    )
    counts = frame["subset"].value_counts().reindex(SUBSETS, fill_value=0)
    print(f"split {args.input}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
