"""Baselines: feature definitions on hand-built events, embeddings contract, VAE training."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from salad import baselines
from salad.artifacts import read_parquet, write_parquet
from salad.contracts import ONEHOT_COLUMN, read_latent
from salad.features import REF22_FEATURES, leading_features, ref22_features

torch.set_num_threads(1)
CFG = {
    "seed": 0,
    "leading_dim": 6,
    "vae": {
        "latent_dim": 3,
        "epochs": 6,
        "batch_size": 128,
        "lr": 3e-3,
        "beta": 0.8,
        "output": "mean_logvar",
    },
}


def _obj(kind, pt, eta=0.0, phi=0.0, mass=0.0, btag=0.0):
    row = np.zeros(12, np.float32)
    row[[0, 1, 2, 3, 4]] = pt, eta, phi, mass, btag
    row[ONEHOT_COLUMN[kind]] = 1.0
    return row


def _event(rows):
    """11x12 tensor in the contract layout: 4 jets, 2 fat jets, 2 e, 2 mu, MET (zero padded)."""
    slots = {"jet": [0, 1, 2, 3], "fatjet": [4, 5], "electron": [6, 7], "muon": [8, 9], "met": [10]}
    out = np.zeros((11, 12), np.float32)
    used = {k: 0 for k in slots}
    for kind, *args in rows:
        out[slots[kind][used[kind]]] = _obj(kind, *args)
        used[kind] += 1
    return out


def test_ref22_and_leading_on_known_event():
    ev = _event(
        [
            ("jet", 100.0, 0.0, 0.0, 0.0, 1.0),
            ("jet", 50.0, 0.0, np.pi, 0.0, 0.0),
            ("muon", 30.0),
            ("electron", 20.0),
            ("met", 40.0),
            ("fatjet", 200.0),
        ]
    )
    f = ref22_features(ev[None])[0]
    named = dict(zip(REF22_FEATURES, f))
    assert named["met"] == 40 and named["ht"] == 150 and named["n_jets"] == 2
    assert named["n_bjets"] == 1 and named["n_leptons"] == 2
    assert named["pt_j1"] == 100 and named["pt_j2"] == 50 and named["pt_l1"] == 30
    assert named["m_jj"] == pytest.approx(2 * np.sqrt(100 * 50), rel=1e-5)  # back to back, eta 0
    lead = leading_features(ev[None], 6)[0]
    np.testing.assert_allclose(lead, [40, 100, 20, 30, 200, 50])  # MET, j1, e1, mu1, J1, j2
    empty = ref22_features(np.zeros((1, 11, 12), np.float32))[0]
    assert not empty.any()


def test_standardize_uses_fit_rows_and_guards_constants():
    x = np.array([[1.0, 5.0], [3.0, 5.0], [100.0, 7.0]])
    out = baselines.standardize(x, np.array([True, True, False]))
    np.testing.assert_allclose(out[:2, 0], [-1, 1])
    np.testing.assert_allclose(out[:2, 1], [0, 0])
    assert np.isfinite(out).all()


def test_vae_loss_decreases():
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(1200, 2))
    x = np.tanh(latent @ rng.normal(size=(2, 20))) + 0.05 * rng.normal(size=(1200, 20))
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    model, history = baselines.train_vae(x[:1000], x[1000:], {**CFG["vae"], "epochs": 15}, seed=1)
    losses = [h["train_loss"] for h in history]
    assert losses[-1] < 0.8 * losses[0]
    assert min(h["val_loss"] for h in history) < history[0]["val_loss"]
    emb = baselines.vae_embed(model, x, "mean_logvar")
    assert emb.shape == (1200, 6) and np.isfinite(emb).all()
    again, _ = baselines.train_vae(x[:1000], x[1000:], {**CFG["vae"], "epochs": 15}, seed=1)
    np.testing.assert_allclose(baselines.vae_embed(again, x, "mean"), emb[:, :3], atol=1e-5)  # seeded


@pytest.mark.parametrize("name, dim", [("source", 134), ("leading", 6), ("ref22", 9), ("vae", 6)])
def test_cli_writes_embeddings_contract(tmp_path, name, dim):
    rng = np.random.default_rng(2)
    pre, split, all_ids = [], [], []
    for code, (sample, group) in enumerate([("yy", 0), ("ggH", 1), ("Y400", -6)], start=1):
        n = 150
        ids = code * 10**9 + np.arange(n)
        objs = np.stack(
            [
                _event(
                    [
                        ("jet", float(rng.uniform(30, 300)), float(rng.normal()), float(rng.uniform(-3, 3))),
                        ("met", float(rng.exponential(30))),
                    ]
                    + ([("muon", float(rng.uniform(10, 80)))] if rng.random() < 0.3 else [])
                )
                for _ in range(n)
            ]
        )
        frame = pd.DataFrame(
            {
                "event_id": ids,
                "sample": sample,
                "group": np.int8(group),
                "weight": 0.1,
                "dr_yy": rng.uniform(0.4, 3, n).astype(np.float32),
                "pt_yy": rng.exponential(50, n).astype(np.float32),
                "objects": list(objs.reshape(n, -1)),
            }
        )
        write_parquet(frame, tmp_path / f"p{code}.parquet", {})
        write_parquet(
            pd.DataFrame({"event_id": ids, "subset": rng.choice(["train", "val", "test", "data"], n)}),
            tmp_path / f"s{code}.parquet",
            {},
        )
        pre.append(str(tmp_path / f"p{code}.parquet"))
        split.append(str(tmp_path / f"s{code}.parquet"))
        all_ids.append(ids)
    out = tmp_path / "emb.parquet"
    baselines.cli(
        [
            "--name",
            name,
            "--seed",
            "1",
            "--preselected",
            *pre,
            "--split",
            *split,
            "--output",
            str(out),
            "--config",
            json.dumps({"baselines": CFG}),
        ]
    )
    ids, z = read_latent(str(out))
    assert z.shape == (450, dim) and z.dtype == np.float32 and np.isfinite(z).all()
    np.testing.assert_array_equal(np.sort(ids), np.sort(np.concatenate(all_ids)))
    frame = read_parquet(out, {"event_id": "int", **{f"z{i}": "float" for i in range(dim)}})
    assert list(frame.columns) == ["event_id", *[f"z{i}" for i in range(dim)]]
