"""Linear evaluation: separable latents score ~1, structureless latents score chance."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from salad import linear_eval
from salad.artifacts import read_parquet, write_parquet

torch.set_num_threads(1)
CFG = {
    "folds": 5,
    "weight_decay": 1e-4,
    "balanced": True,
    "max_iter": 100,
    "seed": 0,
    "subsets": ["val", "test"],
    "max_events": None,
}


def _classes(n_per=200, k=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng, np.repeat(np.arange(k), n_per)


def test_linearly_separable_latent_scores_high():
    rng, y = _classes()
    centres = np.array([[4, 0, 0], [-4, 0, 0], [0, 4, 0], [0, -4, 0]])
    z = (centres[y] + rng.normal(size=(len(y), 3))).astype(np.float32)  # float32 as embeddings are
    out = linear_eval.evaluate(z, y, CFG, seed=1)
    assert out["accuracy"] > 0.97 and out["balanced_accuracy"] > 0.97
    assert 0 <= out["accuracy_sem"] < 0.02 and out["folds"] == 5 and out["dim"] == 3


def test_non_separable_latent_is_at_chance():
    rng, y = _classes()
    z = rng.normal(size=(len(y), 3))  # no information about y
    out = linear_eval.evaluate(z, y, CFG, seed=1)
    assert abs(out["balanced_accuracy"] - 0.25) < 0.08
    assert out["accuracy_sem"] > 0


def test_xor_is_not_linearly_separable():
    """A radial (XOR-like) structure a linear probe cannot use, unlike a nonlinear one."""
    rng, y = _classes(k=2, n_per=400)
    z = rng.normal(size=(len(y), 2))
    y = (z[:, 0] * z[:, 1] > 0).astype(int)
    assert linear_eval.evaluate(z, y, CFG, seed=2)["accuracy"] < 0.65


def test_cli_reads_contracts(tmp_path):
    rng = np.random.default_rng(0)
    pre, split, ids_all, z_all = [], [], [], []
    for code, (sample, group) in enumerate([("yy", 0), ("ggH", 1), ("sig", -1)], start=1):
        ids = code * 10**9 + np.arange(300)
        write_parquet(
            pd.DataFrame({"event_id": ids, "sample": sample, "group": np.int8(group), "weight": 1.0}),
            tmp_path / f"p{code}.parquet",
            {},
        )
        write_parquet(
            pd.DataFrame({"event_id": ids, "subset": rng.choice(["train", "test"], 300)}),
            tmp_path / f"s{code}.parquet",
            {},
        )
        pre.append(str(tmp_path / f"p{code}.parquet"))
        split.append(str(tmp_path / f"s{code}.parquet"))
        ids_all.append(ids)
        z_all.append(rng.normal(3.0 * code, 1.0, size=(300, 2)))
    z = np.concatenate(z_all)
    write_parquet(
        pd.DataFrame(
            {
                "event_id": np.concatenate(ids_all),
                "z0": z[:, 0].astype(np.float32),
                "z1": z[:, 1].astype(np.float32),
            }
        ),
        tmp_path / "emb.parquet",
        {},
    )
    cfg = json.dumps({"linear_eval": {**CFG, "subsets": ["test"]}})
    linear_eval.cli(
        [
            "--embedding",
            str(tmp_path / "emb.parquet"),
            "--preselected",
            *pre,
            "--split",
            *split,
            "--name",
            "toy",
            "--seed",
            "1",
            "--output",
            str(tmp_path / "le.parquet"),
            "--config",
            cfg,
            "--trained-on-signals",
        ]
    )
    row = read_parquet(tmp_path / "le.parquet", None).iloc[0]
    assert bool(row["trained_on_signals"])
    assert row["n_classes"] == 2 and row["accuracy"] > 0.9  # signal group never enters
    assert 250 < row["n_events"] < 350  # only the test subset of 2x300
    linear_eval.cli(
        [
            "--collect",
            str(tmp_path / "le.parquet"),
            "--output",
            str(tmp_path / "all.parquet"),
            "--markdown",
            str(tmp_path / "all.md"),
            "--config",
            cfg,
        ]
    )
    assert "toy" in (tmp_path / "all.md").read_text()
    table = read_parquet(tmp_path / "all.parquet", None)
    assert list(table["representation"]) == ["toy"] and table["seeds"].iloc[0] == 1


def test_summarize_runs_sem_over_encoder_seeds():
    runs = pd.DataFrame(
        {
            "representation": ["a", "a", "a", "b"],
            "seed": [1, 2, 3, 1],
            "trained_on_signals": [False, False, False, True],
            "dim": [4, 4, 4, 6],
            "accuracy": [0.60, 0.70, 0.80, 0.5],
            "accuracy_sem": [0.01, 0.02, 0.03, 0.04],
            "balanced_accuracy": [0.5, 0.5, 0.8, 0.4],
            "balanced_accuracy_sem": 0.0,
        }
    )
    out = linear_eval.summarize_runs(runs).set_index("representation")
    assert out.loc["a", "accuracy"] == pytest.approx(0.70)
    assert out.loc["a", "accuracy_sem"] == pytest.approx(0.1 / np.sqrt(3))  # std(ddof=1)=0.1
    assert out.loc["a", "balanced_accuracy_sem"] == pytest.approx(
        np.std([0.5, 0.5, 0.8], ddof=1) / np.sqrt(3)
    )
    assert out.loc["a", "accuracy_fold_sem"] == pytest.approx(0.02) and out.loc["a", "seeds"] == 3
    assert np.isnan(out.loc["b", "accuracy_sem"]) and bool(out.loc["b", "trained_on_signals"])


def test_plain_cross_entropy_differs_from_balanced_on_imbalanced_classes():
    """Plain CE (paper B) maximises plain accuracy; class weights trade it for balanced accuracy."""
    rng = np.random.default_rng(4)
    y = np.r_[np.zeros(1800, int), np.ones(200, int)]
    z = rng.normal(size=(2000, 1)) + 1.0 * y[:, None]  # overlapping classes
    plain = linear_eval.evaluate(z, y, {**CFG, "balanced": False}, seed=0)
    bal = linear_eval.evaluate(z, y, {**CFG, "balanced": True}, seed=0)
    assert plain["accuracy"] > bal["accuracy"] + 0.05
    assert bal["balanced_accuracy"] > plain["balanced_accuracy"] + 0.05
