"""classify: k-fold CWoLa LightGBM classifiers (SR data vs template) and references.

CWoLa (`classify cwola`): SR pseudo-data (label 1, weight 1) against the template (label 0,
its weights rescaled so both classes carry equal total weight), features = latent only (never
m_yy). Events are split into `folds` folds (the same assignment for every BDT of the job); the
model of fold k trains on the other folds (of which `val_fraction` is held out for LightGBM
early stopping) and scores only fold k, so every SR data event and every template event gets
an out-of-fold score. Sideband data events (never trained on) get a random fold and are scored
by that fold's model, so SR and SB scores share one distribution (for the sculpting check).
`bdts` classifiers with different seeds per job.

References (`classify reference`, evaluation only; they use simulation truth):
- `iad`: idealized anomaly detector, the same k-fold CWoLa but against the true SR
  background from simulation (SM events of groups 0-4 from `reference_subsets` of the encoder
  half and the `ref` share of evaluation-only samples, weighted to their expected yields)
  instead of the template.
- `sup`: fully supervised, simulated signal vs simulated SM background in the SR (encoder
  half), applied to the SR pseudo-data (disjoint from the training events by construction).

Score Parquet (contract): role str (`sr`, `sb`, `template`, `eval`), event_id int64 (-1 for
template rows), myy float32 [GeV], weight float64 (evaluation rows: expected events per fb^-1),
fold int64 (model that scored the row; -1 = mean of the fold models, evaluation rows),
score_0..score_{n-1} float64 (CWoLa) or iad_0.., sup_0.. (reference; roles `sr`, `eval`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..artifacts import provenance, read_parquet, write_parquet
from ..cli import add_sample_pairs, parse_stage_args, stable_seed, stage_parser
from ..config import merge_defaults
from ..contracts import (
    attach_latent,
    in_signal_region,
    latent_columns,
    read_evaluation_set,
    read_template,
)
from ..errors import SaladError
from .data import LOG, read_job, simulation_events

DEFAULTS = {
    "folds": 5,
    "bdts": 2,
    "seed": 0,
    "val_fraction": 0.2,
    "early_stopping_rounds": 20,
    "reference_subsets": ["val", "test"],
    "lightgbm": {
        "n_estimators": 300,
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_child_samples": 20,
        "subsample": 0.8,
        "colsample_bytree": 1.0,
        "reg_lambda": 0.0,
        "max_depth": -1,
    },
}


def settings(cfg: Mapping | None) -> dict:
    """Classifier settings: DEFAULTS <- config `classifier` (unknown keys are an error)."""
    return merge_defaults("classifier", cfg, DEFAULTS)


def fit_bdt(X, y, w, cfg: Mapping, seed: int, threads: int = 1):
    """LightGBM binary classifier; `val_fraction` of the rows held out for early stopping."""
    import lightgbm as lgb

    cfg = settings(cfg)
    params = dict(cfg["lightgbm"])
    model = lgb.LGBMClassifier(
        objective="binary",
        random_state=seed,
        n_jobs=max(1, threads),
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
        subsample_freq=1 if params["subsample"] < 1 else 0,
        **params,
    )
    rng = np.random.default_rng(seed)
    val = rng.uniform(size=len(y)) < cfg["val_fraction"]
    if cfg["early_stopping_rounds"] > 0 and val.any() and (~val).any():
        model.fit(
            X[~val],
            y[~val],
            sample_weight=w[~val],
            eval_X=(X[val],),
            eval_y=(y[val],),
            eval_sample_weight=[w[val]],
            callbacks=[lgb.early_stopping(cfg["early_stopping_rounds"], verbose=False)],
        )
    else:
        model.fit(X, y, sample_weight=w)
    return model


def _predict(model, X) -> np.ndarray:
    return model.predict_proba(X)[:, 1] if len(X) else np.zeros(0)


def assign_folds(n: int, k: int, rng) -> np.ndarray:
    """Balanced random fold index in [0, k) for n rows."""
    return rng.permutation(np.arange(n) % k)


def kfold_scores(
    X_pos,
    X_neg,
    w_neg,
    cfg: Mapping,
    seeds: Sequence[int],
    fold_seed: int,
    threads: int = 1,
    X_extra=None,
    keep_models: bool = False,
    X_eval=None,
) -> dict:
    """Out-of-fold scores of len(seeds) k-fold classifiers, positives (weight 1) vs negatives.

    Returns {pos: (n_pos, n_seeds), neg: (n_neg, n_seeds), extra: (n_extra, n_seeds),
    eval: (n_eval, n_seeds), pos_fold, neg_fold, extra_fold, and if keep_models: models
    [[model per fold] per seed], train_rows [rows of concat(X_pos, X_neg) each fold model was
    fitted on (incl. early-stopping rows)]}. Extra rows (not trained on, e.g. sideband data)
    get a random fold and that fold's model's score, so their score distribution matches the
    out-of-fold one of the SR data (for the sculpting check). Evaluation rows (an independent
    set, salad.evalset) get the mean of the k fold models: the classifier as it would be
    applied to new data.
    """
    cfg = settings(cfg)
    k = int(cfg["folds"])
    X_pos, X_neg = np.asarray(X_pos, np.float64), np.asarray(X_neg, np.float64)
    if len(X_pos) < k or len(X_neg) < k:
        raise SaladError(
            f"classify: {len(X_pos)} positive / {len(X_neg)} negative events, fewer than folds = {k}"
        )
    w_neg = np.asarray(w_neg, np.float64)
    if not (np.isfinite(w_neg).all() and (w_neg >= 0).all() and w_neg.sum() > 0):
        raise SaladError("classify: negative-class weights must be finite, >= 0, not all 0")
    w_neg = w_neg * len(X_pos) / w_neg.sum()
    rng = np.random.default_rng(fold_seed)
    pos_fold, neg_fold = assign_folds(len(X_pos), k, rng), assign_folds(len(X_neg), k, rng)
    X = np.concatenate([X_pos, X_neg])
    y = np.concatenate([np.ones(len(X_pos)), np.zeros(len(X_neg))])
    w = np.concatenate([np.ones(len(X_pos)), w_neg])
    fold = np.concatenate([pos_fold, neg_fold])
    X_extra = np.zeros((0, X.shape[1])) if X_extra is None else np.asarray(X_extra, np.float64)
    extra_fold = assign_folds(len(X_extra), k, rng)
    X_eval = np.zeros((0, X.shape[1])) if X_eval is None else np.asarray(X_eval, np.float64)
    out = {
        "pos": np.empty((len(X_pos), len(seeds))),
        "neg": np.empty((len(X_neg), len(seeds))),
        "extra": np.empty((len(X_extra), len(seeds))),
        "eval": np.zeros((len(X_eval), len(seeds))),
        "pos_fold": pos_fold,
        "neg_fold": neg_fold,
        "extra_fold": extra_fold,
        "models": [],
        "train_rows": [],
    }
    oof = np.empty(len(X))
    for j, seed in enumerate(seeds):
        models = []
        for f in range(k):
            test = fold == f
            model = fit_bdt(X[~test], y[~test], w[~test], cfg, seed=seed + f, threads=threads)
            oof[test] = _predict(model, X[test])
            out["extra"][extra_fold == f, j] = _predict(model, X_extra[extra_fold == f])
            out["eval"][:, j] += _predict(model, X_eval) / k
            models.append(model)
            if keep_models and j == 0:
                out["train_rows"].append(np.nonzero(~test)[0])
        out["pos"][:, j], out["neg"][:, j] = oof[: len(X_pos)], oof[len(X_pos) :]
        if keep_models:
            out["models"].append(models)
    return out


def bdt_seeds(cfg: Mapping, key: str) -> list[int]:
    cfg = settings(cfg)
    return [stable_seed(cfg["seed"], key, "bdt", b) for b in range(int(cfg["bdts"]))]


def cwola(
    data: pd.DataFrame,
    template: pd.DataFrame,
    sr: np.ndarray,
    sb: np.ndarray,
    cfg: Mapping,
    key: str,
    threads: int = 1,
    evaluation: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Score frame (module contract) for SR data vs template: SR data and template out of
    fold, SB data by a random fold's model, the evaluation set (event_id, myy, weight, latent;
    optional) by the mean of the fold models."""
    cols = latent_columns(data)
    missing = set(cols) - set(template.columns)
    if missing:
        raise SaladError(f"template: missing latent column(s) {sorted(missing)}")
    seeds = bdt_seeds(cfg, key)
    start = time.perf_counter()
    res = kfold_scores(
        data.loc[sr, cols].to_numpy(),
        template[cols].to_numpy(),
        template["weight"].to_numpy(),
        cfg,
        seeds,
        fold_seed=stable_seed(settings(cfg)["seed"], key, "folds"),
        threads=threads,
        X_extra=data.loc[sb, cols].to_numpy(),
        X_eval=None if evaluation is None else evaluation[cols].to_numpy(),
    )
    LOG.info(
        "CWoLa: %d BDTs x %d folds on %d SR data vs %d template rows in %.1f s",
        len(seeds),
        settings(cfg)["folds"],
        sr.sum(),
        len(template),
        time.perf_counter() - start,
    )
    parts = [
        _score_frame(
            "sr", data.loc[sr, "event_id"], data.loc[sr, "myy"], 1.0, res["pos_fold"], res["pos"], "score"
        ),
        _score_frame(
            "sb", data.loc[sb, "event_id"], data.loc[sb, "myy"], 1.0, res["extra_fold"], res["extra"], "score"
        ),
        _score_frame(
            "template", -1, template["myy"], template["weight"], res["neg_fold"], res["neg"], "score"
        ),
    ]
    if evaluation is not None:
        parts.append(_evaluation_frame(evaluation, {"score": res["eval"]}))
    return pd.concat(parts, ignore_index=True)


def _evaluation_frame(evaluation: pd.DataFrame, scores: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Rows of role `eval` (fold -1: fold-mean scores) with one column block per prefix."""
    frame = _score_frame(
        "eval",
        evaluation["event_id"],
        evaluation["myy"],
        evaluation["weight"],
        -1,
        next(iter(scores.values())),
        next(iter(scores)),
    )
    for prefix, values in list(scores.items())[1:]:
        for j in range(values.shape[1]):
            frame[f"{prefix}_{j}"] = values[:, j]
    return frame


def _score_frame(role, event_id, myy, weight, fold, scores, prefix) -> pd.DataFrame:
    n = len(myy)
    frame = pd.DataFrame(
        {
            "role": role,
            "event_id": np.broadcast_to(np.asarray(event_id, np.int64), n),
            "myy": np.asarray(myy, np.float32),
            "weight": np.broadcast_to(np.asarray(weight, np.float64), n),
            "fold": np.broadcast_to(np.asarray(fold, np.int64), n),
        }
    )
    for j in range(scores.shape[1]):
        frame[f"{prefix}_{j}"] = scores[:, j]
    return frame


def score_columns(frame: pd.DataFrame, prefix: str = "score") -> list[str]:
    """score_0.. (or iad_0.., sup_0..) columns in index order."""
    cols = [c for c in frame.columns if c.startswith(prefix + "_") and c[len(prefix) + 1 :].isdigit()]
    return sorted(cols, key=lambda c: int(c[len(prefix) + 1 :]))


def read_scores(path, prefixes: Sequence[str] = ("score",)) -> pd.DataFrame:
    """A score artifact, checked against the contract (score columns of each prefix)."""
    frame = read_parquet(
        path, {"role": "str", "event_id": "int", "myy": "float", "weight": "float", "fold": "int"}
    )
    names = pd.DataFrame(columns=_names(path))
    cols = []
    for prefix in prefixes:
        found = score_columns(names, prefix)
        if not found:
            raise SaladError(f"{path}: no {prefix}_<n> columns")
        cols += found
    scores = read_parquet(path, {c: "float" for c in cols})
    return pd.concat([frame, scores], axis=1)


def _names(path):
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).schema_arrow.names


def reference(
    data: pd.DataFrame,
    sr: np.ndarray,
    background: pd.DataFrame,
    signal: pd.DataFrame,
    signal_region,
    cfg: Mapping,
    key: str,
    threads: int = 1,
    evaluation: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """IAD and supervised scores for the SR data events (module contract, role `sr`) and, if
    given, the evaluation set (role `eval`; IAD: mean of its fold models)."""
    cols = latent_columns(data)
    bkg = background[in_signal_region(background["myy"], signal_region)]
    sig = signal[in_signal_region(signal["myy"], signal_region)]
    w_bkg = (bkg["weight"] / bkg["subset_fraction"]).to_numpy()
    seeds = bdt_seeds(cfg, key + "/reference")
    X_eval = None if evaluation is None else evaluation[cols].to_numpy()
    iad = kfold_scores(
        data.loc[sr, cols].to_numpy(),
        bkg[cols].to_numpy(),
        w_bkg,
        cfg,
        seeds,
        fold_seed=stable_seed(settings(cfg)["seed"], key, "folds"),
        threads=threads,
        X_eval=X_eval,
    )
    LOG.info(
        "idealized detector: %d SR data vs %d simulated SR background events (%.0f expected per fb^-1)",
        sr.sum(),
        len(bkg),
        w_bkg.sum(),
    )
    if len(sig) < 10:
        raise SaladError(f"classify reference: only {len(sig)} simulated signal events in the SR")
    X = np.concatenate([sig[cols].to_numpy(), bkg[cols].to_numpy()])
    y = np.concatenate([np.ones(len(sig)), np.zeros(len(bkg))])
    w = np.concatenate([np.full(len(sig), 1.0 / len(sig)), w_bkg / w_bkg.sum()])
    models = [fit_bdt(X, y, w * len(X), cfg, s, threads) for s in seeds]
    sup = np.column_stack([_predict(m, data.loc[sr, cols].to_numpy()) for m in models])
    frame = _score_frame(
        "sr", data.loc[sr, "event_id"], data.loc[sr, "myy"], 1.0, iad["pos_fold"], iad["pos"], "iad"
    )
    for j in range(sup.shape[1]):
        frame[f"sup_{j}"] = sup[:, j]
    if evaluation is None:
        return frame
    sup_eval = np.column_stack([_predict(m, X_eval) for m in models])
    return pd.concat(
        [frame, _evaluation_frame(evaluation, {"iad": iad["eval"], "sup": sup_eval})], ignore_index=True
    )


def simulation(pairs, emb, subsets, signal_region=None) -> pd.DataFrame:
    """Simulation events of (preselected, split) path pairs in `subsets`, with their latent;
    only those with m_yy in `signal_region` [GeV] if given (all the references use: an
    evaluation-only sample is embedded there only). `subset_fraction` keeps the whole-sample
    normalisation."""
    frames = []
    for p, s in pairs:
        events = simulation_events(p, s, subsets)
        if signal_region is not None:
            events = events[in_signal_region(events["myy"].to_numpy(), signal_region)]
        frames.append(attach_latent(events, emb, str(p)))
    if not frames:
        raise SaladError("classify reference: no simulation samples given")
    return pd.concat(frames, ignore_index=True)


def cli(argv=None) -> None:
    parser = stage_parser("CWoLa classifiers (cwola) or evaluation references (reference).")
    parser.add_argument("mode", choices=["cwola", "reference"])
    parser.add_argument("--embeddings", required=True)
    parser.add_argument("--data", required=True, help="pseudo-data Parquet")
    parser.add_argument("--template", help="sample_sr output (cwola)")
    add_sample_pairs(parser, "--background", "SM sample (reference; repeatable)")
    add_sample_pairs(parser, "--signal", "signal sample (reference)", repeat=False)
    parser.add_argument("--evaluation-set", help="results/evaluation/set.parquet: also score it")
    parser.add_argument("--output", required=True)
    parser.add_argument("--seed-key", default="")
    args, cfg = parse_stage_args(parser, argv)
    ccfg = settings(cfg.get("classifier"))
    emb, data, sr, sb = read_job(args.embeddings, args.data, cfg)
    evaluation = None
    if args.evaluation_set:
        evaluation = attach_latent(read_evaluation_set(args.evaluation_set), emb, args.evaluation_set)
    if args.mode == "cwola":
        if not args.template:
            raise SaladError("classify cwola: --template is required")
        cols = latent_columns(emb)
        template = read_template(args.template, cols)
        frame = cwola(data, template, sr, sb, ccfg, args.seed_key, args.threads, evaluation)
    else:
        if not args.signal:
            raise SaladError("classify reference: --signal is required")
        subsets = ccfg["reference_subsets"]
        # evaluation-only SM samples (salad.evalset) contribute their reference share `ref`
        region = cfg["regions"]["signal_region"]
        frame = reference(
            data,
            sr,
            simulation(args.background, emb, [*subsets, "ref"], region),
            simulation([args.signal], emb, subsets, region),
            cfg["regions"]["signal_region"],
            ccfg,
            args.seed_key,
            args.threads,
            evaluation,
        )
    write_parquet(frame, args.output, provenance(f"classify-{args.mode}", cfg))
