"""Synthetic artifacts for the cathode tests (no upstream stage needed).

Latent background: Gaussian in d dims whose mean shifts linearly with m_yy
(z_k ~ N(SHIFT * (m - 132.5) / 27.5, 1)); continuum mass falling exponentially over
105-160 GeV. SM Higgs: narrow peak at 125 GeV, latent centred at +1.5 in z0. Signal:
peak at 125 GeV, latent localised at SIGNAL_CENTER with width 0.3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from salad.artifacts import provenance, write_parquet

WINDOW = (105.0, 160.0)
SR = (120.0, 130.0)
SHIFT = 1.0
SIGNAL_CENTER = 2.5


def continuum_mass(rng, n):
    """Falling m_yy spectrum [GeV] inside WINDOW."""
    u = rng.uniform(size=n)
    slope = 1 / 25.0
    span = 1 - np.exp(-slope * (WINDOW[1] - WINDOW[0]))
    return WINDOW[0] - np.log(1 - u * span) / slope


def background_latent(rng, myy, dims):
    """z | m ~ N(SHIFT * (m - 132.5)/27.5, 1) in every dimension."""
    mu = SHIFT * (np.asarray(myy) - 132.5) / 27.5
    return rng.normal(size=(len(myy), dims)) + mu[:, None]


def higgs_latent(rng, n, dims):
    z = rng.normal(size=(n, dims))
    z[:, 0] += 1.5
    return z


def signal_latent(rng, n, dims):
    return SIGNAL_CENTER + 0.3 * rng.normal(size=(n, dims))


def peak_mass(rng, n):
    return np.clip(rng.normal(125.0, 1.7, n), WINDOW[0], WINDOW[1])


def make_world(
    root: Path,
    dims: int = 3,
    n_bkg: int = 6000,
    n_higgs_data: int = 60,
    n_sig: int = 0,
    seed: int = 0,
    n_sim: int = 2000,
    lumi: float = 10.0,
    n_eval: int = 0,
) -> dict:
    """Write embeddings, pseudo-data, preselected and split files under `root`.

    Pseudo-data: n_bkg continuum (sample yy, group 0), n_higgs_data ggH (group 1), n_sig
    signal (sample SIG, group -1). Simulation (encoder half): n_sim events each of yy, ggH,
    SIG (subsets train/val/test); evaluation set: n_eval events each (subset eval); ggH
    weights are set so that its expected yield at `lumi` equals n_higgs_data. Returns the
    file paths.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    rows, emb = [], []
    next_id = {"yy": 1 * 10**9, "ggH": 2 * 10**9, "SIG": 99 * 10**9}
    groups = {"yy": 0, "ggH": 1, "SIG": -1}

    def add(sample, myy, z, subset):
        ids = next_id[sample] + np.arange(len(myy))
        next_id[sample] += len(myy)
        emb.append(
            pd.DataFrame({"event_id": ids, **{f"z{k}": z[:, k].astype(np.float32) for k in range(dims)}})
        )
        return pd.DataFrame(
            {
                "event_id": ids,
                "sample": sample,
                "group": np.int8(groups[sample]),
                "myy": myy.astype(np.float32),
                "subset": subset,
            }
        )

    m = continuum_mass(rng, n_bkg)
    rows.append(add("yy", m, background_latent(rng, m, dims), "data"))
    m = peak_mass(rng, n_higgs_data)
    rows.append(add("ggH", m, higgs_latent(rng, len(m), dims), "data"))
    m = peak_mass(rng, n_sig)
    rows.append(add("SIG", m, signal_latent(rng, len(m), dims), "data"))
    sim_subsets = rng.choice(["train", "val", "test"], size=n_sim, p=[0.6, 0.2, 0.2])
    m = continuum_mass(rng, n_sim)
    rows.append(add("yy", m, background_latent(rng, m, dims), sim_subsets))
    m = peak_mass(rng, n_sim)
    rows.append(add("ggH", m, higgs_latent(rng, n_sim, dims), sim_subsets))
    m = peak_mass(rng, n_sim)
    rows.append(add("SIG", m, signal_latent(rng, n_sim, dims), sim_subsets))
    if n_eval:
        m = continuum_mass(rng, n_eval)
        rows.append(add("yy", m, background_latent(rng, m, dims), "eval"))
        m = peak_mass(rng, n_eval)
        rows.append(add("ggH", m, higgs_latent(rng, n_eval, dims), "eval"))
        m = peak_mass(rng, n_eval)
        rows.append(add("SIG", m, signal_latent(rng, n_eval, dims), "eval"))
    events = pd.concat(rows, ignore_index=True)
    prov = provenance("test-fixture")
    paths = {"embeddings": root / "embeddings.parquet", "data": root / "pseudodata.parquet"}
    write_parquet(pd.concat(emb, ignore_index=True), paths["embeddings"], prov)
    data = events[events["subset"] == "data"]
    write_parquet(
        pd.DataFrame(
            {
                "event_id": data["event_id"],
                "sample": data["sample"],
                "myy": data["myy"],
                "is_signal": data["group"] < 0,
                "group": data["group"],
            }
        ),
        paths["data"],
        prov,
    )
    # Weights in expected events per fb^-1 over all generated events of the sample (both halves):
    # ggH: total expected yield n_higgs_data / lumi spread over its simulated + data events.
    n_total = {s: int((events["sample"] == s).sum()) for s in groups}
    per_fb = {"yy": n_bkg / lumi, "ggH": n_higgs_data / lumi, "SIG": 1.0}
    for sample in groups:
        sel = events[events["sample"] == sample]
        w = np.full(len(sel), per_fb[sample] / n_total[sample])
        paths[f"presel_{sample}"] = root / f"preselected_{sample}.parquet"
        paths[f"split_{sample}"] = root / f"split_{sample}.parquet"
        write_parquet(
            pd.DataFrame(
                {
                    "event_id": sel["event_id"],
                    "sample": sample,
                    "group": sel["group"],
                    "weight": w,
                    "myy": sel["myy"],
                }
            ),
            paths[f"presel_{sample}"],
            prov,
        )
        write_parquet(
            pd.DataFrame({"event_id": sel["event_id"], "subset": sel["subset"]}),
            paths[f"split_{sample}"],
            prov,
        )
    return paths
