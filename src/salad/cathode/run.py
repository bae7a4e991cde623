"""cathode: one job per (encoder setup, encoder seed, batch of pseudo-data sets), as in paper A.

Per pseudo-data set of the batch: fits the `flow.count` conditional flows p(z | m_yy) on the
sideband data (salad.cathode.flow), pools their samples into ONE SR background template
(salad.cathode.template), trains the `classifier.bdts` k-fold CWoLa BDTs SR data vs template
(salad.cathode.classify) and scores the truth-labelled evaluation set (salad.evalset) with the
mean of each BDT's fold models; for injected sets (strength > 0, `--signal` given) also the
idealized-detector and supervised references (classify.reference). The embeddings, the
evaluation set and the simulation are read once per job, so a job is worth its start-up cost
and the paper-scale DAG stays small.

Outputs under --output-dir, per set {strength}/{instance} of .../{signal}/{strength}/{instance}.parquet:
flows/{strength}/{instance}/{i}.pt, templates/{strength}/{instance}.parquet,
scores/{strength}/{instance}.parquet, reference/{strength}/{instance}.parquet (injected only).
Random seeds depend on `--seed-key` ({setup}/{seed}) and the set's {signal}/{strength}/{instance},
not on how sets are batched.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..artifacts import provenance, write_parquet
from ..cli import add_sample_pairs, parse_stage_args, stable_seed, stage_parser
from ..contracts import (
    attach_latent,
    dataset_parts,
    latent_columns,
    read_embeddings,
    read_evaluation_set,
    region_masks,
)
from ..errors import SaladError
from . import classify, flow, template
from .data import LOG, read_dataset


def fit_flows(data, sb, paths, flow_cfg, window, key: str, threads: int) -> list[tuple]:
    """Fit len(paths) flows on the sideband rows of `data` (seeds from flow.seed, `key` and the
    flow index), save each to its path; returns [(model, checkpoint)] as loaded back."""
    cols = latent_columns(data)
    flows = []
    for i, path in enumerate(paths):
        seed = stable_seed(flow_cfg.get("seed", 0), key, i)
        ckpt = flow.fit(
            data.loc[sb, cols].to_numpy(),
            data.loc[sb, "myy"].to_numpy(),
            window,
            flow_cfg,
            seed=seed,
            threads=threads,
        )
        LOG.info(
            "flow %d: %d sideband events, seed %d, %.1f s, best epoch %d",
            i,
            sb.sum(),
            seed,
            ckpt["fit_seconds"],
            ckpt["best_epoch"],
        )
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        flow.save(ckpt, path, cols)
        flows.append(flow.load(path))
    return flows


def run_dataset(
    path, emb, evaluation, higgs, references, cfg, out: Path, seed_key: str, threads: int
) -> None:
    """CATHODE (and, if `references` = (background, signal) simulation, the references) on one
    pseudo-data set; writes its four artifacts under `out`."""
    signal, strength, instance = dataset_parts(path)
    key = f"{seed_key}/{signal}/{strength}/{instance}"
    start = time.perf_counter()
    data = read_dataset(path, emb)
    region = cfg["regions"]["signal_region"]
    sr, sb = region_masks(data["myy"].to_numpy(), region, cfg["window"])
    n_flows = int(cfg["flow_count"])
    flow_paths = [out / "flows" / strength / instance / f"{i}.pt" for i in range(n_flows)]
    flows = fit_flows(data, sb, flow_paths, cfg["flow"], cfg["window"], key, threads)
    tcfg = template.settings(cfg["template"])
    frame = template.build(
        data[sr],
        flows,
        higgs,
        region,
        float(cfg["luminosity"]),
        tcfg,
        seed=stable_seed(cfg["flow"].get("seed", 0), "template", key),
    )
    write_parquet(
        frame, out / "templates" / strength / f"{instance}.parquet", provenance("cathode-template", cfg)
    )
    ccfg = classify.settings(cfg["classifier"])
    scores = classify.cwola(data, frame, sr, sb, ccfg, key, threads, evaluation=evaluation)
    write_parquet(
        scores, out / "scores" / strength / f"{instance}.parquet", provenance("cathode-classify", cfg)
    )
    if references is not None and float(strength) > 0:
        background, signal_sim = references
        ref = classify.reference(data, sr, background, signal_sim, region, ccfg, key, threads, evaluation)
        write_parquet(
            ref, out / "reference" / strength / f"{instance}.parquet", provenance("classify-reference", cfg)
        )
    LOG.info(
        "cathode %s: %d flows, template %d rows, %d evaluation events, %.1f s",
        key,
        len(flows),
        len(frame),
        len(evaluation),
        time.perf_counter() - start,
    )


def cli(argv=None) -> None:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--embeddings", required=True)
    parser.add_argument(
        "--data", nargs="+", required=True, help="pseudo-data sets .../{signal}/{strength}/{instance}.parquet"
    )
    add_sample_pairs(parser, "--higgs", "an SM Higgs sample (repeatable)")
    add_sample_pairs(parser, "--background", "truth-background sample for the references (repeatable)")
    add_sample_pairs(
        parser, "--signal", "the injected signal's sample (references of injected sets)", repeat=False
    )
    parser.add_argument("--evaluation-set", required=True, help="results/evaluation/set.parquet")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--seed-key", default="", help="{setup}/{seed}")
    args, cfg = parse_stage_args(parser, argv)
    for section in ("flow", "flow_count", "template", "classifier", "regions", "window", "luminosity"):
        if section not in cfg:
            raise SaladError(f"--config: missing section {section!r}")
    signals = {dataset_parts(p)[0] for p in args.data}
    if len(signals) != 1:
        raise SaladError(f"cathode: --data sets of several signal folders {sorted(signals)}")
    emb = read_embeddings(args.embeddings)
    evaluation = attach_latent(read_evaluation_set(args.evaluation_set), emb, args.evaluation_set)
    higgs = template.read_higgs(args.higgs, emb, template.settings(cfg["template"])["higgs_subsets"])
    references = None
    if args.signal and any(float(dataset_parts(p)[1]) > 0 for p in args.data):
        if not args.background:
            raise SaladError("cathode: --signal given without --background samples")
        subsets = classify.settings(cfg["classifier"])["reference_subsets"]
        # evaluation-only SM samples (salad.evalset) contribute their reference share `ref`
        region = cfg["regions"]["signal_region"]
        references = (
            classify.simulation(args.background, emb, [*subsets, "ref"], region),
            classify.simulation([args.signal], emb, subsets, region),
        )
    out = Path(args.output_dir)
    for path in args.data:
        run_dataset(path, emb, evaluation, higgs, references, cfg, out, args.seed_key, args.threads)
