"""Latent-space information check (paper A appendix A).

Three multi-class classifiers separate the process groups of all configured samples (SM groups
0..4 and every BSM group < 0 as classes), trained on the encoder-half `train` split (early
stopping on `val`) and scored on the `test` split:
- `bdt_latent`: LightGBM on the latent means of `information.setup`/`information.seed`;
- `bdt_raw`:    LightGBM on the nine Ref. [22]-style features (salad.baselines.ref22_features);
- `supervised`: the encoder contributor's particle-transformer backbone
  (salad.encoder.models.BACKBONES[encoder model]) with the output/projection heads replaced by
  an MLP + softmax, trained with cross-entropy on the encoder inputs (upper bound).
Classes are balanced by loss weights (the samples' event counts are a generation choice).

Outputs: confusion matrices (long table: classifier, true_group, pred_group, count, fraction;
rows normalised over the true class), a summary (accuracy, mean diagonal, mean background
diagonal per classifier), Markdown, and one figure with the three matrices.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from ..artifacts import provenance, write_parquet
from ..cli import setup_logging, stage_parser
from ..config import parse_stage_config
from ..contracts import latent_for, read_objects
from ..errors import SaladError
from ..features import ref22_features
from ..tables import information_md, write

log = logging.getLogger("salad.information")
CLASSIFIERS = ("bdt_latent", "bdt_raw", "supervised")


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-event weights making every class weigh the same in total."""
    counts = np.bincount(y, minlength=n_classes).astype(float)
    return (len(y) / (n_classes * np.maximum(counts, 1)))[y]


def train_bdt(
    x: np.ndarray, y: np.ndarray, split: np.ndarray, n_classes: int, cfg: Mapping, seed: int, threads: int = 1
) -> np.ndarray:
    """LightGBM multiclass on rows split=='train' (early stop on 'val'); predicted classes of all rows."""
    import lightgbm as lgb

    train, val = split == "train", split == "val"
    model = lgb.LGBMClassifier(
        objective="multiclass",
        num_class=n_classes,
        n_estimators=int(cfg["n_estimators"]),
        learning_rate=float(cfg["learning_rate"]),
        num_leaves=int(cfg["num_leaves"]),
        min_child_samples=int(cfg["min_child_samples"]),
        random_state=seed,
        n_jobs=threads,
        verbose=-1,
    )
    fit_kw = {}
    if val.any():
        fit_kw = {
            "eval_X": (x[val],),
            "eval_y": (y[val],),
            "eval_sample_weight": [class_weights(y[val], n_classes)],
            "callbacks": [lgb.early_stopping(int(cfg["early_stopping"]), verbose=False)],
        }
    model.fit(x[train], y[train], sample_weight=class_weights(y[train], n_classes), **fit_kw)
    return model.predict(x)


class Supervised(torch.nn.Module):
    """Encoder backbone (obj, evt, mask) -> h, then MLP head -> class logits."""

    def __init__(self, encoder_cfg: Mapping, n_classes: int):
        super().__init__()
        from .models import BACKBONES, mlp

        self.backbone = BACKBONES[encoder_cfg["model"]](encoder_cfg)
        self.head = mlp([self.backbone.out_dim, encoder_cfg["head_width"], n_classes])

    def forward(self, obj, evt, mask):
        return self.head(self.backbone(obj, evt, mask))


def train_supervised(
    objects: np.ndarray,
    hl: np.ndarray,
    y: np.ndarray,
    split: np.ndarray,
    n_classes: int,
    encoder_cfg: Mapping,
    cfg: Mapping,
    seed: int,
) -> np.ndarray:
    """Train Supervised with class-weighted CE (Adam, best `val` epoch); predicted classes of all rows."""
    from .data import Normaliser, padding_mask

    train, val = split == "train", split == "val"
    norm = Normaliser.fit(objects[train], hl[train])
    obj, evt = (torch.from_numpy(a) for a in norm.apply(objects, hl))
    mask = torch.from_numpy(padding_mask(objects))
    yt = torch.as_tensor(y, dtype=torch.long)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = Supervised(encoder_cfg, n_classes)
    counts = np.bincount(y[train], minlength=n_classes).astype(float)
    loss_fn = torch.nn.CrossEntropyLoss(
        weight=torch.as_tensor(len(y[train]) / (n_classes * np.maximum(counts, 1)), dtype=torch.float32)
    )
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]))
    tr = np.flatnonzero(train)
    va = np.flatnonzero(val) if val.any() else tr
    best, best_state = np.inf, None
    for epoch in range(int(cfg["epochs"])):
        model.train()
        for idx in torch.randperm(len(tr), generator=gen).split(int(cfg["batch_size"])):
            rows = torch.as_tensor(tr[idx.numpy()])
            loss = loss_fn(model(obj[rows], evt[rows], mask[rows]), yt[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            rows = torch.as_tensor(va)
            val_loss = float(loss_fn(model(obj[rows], evt[rows], mask[rows]), yt[rows]))
        log.info("supervised epoch %d: val loss %.4f", epoch, val_loss)
        if val_loss < best:
            best, best_state = val_loss, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        return torch.cat(
            [model(obj[i], evt[i], mask[i]).argmax(1) for i in torch.arange(len(y)).split(4096)]
        ).numpy()


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (n_classes, n_classes): rows true class, columns predicted class."""
    out = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(out, (y_true, y_pred), 1)
    return out


def confusion_table(name: str, counts: np.ndarray, groups: np.ndarray) -> pd.DataFrame:
    """Long table of a confusion matrix with fractions normalised over each true class."""
    frac = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    i, j = np.meshgrid(np.arange(len(groups)), np.arange(len(groups)), indexing="ij")
    return pd.DataFrame(
        {
            "classifier": name,
            "true_group": groups[i.ravel()],
            "pred_group": groups[j.ravel()],
            "count": counts.ravel(),
            "fraction": frac.ravel(),
        }
    )


def summary_row(name: str, counts: np.ndarray, groups: np.ndarray) -> dict:
    diag = np.diag(counts) / np.maximum(counts.sum(1), 1)
    return {
        "classifier": name,
        "accuracy": float(np.trace(counts) / max(counts.sum(), 1)),
        "mean_diagonal": float(diag.mean()),
        "background_diagonal": float(diag[groups >= 0].mean()),
        "signal_diagonal": float(diag[groups < 0].mean()) if (groups < 0).any() else float("nan"),
        "n_test": int(counts.sum()),
    }


def plot(matrices: Mapping[str, np.ndarray], groups: np.ndarray, path: str) -> None:
    """One panel per classifier: fraction of each true process group (rows) predicted as each
    group (columns), axes labelled with process names, one shared colour bar."""
    from .. import plotstyle as ps

    plt = ps.pyplot()
    names = [ps.group_label(g) for g in groups]
    n = len(matrices)
    fig, axes = plt.subplots(
        1,
        n,
        figsize=(0.55 * len(groups) * n + 4 * n + 1.5, 0.55 * len(groups) + 4.5),
        squeeze=False,
        constrained_layout=True,
    )
    image = None
    for ax, (name, counts) in zip(axes[0], matrices.items()):
        frac = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        image = ax.imshow(frac, vmin=0, vmax=1, cmap="Blues")
        for (r, c), v in np.ndenumerate(frac):
            ax.text(
                c, r, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white" if v > 0.5 else "black"
            )
        ax.set_xticks(range(len(groups)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(groups)), names)
        ax.minorticks_off()
        ax.set_xlabel("predicted process")
        ax.set_ylabel("true process")
        ax.set_title(
            {
                "bdt_latent": "BDT on the latent",
                "bdt_raw": "BDT on input features",
                "supervised": "supervised network",
            }.get(name, name),
            fontsize=13,
            pad=24,
        )
        ps.exp_label(ax)
    fig.colorbar(image, ax=list(axes[0]), label="fraction of the true process", shrink=0.8)
    ps.save(fig, path)


def run(
    events: pd.DataFrame,
    objects: np.ndarray,
    hl: np.ndarray,
    latent: np.ndarray,
    cfg: Mapping,
    encoder_cfg: Mapping,
    threads: int = 1,
) -> tuple[dict, np.ndarray]:
    """The three classifiers' test-split confusion matrices ({name: counts}, class group ids)."""
    groups, y = np.unique(events["group"].to_numpy(), return_inverse=True)
    split = events["subset"].to_numpy()
    test = split == "test"
    if not test.any() or not (split == "train").any():
        raise SaladError("information: need events in both the train and test splits")
    seed = int(cfg["seed"])
    preds = {
        "bdt_latent": train_bdt(latent, y, split, len(groups), cfg["bdt"], seed, threads),
        "bdt_raw": train_bdt(ref22_features(objects), y, split, len(groups), cfg["bdt"], seed, threads),
    }
    if cfg["supervised"]["enabled"]:
        preds["supervised"] = train_supervised(
            objects, hl, y, split, len(groups), encoder_cfg, cfg["supervised"], seed
        )
    return {name: confusion(y[test], p[test], len(groups)) for name, p in preds.items()}, groups


def encoder_settings(config: Mapping, overrides: Mapping) -> dict:
    """Encoder model settings: salad.encoder.setups.DEFAULTS <- encoder.defaults <- overrides."""
    from .setups import DEFAULTS

    return {**DEFAULTS, **(config.get("encoder", {}) or {}).get("defaults", {}), **overrides}


def cli(argv: list[str]) -> None:
    parser = stage_parser(__doc__, prog="salad information")
    parser.add_argument("--embedding", required=True)
    parser.add_argument("--preselected", nargs="+", required=True)
    parser.add_argument("--split", nargs="+", required=True)
    parser.add_argument("--confusion", required=True)
    parser.add_argument("--summary", required=True)
    parser.add_argument("--markdown", required=True)
    parser.add_argument("--plot", required=True)
    args = parser.parse_args(argv)
    setup_logging()
    torch.set_num_threads(args.threads)
    config = parse_stage_config(args.config)
    cfg = config["information"]
    events, objects, hl = read_objects(args.preselected, args.split)
    keep = events["subset"].isin(["train", "val", "test"]).to_numpy()
    events, objects, hl = events[keep].reset_index(drop=True), objects[keep], hl[keep]
    latent = latent_for(args.embedding, events["event_id"].to_numpy())
    matrices, groups = run(
        events,
        objects,
        hl,
        latent,
        cfg,
        encoder_settings(config, cfg["supervised"].get("model", {})),
        args.threads,
    )
    table = pd.concat([confusion_table(n, c, groups) for n, c in matrices.items()], ignore_index=True)
    summary = pd.DataFrame([summary_row(n, c, groups) for n, c in matrices.items()])
    prov = provenance("information", cfg)
    write_parquet(table, args.confusion, prov)
    write_parquet(summary, args.summary, prov)
    write(information_md(summary, table), args.markdown)
    plot(matrices, groups, args.plot)
    log.info("\n%s", summary.to_string(index=False))
