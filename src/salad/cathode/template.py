"""sample_sr: the background template in the signal region.

Template = (a) flow samples at SR masses drawn from a Gaussian KDE of the SR data m_yy
spectrum (rejection to the SR), `oversample` x N_SR of them, shared equally by the
`flow.count` flows of the (encoder, dataset) (paper A: the flows together make one background
estimate), plus (b) simulated SM Higgs events
(groups 1-4: ggF, VBF, VH, ttH) from the encoder half (config `higgs_subsets`, never the
pseudo-data half), embedded with the same encoder, weighted to their expected SR yield at the
pseudo-data luminosity x oversample (the flow, fitted on sidebands, cannot learn the
resonant Higgs). The flow samples carry the rest: their total weight is
oversample x (N_SR - expected Higgs yield), so the whole template sums to oversample x N_SR.

Output Parquet (contract): z0..z{d-1} float32, myy float32 [GeV], weight float64 (template
events per oversampled SR; > 0), source string (`flow` or the Higgs sample name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import gaussian_kde

from ..artifacts import provenance, write_parquet
from ..cli import add_sample_pairs, parse_stage_args, stable_seed, stage_parser
from ..config import merge_defaults
from ..contracts import attach_latent, in_signal_region, latent_columns
from ..errors import SaladError
from . import flow as flowmod
from .data import LOG, read_job, simulation_events

DEFAULTS = {
    "oversample": 4,
    "kde_bandwidth": "scott",
    "higgs_subsets": ["val", "test"],
    "min_flow_fraction": 0.1,
}


def settings(cfg: Mapping | None) -> dict:
    """Template settings: DEFAULTS <- config `flow.template` (unknown keys are an error)."""
    return merge_defaults("flow.template", cfg, DEFAULTS)


def sample_masses(sr_myy: np.ndarray, n: int, signal_region, rng, bandwidth="scott") -> np.ndarray:
    """n masses [GeV] from a Gaussian KDE of `sr_myy`, restricted to the SR by rejection."""
    sr_myy = np.asarray(sr_myy, np.float64)
    if len(sr_myy) < 2 or np.ptp(sr_myy) == 0:
        raise SaladError(f"signal region: {len(sr_myy)} data event(s), too few for a mass KDE")
    kde = gaussian_kde(sr_myy, bw_method=bandwidth)
    out = np.empty(0)
    while len(out) < n:
        draw = kde.resample(2 * (n - len(out)) + 10, seed=rng)[0]
        out = np.concatenate([out, draw[in_signal_region(draw, signal_region)]])
    return out[:n]


def build(
    sr_data: pd.DataFrame,
    flows: Sequence[tuple],
    higgs: pd.DataFrame | None,
    signal_region: Sequence[float],
    luminosity: float,
    cfg: Mapping | None,
    seed: int,
) -> pd.DataFrame:
    """Template frame from SR data (myy), loaded flows [(model, checkpoint), ...] pooled into
    one estimate (flow i samples every len(flows)-th mass), and Higgs simulation.

    higgs: rows with z columns, myy, weight [events/fb^-1], subset_fraction, sample (any
    mass; only the SR is used), or None.
    """
    cfg = settings(cfg)
    if not flows:
        raise SaladError("template: no flows given")
    cols = list(flows[0][1]["latent_columns"])
    if any(list(ckpt["latent_columns"]) != cols for _, ckpt in flows):
        raise SaladError("template: the flows were fitted on different latent columns")
    over = float(cfg["oversample"])
    n_sr = len(sr_data)
    rng = np.random.default_rng(seed)
    parts = []
    y_higgs = 0.0
    if higgs is not None and len(higgs):
        h = higgs[in_signal_region(higgs["myy"], signal_region)]
        expected = h["weight"].to_numpy() / h["subset_fraction"].to_numpy() * luminosity
        y_higgs = float(expected.sum())
        parts.append(
            pd.DataFrame(
                {
                    **{c: h[c].to_numpy(np.float32) for c in cols},
                    "myy": h["myy"].to_numpy(np.float32),
                    "weight": expected * over,
                    "source": h["sample"].astype(str).to_numpy(),
                }
            )
        )
    flow_yield = n_sr - y_higgs
    if flow_yield < cfg["min_flow_fraction"] * n_sr:
        LOG.warning(
            "expected SM Higgs yield %.1f vs %d SR data events: flow share floored at %.0f %%",
            y_higgs,
            n_sr,
            100 * cfg["min_flow_fraction"],
        )
        flow_yield = cfg["min_flow_fraction"] * n_sr
    n_flow = int(round(over * n_sr))
    masses = sample_masses(sr_data["myy"].to_numpy(), n_flow, signal_region, rng, cfg["kde_bandwidth"])
    z = np.empty((n_flow, len(cols)))
    for i, (model, ckpt) in enumerate(flows):
        z[i :: len(flows)] = flowmod.sample(
            model, ckpt, masses[i :: len(flows)], seed=int(rng.integers(2**31))
        )
    parts.insert(
        0,
        pd.DataFrame(
            {
                **{c: z[:, i].astype(np.float32) for i, c in enumerate(cols)},
                "myy": masses.astype(np.float32),
                "weight": np.full(n_flow, over * flow_yield / n_flow),
                "source": "flow",
            }
        ),
    )
    LOG.info(
        "template: %d samples of %d flow(s) (yield %.1f) + %d Higgs events (yield %.2f), "
        "N_SR = %d, oversample %g",
        n_flow,
        len(flows),
        flow_yield,
        len(parts[-1]) if len(parts) > 1 else 0,
        y_higgs,
        n_sr,
        over,
    )
    return pd.concat(parts, ignore_index=True)


def read_higgs(pairs: Sequence[Sequence[str]], emb: pd.DataFrame, subsets) -> pd.DataFrame | None:
    """Encoder-half SM Higgs simulation with latent, from (preselected, split) path pairs."""
    frames = []
    for presel, split in pairs:
        sim = simulation_events(presel, split, subsets)
        if not sim["group"].between(1, 4).all():
            raise SaladError(
                f"{presel}: not an SM Higgs sample (groups 1-4 expected, found "
                f"{sorted(sim['group'].unique())})"
            )
        frames.append(attach_latent(sim, emb, str(presel)))
    return pd.concat(frames, ignore_index=True) if frames else None


def cli(argv=None) -> None:
    parser = stage_parser("Sample the SR background template from a fitted flow + SM Higgs.")
    parser.add_argument(
        "--flow", required=True, nargs="+", help="fit_flow checkpoint(s), pooled into one template"
    )
    parser.add_argument("--embeddings", required=True)
    parser.add_argument("--data", required=True, help="pseudo-data Parquet")
    add_sample_pairs(parser, "--higgs", "an SM Higgs sample (repeatable)")
    parser.add_argument("--output", required=True)
    parser.add_argument("--seed-key", default="")
    args, cfg = parse_stage_args(parser, argv)
    tcfg = settings(cfg.get("template"))
    emb, data, sr, _ = read_job(args.embeddings, args.data, cfg)
    flows = [flowmod.load(path) for path in args.flow]
    for path, (_, ckpt) in zip(args.flow, flows):
        if list(ckpt["latent_columns"]) != latent_columns(emb):
            raise SaladError(f"{path}: latent columns differ from {args.embeddings}")
    higgs = read_higgs(args.higgs, emb, tcfg["higgs_subsets"])
    frame = build(
        data[sr],
        flows,
        higgs,
        cfg["regions"]["signal_region"],
        float(cfg["luminosity"]),
        tcfg,
        seed=stable_seed(cfg.get("seed", 0), "template", args.seed_key),
    )
    write_parquet(frame, args.output, provenance("sample_sr", cfg))
