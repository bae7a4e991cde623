"""evaluation_set: the truth-labelled signal-region evaluation set behind eps_S, eps_B and SIC.

Every classifier (CATHODE, idealized, supervised) is evaluated on the same independent set of
simulated SR events: the `eval` subset (salad.split) of the SM background samples and of each
injected signal. These events are never in pseudo-data (subset `data`), never in encoder
training or validation (train / val / test) and never in the references' training (encoder
half or `ref`), so the efficiencies carry no bias from any fit.

The SM continuum needs many more events than the main sample has in the SR (a working point
eps_B = 1e-3 must rest on >= 100 unweighted background events passing the cut): config
`evaluation_set.samples` names evaluation-only samples (e.g. `yy_sr`, the gamma-gamma continuum
generated with mHat near the SR); each replaces the evaluation share of the configured samples
of its group. `yield_check` compares an evaluation-only sample's SR yield per fb^-1 with that of
the main sample(s) it replaces (they must agree within statistics: same process, same weights
convention, only the generator window differs).

Output Parquet (contract `salad.contracts.EVALUATION_SET_COLUMNS`): event_id int64, sample str, group int64,
is_signal bool, myy float64 [GeV], weight float64 [expected SR events per fb^-1 that this event stands for:
the event weight divided by the weight fraction of its sample in the `eval` subset]; SR rows
only. A JSON summary holds per-sample counts and yields and the yield check.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .artifacts import atomic_output, provenance, read_parquet, write_parquet
from .config import parse_stage_config
from .contracts import in_signal_region, read_split_sample, select_subsets
from .errors import SaladError


def sr_yield(frame: pd.DataFrame, signal_region) -> tuple[float, float, int]:
    """(sum of weights, its statistical error sqrt(sum w^2), unweighted count) in the SR."""
    w = frame.loc[in_signal_region(frame["myy"], signal_region), "weight"].to_numpy()
    return float(w.sum()), float(np.sqrt((w**2).sum())), len(w)


def build(background: Mapping[str, tuple], signals: Mapping[str, tuple], signal_region) -> pd.DataFrame:
    """Evaluation-set frame (contract EVALUATION_SET_COLUMNS) from {sample: (preselected,
    split)} pairs of the SM background and the injected signals."""
    parts = []
    for is_signal, pairs in ((False, background), (True, signals)):
        for name, (presel, split) in pairs.items():
            events = select_subsets(read_split_sample(presel, split), ["eval"], f"{split} ({name})")
            events["weight"] /= events["subset_fraction"]
            if not ((events["group"] < 0) == is_signal).all():
                raise SaladError(
                    f"{presel}: sample {name} given as "
                    f"{'signal' if is_signal else 'background'} but has groups "
                    f"{sorted(events['group'].unique())}"
                )
            events = events[in_signal_region(events["myy"], signal_region)]
            parts.append(
                pd.DataFrame(
                    {
                        "event_id": events["event_id"].to_numpy(np.int64),
                        "sample": name,
                        "group": events["group"].to_numpy(np.int64),
                        "is_signal": is_signal,
                        "myy": events["myy"].to_numpy(np.float64),
                        "weight": events["weight"].to_numpy(np.float64),
                    }
                )
            )
    frame = pd.concat(parts, ignore_index=True)
    if frame["event_id"].duplicated().any():
        raise SaladError("evaluation set: an event id appears in two samples")
    for is_signal, what in ((False, "background"), (True, "signal")):
        if not (frame["is_signal"] == is_signal).any():
            raise SaladError(f"evaluation set: no {what} events in the signal region")
    return frame


def yield_check(replacement: tuple, replaced: Sequence[tuple], signal_region) -> dict:
    """SR yield per fb^-1 of an evaluation-only sample (all its events) vs the main sample(s)
    of its group (all their events), with statistical errors and the pull."""
    new, new_err, new_n = sr_yield(read_split_sample(*replacement), signal_region)
    old = [sr_yield(read_split_sample(*pair), signal_region) for pair in replaced]
    old_y, old_err = sum(o[0] for o in old), float(np.sqrt(sum(o[1] ** 2 for o in old)))
    err = float(np.hypot(new_err, old_err))
    return {
        "yield_per_ifb": new,
        "yield_err": new_err,
        "events": new_n,
        "main_yield_per_ifb": old_y,
        "main_yield_err": old_err,
        "main_events": sum(o[2] for o in old),
        "pull": (new - old_y) / err if err > 0 else float("nan"),
    }


def summary(frame: pd.DataFrame) -> dict:
    """Per sample: unweighted SR events and yield per fb^-1 of the evaluation set."""
    return {
        name: {
            "events": int(len(g)),
            "yield_per_ifb": float(g["weight"].sum()),
            "is_signal": bool(g["is_signal"].iloc[0]),
        }
        for name, g in frame.groupby("sample")
    }


def _pairs(items) -> dict:
    """--background/--signal NAME PRESELECTED SPLIT triples -> {name: (preselected, split)}."""
    return {name: (presel, split) for name, presel, split in items}


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="salad evaluation-set", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    triple = {"nargs": 3, "action": "append", "default": [], "metavar": ("SAMPLE", "PRESELECTED", "SPLIT")}
    parser.add_argument("--background", help="SM sample (repeatable)", **triple)
    parser.add_argument("--signal", help="injected signal (repeatable)", **triple)
    parser.add_argument(
        "--replaced",
        help="main sample replaced by an evaluation-only one, for the yield check (repeatable)",
        **triple,
    )
    parser.add_argument("--output", required=True, help="results/evaluation/set.parquet")
    parser.add_argument("--summary", required=True, help="results/evaluation/set.json")
    parser.add_argument(
        "--config", required=True, help='JSON {"regions": ..., "evaluation_set": {"samples": [...]}}'
    )
    args = parser.parse_args(argv)
    cfg = parse_stage_config(args.config)
    region = cfg["regions"]["signal_region"]
    background, replaced = _pairs(args.background), _pairs(args.replaced)
    frame = build(background, _pairs(args.signal), region)
    checks = {}
    groups = {
        name: int(read_parquet(pair[0], {"group": "int"})["group"].iloc[0])
        for name, pair in {**background, **replaced}.items()
    }
    for name in cfg.get("evaluation_set", {}).get("samples", []):
        main = [pair for other, pair in replaced.items() if groups[other] == groups[name]]
        if main:
            checks[name] = yield_check(background[name], main, region)
    write_parquet(frame, args.output, provenance("evaluation_set", cfg))
    with atomic_output(args.summary) as tmp:
        tmp.write_text(json.dumps({"samples": summary(frame), "yield_check": checks}, indent=1))
    for name, check in checks.items():
        print(
            f"{name}: SR yield {check['yield_per_ifb']:.1f} +- {check['yield_err']:.1f} per fb^-1 "
            f"vs main {check['main_yield_per_ifb']:.1f} +- {check['main_yield_err']:.1f} "
            f"(pull {check['pull']:+.2f})"
        )
    print(
        f"evaluation set: {int((~frame['is_signal']).sum())} background + "
        f"{int(frame['is_signal'].sum())} signal SR events"
    )
