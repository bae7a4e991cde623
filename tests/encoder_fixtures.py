"""Synthetic inputs in the documented contracts for the encoder tests.

Writes results/preselected/{sample}.parquet and results/split/{sample}.parquet for a few
toy processes whose object multiplicities and momenta differ by process group (a signal
group with more, harder jets and leptons; SM groups softer), with zero padding and
one-hot object types exactly as docs/data-contracts.md describes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from salad.artifacts import provenance, write_parquet

# sample: (code, group, mean jets, jet pT scale [GeV], lepton probability, MET scale [GeV])
TOY_PROCESSES = {
    "yy": (1, 0, 0.8, 35.0, 0.02, 15.0),
    "ggH": (2, 1, 1.4, 50.0, 0.02, 20.0),
    "ttH": (5, 4, 4.0, 70.0, 0.35, 40.0),
    "Y400": (63, -6, 1.5, 45.0, 0.05, 20.0),
    "C1N2_300": (13, -1, 2.5, 70.0, 0.5, 90.0),
}
SLOTS = {"jet": (0, 4, 7), "fatjet": (4, 2, 8), "electron": (6, 2, 9), "muon": (8, 2, 10), "met": (10, 1, 11)}


def toy_objects(
    rng: np.random.Generator, n: int, n_jets: float, pt_scale: float, p_lep: float, met_scale: float
) -> np.ndarray:
    """(n, 11, 12) object tensors: pT-ordered, zero-padded, with one-hot types."""
    obj = np.zeros((n, 11, 12), np.float32)

    def fill(kind, counts, pt, mass, extra=None):
        start, size, onehot = SLOTS[kind]
        for k in range(size):
            has = counts > k
            rows = obj[has, start + k]
            rows[:, 0] = pt[has, k]
            rows[:, 1] = rng.normal(0, 1.5, has.sum()).clip(-4.5, 4.5)
            rows[:, 2] = rng.uniform(-np.pi, np.pi, has.sum())
            rows[:, 3] = mass[has, k]
            if extra is not None:
                rows[:, 4:7] = extra[has, k]
            rows[:, onehot] = 1.0
            obj[has, start + k] = rows

    def ordered_pt(scale, size):
        return -np.sort(-(20 + rng.exponential(scale, (n, size))), axis=1)

    jets = np.minimum(rng.poisson(n_jets, n), 4)
    jet_pt = ordered_pt(pt_scale, 4)
    tag = np.stack(
        [
            (rng.random((n, 4)) < 0.2 + 0.004 * pt_scale).astype(np.float32),
            rng.uniform(0.3, 1, (n, 4)),
            rng.uniform(0.3, 1, (n, 4)),
        ],
        axis=-1,
    )
    fill("jet", jets, jet_pt, jet_pt * rng.uniform(0.05, 0.2, (n, 4)), tag)
    fat = np.minimum(jets // 2, 2)
    fat_pt = ordered_pt(2 * pt_scale, 2) + 150
    fill("fatjet", fat, fat_pt, fat_pt * rng.uniform(0.1, 0.4, (n, 2)), tag[:, :2])
    for kind in ("electron", "muon"):
        count = rng.binomial(2, p_lep, n)
        fill(kind, count, ordered_pt(30, 2), np.zeros((n, 2)))
    fill("met", np.ones(n, int), rng.exponential(met_scale, (n, 1)), np.zeros((n, 1)))
    obj[:, 10, 1] = 0.0  # MET has no eta
    return obj


def write_toy_inputs(root: str | Path, events: dict[str, int] | int = 400, seed: int = 0) -> dict:
    """Write toy preselected + split Parquet files under root/results; return {sample: group}."""
    root = Path(root)
    counts = events if isinstance(events, dict) else {s: events for s in TOY_PROCESSES}
    groups = {}
    for sample, n in counts.items():
        code, group, n_jets, pt_scale, p_lep, met_scale = TOY_PROCESSES[sample]
        rng = np.random.default_rng([seed, code])
        objects = toy_objects(rng, n, n_jets, pt_scale, p_lep, met_scale)
        pt_y = -np.sort(-rng.uniform(40, 40 + pt_scale * 2, (n, 2)), axis=1).astype(np.float32)
        frame = pd.DataFrame(
            {
                "event_id": code * 10**9 + np.arange(n, dtype=np.int64),
                "sample": sample,
                "group": np.int8(group),
                "weight": np.full(n, 0.01),
                "myy": rng.uniform(105, 160, n).astype(np.float32),
                "pt_y1": pt_y[:, 0],
                "eta_y1": rng.normal(0, 1, n).astype(np.float32),
                "phi_y1": rng.uniform(-3, 3, n).astype(np.float32),
                "pt_y2": pt_y[:, 1],
                "eta_y2": rng.normal(0, 1, n).astype(np.float32),
                "phi_y2": rng.uniform(-3, 3, n).astype(np.float32),
                "pt_yy": (rng.exponential(pt_scale, n) + 5).astype(np.float32),
                "dr_yy": rng.uniform(0.4, 3.5, n).astype(np.float32),
                "objects": list(objects.reshape(n, 132)),
            }
        )
        frame["group"] = frame["group"].astype(np.int8)
        write_parquet(
            frame,
            root / "results" / "preselected" / f"{sample}.parquet",
            provenance("preselect", {"toy": seed}),
        )
        subset = np.where(
            rng.random(n) < 0.5, "data", rng.choice(["train", "val", "test"], n, p=[0.6, 0.2, 0.2])
        )
        write_parquet(
            pd.DataFrame({"event_id": frame["event_id"], "subset": subset}),
            root / "results" / "split" / f"{sample}.parquet",
            provenance("split", {"toy": seed}),
        )
        groups[sample] = group
    return groups


def toy_paths(root: str | Path, samples) -> tuple[list[Path], list[Path]]:
    """(preselected paths, split paths) of `samples` under root."""
    root = Path(root) / "results"
    return (
        [root / "preselected" / f"{s}.parquet" for s in samples],
        [root / "split" / f"{s}.parquet" for s in samples],
    )
