"""Pseudo-data: results/pseudodata/{signal}/{strength}/{instance}.parquet (+ .json summary).

Background (every sample with group >= 0): only events of the split's `data` half are used.
Their weights (expected events per fb⁻¹ of the whole sample) are rescaled by
Σ_all w / Σ_data w per sample, since the data half holds only a fraction of the events.
Sample s contributes N_s ~ Poisson(L × Σ_all w_s) events, drawn without replacement with
probability ∝ weight (Efraimidis–Spirakis keys log(u)/w). The draw uses only
(pseudodata.seed, instance, sample code), so every signal and strength of an instance shares
the same background.

Signal: B_SR = L × Σ (rescaled data-half background weights with myy in
regions.signal_region) is the expected SR background. N_sig = round(strength × √B_SR / ε_SR)
signal events (ε_SR: weighted fraction of the signal's data half inside the SR) are drawn
without replacement ∝ weight, so the expected injected SR count is strength × √B_SR. The
count is not Poisson-fluctuated: the strength is a set parameter of the study. Signal keys
depend on (seed, instance, signal code) only, so injections are nested across strengths.

Output: event_id int64, sample string, myy float32 [GeV], is_signal bool, group int8, rows
in a seeded pseudo-random order (never grouped by sample). `sample`, `is_signal` and `group`
are truth, for evaluation only: nothing a real analysis could not know may read them (nor
derive the sample from event_id, which encodes the process code).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .artifacts import atomic_output, provenance, write_parquet
from .cli import hash_uniform
from .config import parse_stage_config
from .contracts import PRESELECTED, in_signal_region, read_events, sample_code
from .errors import SaladError

PRESELECTED_COLUMNS = PRESELECTED.kinds("event_id", "sample", "group", "weight", "myy")


def load_sample(preselected: str, split: str) -> pd.DataFrame:
    """One sample's preselected events joined with their split subset."""
    frame = read_events([preselected], [split], PRESELECTED_COLUMNS)
    if frame["sample"].nunique() > 1:
        raise SaladError(f"{preselected}: holds several samples")
    frame["sample"] = frame["sample"].astype(str)
    return frame


def _check_weights(frame: pd.DataFrame, sample: str) -> None:
    if (frame["weight"] < 0).any():
        raise SaladError(
            f"{sample}: negative event weights; pseudo-data sampling by weight needs weights >= 0"
        )


def data_half(frame: pd.DataFrame) -> pd.DataFrame:
    """The `data` subset of one sample, with `weight` rescaled to the whole sample's yield."""
    sample = frame["sample"].iloc[0]
    _check_weights(frame, sample)
    data = frame[frame["subset"] == "data"].copy()
    w_all, w_data = frame["weight"].sum(), data["weight"].sum()
    if w_data <= 0:
        raise SaladError(f"{sample}: no weighted events in its pseudo-data half")
    data["weight"] *= w_all / w_data
    return data


def weighted_order(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices in the order of a weighted draw without replacement (zero weights never drawn)."""
    with np.errstate(divide="ignore"):
        keys = np.log(rng.random(len(weights))) / weights
    keys[weights <= 0] = -np.inf
    return np.argsort(-keys, kind="stable")


def _code(frame: pd.DataFrame) -> int:
    return int(sample_code(frame["event_id"].iloc[:1])[0])


def draw_background(
    samples: Sequence[pd.DataFrame], luminosity: float, seed: int, instance: int
) -> tuple[pd.DataFrame, dict]:
    """Poisson-fluctuated, weight-proportional background draw from the data halves."""
    drawn, info = [], {}
    for data in samples:
        sample = data["sample"].iloc[0]
        rng = np.random.default_rng([seed, instance, _code(data)])
        expected = luminosity * data["weight"].sum()
        n = int(rng.poisson(expected))
        order = weighted_order(data["weight"].to_numpy(), rng)
        pool = int((data["weight"] > 0).sum())
        if n > pool:
            raise SaladError(
                f"{sample}: pseudo-data at {luminosity} fb^-1 needs {n} events "
                f"(expected {expected:.1f}) but its data half holds only {pool}; "
                "generate more events or lower pseudodata.luminosity_ifb"
            )
        drawn.append(data.iloc[order[:n]])
        info[sample] = {
            "expected": expected,
            "drawn": n,
            "pool": pool,
            "pool_fraction": n / pool if pool else 0.0,
        }
    return pd.concat(drawn, ignore_index=True), info


def inject_signal(
    data: pd.DataFrame, target_sr: float, region, seed: int, instance: int
) -> tuple[pd.DataFrame, int]:
    """Draw round(target_sr / ε_SR) signal events from the signal's data half."""
    sample = data["sample"].iloc[0]
    if target_sr <= 0:
        return data.iloc[:0], 0
    w = data["weight"].to_numpy()
    w_sr = w[in_signal_region(data["myy"], region)].sum()
    if w_sr <= 0:
        raise SaladError(
            f"{sample}: no events of its pseudo-data half in the signal region "
            f"{list(region)} GeV; cannot inject it"
        )
    n = int(round(target_sr * w.sum() / w_sr))
    pool = int((w > 0).sum())
    if n > pool:
        raise SaladError(
            f"{sample}: injecting S_SR = {target_sr:.1f} needs {n} events but its "
            f"data half holds only {pool}; generate more events or lower the strength"
        )
    rng = np.random.default_rng([seed, instance, _code(data)])
    return data.iloc[weighted_order(w, rng)[:n]], n


def build(
    backgrounds: Sequence[pd.DataFrame], signal: pd.DataFrame, strength: float, instance: int, cfg: Mapping
) -> tuple[pd.DataFrame, dict]:
    """Pseudo-data table and summary from per-sample frames (load_sample outputs)."""
    pcfg, region = cfg["pseudodata"], cfg["regions"]["signal_region"]
    seed, lumi = int(pcfg["seed"]), float(pcfg["luminosity_ifb"])
    for frame in backgrounds:
        if frame["group"].iloc[0] < 0:
            raise SaladError(f"{frame['sample'].iloc[0]}: a BSM sample (group < 0) among the backgrounds")
    halves = [data_half(f) for f in backgrounds]
    if signal["group"].iloc[0] >= 0:
        raise SaladError(f"{signal['sample'].iloc[0]}: not a signal sample (group >= 0)")
    b_sr = lumi * sum(h.loc[in_signal_region(h["myy"], region), "weight"].sum() for h in halves)
    bkg, info = draw_background(halves, lumi, seed, instance)
    target = strength * np.sqrt(b_sr)
    sig, n_sig = inject_signal(data_half(signal), target, region, seed, instance)
    table = pd.concat([bkg.assign(is_signal=False), sig.assign(is_signal=True)], ignore_index=True)
    table = table.iloc[np.argsort(hash_uniform(table["event_id"].to_numpy(), seed, instance))]
    out = pd.DataFrame(
        {
            "event_id": table["event_id"].to_numpy(np.int64),
            "sample": pd.array(table["sample"].to_numpy(str), dtype="string"),
            "myy": table["myy"].to_numpy(np.float32),
            "is_signal": table["is_signal"].to_numpy(bool),
            "group": table["group"].to_numpy(np.int8),
        }
    )
    sr = in_signal_region(out["myy"], region)
    summary = {
        "signal": signal["sample"].iloc[0],
        "strength": strength,
        "instance": instance,
        "luminosity_ifb": lumi,
        "signal_region": list(region),
        "B_SR_expected": b_sr,
        "S_SR_target": target,
        "S_SR_injected": int((sr & out["is_signal"]).sum()),
        "B_SR_drawn": int((sr & ~out["is_signal"]).sum()),
        "n_signal": n_sig,
        "n_background": len(bkg),
        "n_events": len(out),
        "backgrounds": info,
    }
    return out, summary


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="salad pseudodata", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--background",
        nargs="+",
        required=True,
        metavar="PRESELECTED:SPLIT",
        help="one PRESELECTED.parquet:SPLIT.parquet pair per background sample",
    )
    parser.add_argument("--signal", required=True, metavar="PRESELECTED:SPLIT")
    parser.add_argument("--strength", required=True, type=float)
    parser.add_argument("--instance", required=True, type=int)
    parser.add_argument("--output", required=True)
    parser.add_argument("--summary", required=True)
    parser.add_argument("--config", required=True, help='JSON {"pseudodata": {...}, "regions": {...}}')
    args = parser.parse_args(argv)
    cfg = parse_stage_config(args.config)
    for key in ("pseudodata", "regions"):
        if key not in cfg:
            raise SaladError(f"--config: missing section {key!r}")

    def pair(text):
        pre, sep, spl = text.partition(":")
        if not sep:
            raise SaladError(f"{text}: expected PRESELECTED.parquet:SPLIT.parquet")
        return load_sample(pre, spl)

    table, summary = build(
        [pair(b) for b in args.background], pair(args.signal), args.strength, args.instance, cfg
    )
    write_parquet(
        table, args.output, provenance("pseudodata", cfg, strength=args.strength, instance=args.instance)
    )
    with atomic_output(args.summary) as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=1, default=float) + "\n")
    for name, item in summary["backgrounds"].items():
        if item["pool_fraction"] > 0.5:
            print(
                f"warning: {name}: pseudo-data uses {item['pool_fraction']:.0%} of its data half; "
                "instances are strongly correlated and the weighted draw is biased towards "
                "uniform; generate more events or lower pseudodata.luminosity_ifb",
                file=sys.stderr,
            )
    print(
        f"pseudodata {summary['signal']} strength {args.strength} instance {args.instance}: "
        f"{summary['n_background']} background + {summary['n_signal']} signal events; "
        f"B_SR {summary['B_SR_expected']:.1f}, S_SR {summary['S_SR_injected']}"
    )
