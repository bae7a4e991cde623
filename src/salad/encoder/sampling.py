"""Realistic-cocktail batches (paper B): events drawn by MC weight, not class-balanced.

`cocktail_probabilities` turns per-event MC weights [events/fb^-1] into draw probabilities
of the events kept for training: sample s gets its full share W_s = sum of weights over all
its preselected events (so capping a sample's training events does not change its share),
split inside the sample proportionally to the kept events' weights. `WeightedSampler`
draws batches with replacement from these probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts import read_parquet
from ..contracts import sample_code
from ..errors import SaladError


def cocktail_probabilities(preselected: Sequence[str | Path], event_ids: np.ndarray) -> np.ndarray:
    """Draw probabilities (n,) of events `event_ids` (sum 1) from the preselected files' weights."""
    frame = pd.concat(
        [read_parquet(p, {"event_id": "int", "weight": "float"}) for p in preselected], ignore_index=True
    )
    if (frame["weight"] < 0).any():
        raise SaladError(
            f"{', '.join(map(str, preselected))}: negative event weights cannot be "
            "sampled (encoder balance: weighted)"
        )
    weight = frame.set_index("event_id")["weight"]
    ids = np.asarray(event_ids, np.int64)
    missing = ~np.isin(ids, weight.index.to_numpy())
    if missing.any():
        raise SaladError(f"{int(missing.sum())} training event(s) have no weight in the preselected files")
    w = weight.loc[ids].to_numpy(np.float64)
    totals = frame["weight"].groupby(sample_code(frame["event_id"])).sum()
    code = sample_code(ids)
    prob = np.zeros(len(ids))
    for c in np.unique(code):
        rows = code == c
        if w[rows].sum() > 0:
            prob[rows] = totals.loc[c] * w[rows] / w[rows].sum()
    if not prob.sum() > 0:
        raise SaladError("training events: all MC weights are zero")
    return prob / prob.sum()


class WeightedSampler:
    """Batches of `batch_size` indices drawn with replacement with probabilities `prob`.

    Same interface as data.BalancedSampler: n_batches = max(1, N // batch_size) per epoch;
    batches of epoch e depend only on (seed, e).
    """

    def __init__(self, prob: np.ndarray, batch_size: int, seed: int):
        self.prob = np.asarray(prob, np.float64)
        self.batch_size = int(batch_size)
        self.n_batches = max(1, len(self.prob) // self.batch_size)
        self.seed = seed

    def epoch(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch, 3])
        draws = rng.choice(len(self.prob), (self.n_batches, self.batch_size), replace=True, p=self.prob)
        return list(draws)
