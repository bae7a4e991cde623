"""Information check: confusion matrices on synthetic classes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch

from salad.artifacts import read_parquet, write_parquet
from salad.contracts import ONEHOT_COLUMN as TYPES
from salad.encoder import information

torch.set_num_threads(1)
BDT = {
    "n_estimators": 60,
    "learning_rate": 0.2,
    "num_leaves": 7,
    "min_child_samples": 5,
    "early_stopping": 10,
}


def test_confusion_counts_and_table():
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0, 2])
    counts = information.confusion(y_true, y_pred, 3)
    np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    table = information.confusion_table("x", counts, np.array([-1, 0, 1]))
    frac = table.pivot(index="true_group", columns="pred_group", values="fraction")
    np.testing.assert_allclose(frac.sum(axis=1), 1.0)
    row = information.summary_row("x", counts, np.array([-1, 0, 1]))
    assert row["accuracy"] == 5 / 7 and row["signal_diagonal"] == 0.5
    assert row["background_diagonal"] == (1.0 + 2 / 3) / 2


def test_bdt_separates_informative_features_only():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 300)
    split = rng.choice(["train", "val", "test"], len(y), p=[0.6, 0.2, 0.2])
    good = np.eye(3)[y] * 3 + rng.normal(size=(len(y), 3))
    noise = rng.normal(size=(len(y), 3))
    test = split == "test"

    def diag(x):
        pred = information.train_bdt(x, y, split, 3, BDT, 0)[test]
        return np.diag(information.confusion(y[test], pred, 3)).sum() / test.sum()

    assert diag(good) > 0.85
    assert diag(noise) < 0.5


def _synthetic(tmp_path, n=240):
    """Three samples whose jet multiplicity and leading-jet pT differ; latent = noisy class."""
    rng = np.random.default_rng(1)
    pre, split, ids, lat = [], [], [], []
    for code, (sample, group, njet, pt) in enumerate(
        [("yy", 0, 0, 40.0), ("ttH", 4, 4, 120.0), ("Y400", -6, 1, 300.0)], start=1
    ):
        obj = np.zeros((n, 11, 12), np.float32)
        for j in range(njet):
            obj[:, j, 0] = rng.normal(pt / (j + 1), 10.0, n).clip(20)
            obj[:, j, 1] = rng.normal(size=n)
            obj[:, j, TYPES["jet"]] = 1.0
        obj[:, 10, 0] = rng.exponential(20, n)
        obj[:, 10, TYPES["met"]] = 1.0
        eid = code * 10**9 + np.arange(n)
        write_parquet(
            pd.DataFrame(
                {
                    "event_id": eid,
                    "sample": sample,
                    "group": np.int8(group),
                    "weight": 1.0,
                    "dr_yy": rng.uniform(0.5, 3, n).astype(np.float32),
                    "pt_yy": rng.exponential(40, n).astype(np.float32),
                    "objects": list(obj.reshape(n, -1)),
                }
            ),
            tmp_path / f"p{code}.parquet",
            {},
        )
        write_parquet(
            pd.DataFrame(
                {
                    "event_id": eid,
                    "subset": rng.choice(["train", "val", "test", "data"], n, p=[0.5, 0.15, 0.2, 0.15]),
                }
            ),
            tmp_path / f"s{code}.parquet",
            {},
        )
        pre.append(str(tmp_path / f"p{code}.parquet"))
        split.append(str(tmp_path / f"s{code}.parquet"))
        ids.append(eid)
        lat.append(np.eye(3)[code - 1] * 2.5 + rng.normal(size=(n, 3)))
    lat = np.concatenate(lat)
    write_parquet(
        pd.DataFrame(
            {"event_id": np.concatenate(ids), **{f"z{i}": lat[:, i].astype(np.float32) for i in range(3)}}
        ),
        tmp_path / "emb.parquet",
        {},
    )
    return pre, split


def test_cli_three_classifiers(tmp_path):
    pre, split = _synthetic(tmp_path)
    cfg = {
        "information": {
            "seed": 0,
            "bdt": BDT,
            "supervised": {
                "enabled": True,
                "epochs": 4,
                "batch_size": 64,
                "lr": 3e-3,
                "model": {
                    "width": 16,
                    "heads": 2,
                    "particle_blocks": 1,
                    "class_blocks": 1,
                    "hl_width": 8,
                    "head_width": 16,
                },
            },
        },
        "encoder": {},
    }
    out = {k: str(tmp_path / f"{k}.out") for k in ("confusion", "summary", "markdown", "plot")}
    information.cli(
        [
            "--embedding",
            str(tmp_path / "emb.parquet"),
            "--preselected",
            *pre,
            "--split",
            *split,
            *[a for k, v in out.items() for a in (f"--{k}", v)],
            "--config",
            json.dumps(cfg),
        ]
    )
    summary = read_parquet(out["summary"], None).set_index("classifier")
    assert list(summary.index) == list(information.CLASSIFIERS)
    assert (summary["mean_diagonal"] > 0.8).all()  # each input carries the class information
    conf = read_parquet(out["confusion"], None)
    assert set(conf["true_group"]) == {0, 4, -6} and len(conf) == 27
    n_test = summary["n_test"].iloc[0]
    assert all(conf[conf["classifier"] == c]["count"].sum() == n_test for c in information.CLASSIFIERS)
    assert open(out["plot"], "rb").read(4) == b"\x89PNG"
