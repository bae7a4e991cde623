"""Linear evaluation of a frozen latent (paper B sec. V-C).

One linear layer (d -> n_classes) on the latent means of background events (process group
0..4 as classes), trained with cross-entropy (full-batch L-BFGS, L2 `weight_decay`; plain CE
as in paper B unless `balanced: true` asks for class-balanced weights) on k-1 folds and scored
on the held-out fold (stratified k-fold over the encoder-half events of `linear_eval.subsets`).

Per encoder training (one row): representation, seed, trained_on_signals, dim, n_events,
n_classes, folds, accuracy, accuracy_sem, balanced_accuracy, balanced_accuracy_sem (means and
SEMs over the probe folds). The collected table (`summarize_runs`) reports, per
representation, plain accuracy as mean +- standard error over the encoder trainings (seeds),
as paper B does over its 5 cross-validated encoders; balanced accuracy is an extra column.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import StratifiedKFold

from .artifacts import provenance, read_parquet, write_parquet
from .cli import setup_logging
from .config import parse_stage_config
from .contracts import EVENT_COLUMNS, latent_for, read_events
from .errors import SaladError
from .features import Standardiser
from .tables import linear_eval_md, summarize_runs, write

log = logging.getLogger("salad.linear_eval")


def train_linear(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    weight_decay: float = 1e-4,
    balanced: bool = True,
    max_iter: int = 200,
) -> torch.nn.Linear:
    """Fit a linear softmax classifier on standardised x (n, d) with labels y (n,) in 0..C-1."""
    xt = torch.as_tensor(x, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.long)
    counts = np.bincount(y, minlength=n_classes).astype(float)
    cw = (
        np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)
        if balanced
        else np.ones(n_classes)
    )
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.as_tensor(cw, dtype=torch.float64))
    layer = torch.nn.Linear(x.shape[1], n_classes).double()
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    opt = torch.optim.LBFGS(
        layer.parameters(),
        max_iter=max_iter,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        loss = loss_fn(layer(xt), yt) + weight_decay * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return layer


def evaluate(z: np.ndarray, labels: np.ndarray, cfg: Mapping, seed: int) -> dict:
    """k-fold linear evaluation of latent z (n, d) with integer class labels (n,)."""
    z = np.asarray(z, np.float64)  # float32 latents too: the probe is fitted in float64
    classes, y = np.unique(labels, return_inverse=True)
    folds = int(cfg["folds"])
    if len(classes) < 2:
        raise SaladError("linear_eval: need at least two background classes")
    if np.bincount(y).min() < folds:
        raise SaladError(f"linear_eval.folds: a class has fewer than {folds} events")
    acc, bacc = [], []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(z, y):
        scaler = Standardiser.fit(z[train])
        layer = train_linear(
            scaler.transform(z[train]),
            y[train],
            len(classes),
            float(cfg["weight_decay"]),
            bool(cfg["balanced"]),
            int(cfg["max_iter"]),
        )
        with torch.no_grad():
            pred = layer(torch.as_tensor(scaler.transform(z[test]))).argmax(1).numpy()
        acc.append(float((pred == y[test]).mean()))
        bacc.append(float(np.mean([(pred[y[test] == c] == c).mean() for c in np.unique(y[test])])))
    sem = lambda v: float(np.std(v, ddof=1) / np.sqrt(len(v)))  # noqa: E731
    return {
        "dim": z.shape[1],
        "n_events": len(z),
        "n_classes": len(classes),
        "folds": folds,
        "accuracy": float(np.mean(acc)),
        "accuracy_sem": sem(acc),
        "balanced_accuracy": float(np.mean(bacc)),
        "balanced_accuracy_sem": sem(bacc),
    }


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="salad linear-eval", description=__doc__)
    parser.add_argument("--embedding", help="embeddings Parquet (evaluate mode)")
    parser.add_argument("--preselected", nargs="+")
    parser.add_argument("--split", nargs="+")
    parser.add_argument("--name", help="representation name")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--collect", nargs="+", help="collect mode: per-representation tables")
    parser.add_argument("--markdown", help="collect mode: Markdown output")
    parser.add_argument("--output", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--trained-on-signals",
        action="store_true",
        help="label the representation as trained on signal samples",
    )
    parser.add_argument("--config", help="JSON: {linear_eval: {...}}")
    args = parser.parse_args(argv)
    setup_logging()
    torch.set_num_threads(args.threads)
    cfg = parse_stage_config(args.config)["linear_eval"]
    if args.collect:
        for p in args.collect:
            read_parquet(p, {"representation": "str", "accuracy": "float", "accuracy_sem": "float"})
        runs = pd.concat([read_parquet(p, None) for p in args.collect], ignore_index=True)
        table = summarize_runs(runs)
        write_parquet(table, args.output, provenance("linear-eval", cfg))
        if args.markdown:
            write(linear_eval_md(table), args.markdown)
        return
    if not (args.embedding and args.preselected and args.split and args.name):
        parser.error("--embedding, --preselected, --split and --name are required")
    events = read_events(args.preselected, args.split, EVENT_COLUMNS)
    events["group"] = events["group"].astype(int)
    events = events[(events["group"] >= 0) & events["subset"].isin(cfg["subsets"])]
    if cfg.get("max_events") and len(events) > cfg["max_events"]:
        events = events.sample(n=int(cfg["max_events"]), random_state=int(cfg["seed"]))
    z = latent_for(args.embedding, events["event_id"].to_numpy(), means=True)
    row = {
        "representation": args.name,
        "seed": args.seed,
        "trained_on_signals": bool(args.trained_on_signals),
        **evaluate(z, events["group"].to_numpy(), cfg, int(cfg["seed"]) + args.seed),
    }
    log.info("%s/%d: accuracy %.4f +- %.4f", args.name, args.seed, row["accuracy"], row["accuracy_sem"])
    write_parquet(pd.DataFrame([row]), args.output, provenance("linear-eval", cfg, name=args.name))
