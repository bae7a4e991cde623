"""CATHODE's inputs, read through salad.contracts: pseudo-data with latents, simulation events."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import pandas as pd

from ..contracts import (
    REFERENCE_SUBSETS,
    attach_latent,
    read_embeddings,
    read_pseudodata,
    read_split_sample,
    region_masks,
    select_subsets,
)
from ..errors import SaladError

LOG = logging.getLogger("salad.cathode")


def read_dataset(pseudodata_path, emb: pd.DataFrame) -> pd.DataFrame:
    """Pseudo-data events with their latent: event_id, myy, is_signal, group, z0.. ."""
    return attach_latent(read_pseudodata(pseudodata_path), emb, str(pseudodata_path))


def read_job(embeddings, pseudodata_path, cfg: Mapping):
    """(embeddings, pseudo-data with latents, SR mask, SB mask) of one CATHODE dataset; `cfg`
    holds regions.signal_region and the preselection window [GeV]."""
    emb = read_embeddings(embeddings)
    data = read_dataset(pseudodata_path, emb)
    sr, sb = region_masks(data["myy"].to_numpy(), cfg["regions"]["signal_region"], cfg["window"])
    return emb, data, sr, sb


def simulation_events(presel_path, split_path, subsets: Sequence[str]) -> pd.DataFrame:
    """Simulation events of one sample in `subsets` (encoder half or the `ref` share of an
    evaluation-only sample; never pseudo-data or evaluation events): event_id, sample, group,
    weight, myy, plus `subset_fraction` = (sum of weights in `subsets`) / (sum of weights of the
    sample), so that weight / subset_fraction is the expected yield per fb^-1 of the chosen
    events."""
    bad = set(subsets) - set(REFERENCE_SUBSETS)
    if bad:
        raise SaladError(
            f"simulation subsets {sorted(bad)}: only {'/'.join(REFERENCE_SUBSETS)} "
            "(encoder half, reference share) allowed"
        )
    chosen = select_subsets(read_split_sample(presel_path, split_path), subsets, str(presel_path))
    if "sample" not in chosen:
        chosen["sample"] = str(presel_path)
    return chosen.drop(columns=["subset"]).reset_index(drop=True)
