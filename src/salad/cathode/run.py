"""cathode: one job per (encoder setup, encoder seed, pseudo-data set), as in paper A.

Fits the `flow.count` conditional flows p(z | m_yy) on the sideband data (salad.cathode.flow),
pools their samples into ONE SR background template (salad.cathode.template), trains the
`classifier.bdts` k-fold CWoLa BDTs SR data vs template (salad.cathode.classify) and scores the
truth-labelled evaluation set (salad.evalset) with the mean of each BDT's fold models.
Writes the flow checkpoints, the template and the score file (contracts of the three modules).
"""
from __future__ import annotations

import time

from ..artifacts import provenance, write_parquet
from ..cli import parse_stage_args, stable_seed, stage_parser
from ..contracts import attach_latent, latent_columns, read_evaluation_set
from ..errors import SaladError
from . import classify, flow, template
from .data import LOG, read_job


def fit_flows(data, sb, paths, flow_cfg, window, key: str, threads: int) -> list[tuple]:
    """Fit len(paths) flows on the sideband rows of `data` (seeds from flow.seed, `key` and the
    flow index), save each to its path; returns [(model, checkpoint)] as loaded back."""
    cols = latent_columns(data)
    flows = []
    for i, path in enumerate(paths):
        seed = stable_seed(flow_cfg.get("seed", 0), key, i)
        ckpt = flow.fit(data.loc[sb, cols].to_numpy(), data.loc[sb, "myy"].to_numpy(), window,
                        flow_cfg, seed=seed, threads=threads)
        LOG.info("flow %d: %d sideband events, seed %d, %.1f s, best epoch %d", i, sb.sum(), seed,
                 ckpt["fit_seconds"], ckpt["best_epoch"])
        flow.save(ckpt, path, cols)
        flows.append(flow.load(path))
    return flows


def cli(argv=None) -> None:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--embeddings", required=True)
    parser.add_argument("--data", required=True, help="pseudo-data Parquet")
    parser.add_argument("--higgs", nargs=2, action="append", default=[],
                        metavar=("PRESELECTED", "SPLIT"), help="an SM Higgs sample (repeatable)")
    parser.add_argument("--evaluation-set", required=True, help="results/evaluation/set.parquet")
    parser.add_argument("--flows", nargs="+", required=True, help="flow checkpoint outputs")
    parser.add_argument("--template", required=True, help="template output")
    parser.add_argument("--scores", required=True, help="score output")
    parser.add_argument("--seed-key", default="")
    args, cfg = parse_stage_args(parser, argv)
    for section in ("flow", "template", "classifier", "regions", "window", "luminosity"):
        if section not in cfg:
            raise SaladError(f"--config: missing section {section!r}")
    start = time.perf_counter()
    emb, data, sr, sb = read_job(args.embeddings, args.data, cfg)
    evaluation = attach_latent(read_evaluation_set(args.evaluation_set), emb, args.evaluation_set)
    flows = fit_flows(data, sb, args.flows, cfg["flow"], cfg["window"], args.seed_key, args.threads)
    tcfg = template.settings(cfg["template"])
    higgs = template.read_higgs(args.higgs, emb, tcfg["higgs_subsets"])
    frame = template.build(data[sr], flows, higgs, cfg["regions"]["signal_region"],
                           float(cfg["luminosity"]), tcfg,
                           seed=stable_seed(cfg["flow"].get("seed", 0), "template", args.seed_key))
    write_parquet(frame, args.template, provenance("cathode-template", cfg))
    scores = classify.cwola(data, frame, sr, sb, classify.settings(cfg["classifier"]),
                            args.seed_key, args.threads, evaluation=evaluation)
    write_parquet(scores, args.scores, provenance("cathode-classify", cfg))
    LOG.info("cathode %s: %d flows, template %d rows, %d evaluation events, %.1f s",
             args.seed_key, len(flows), len(frame), len(evaluation), time.perf_counter() - start)
