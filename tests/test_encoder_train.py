"""Encoder training end to end on toy inputs: separation, resume after a kill, determinism,
embedding contract, CLI."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from encoder_fixtures import toy_paths, write_toy_inputs
from salad.__main__ import main
from salad.artifacts import read_parquet
from salad.encoder.embed import embed
from salad.encoder.setups import resolve_setup
from salad.encoder.train import load_checkpoint, train_encoder
from salad.errors import SaladError

TINY = {
    "width": 16,
    "heads": 2,
    "hl_width": 8,
    "head_width": 16,
    "proj_width": 16,
    "proj_dim": 8,
    "batch_size": 125,
    "max_epochs": 4,
    "warmup_epochs": 1,
    "lr": 2e-3,
    "patience": 10,
}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    groups = write_toy_inputs(root, 500)
    return root, groups


def setup_cfg(groups, **over):
    return resolve_setup({"defaults": {**TINY, **over}, "setups": {"ID": {}}}, "ID", groups)


def run(root, groups, out, seed=1, cfg=None, **kw):
    pre, spl = toy_paths(root, groups)
    return train_encoder(
        cfg or setup_cfg(groups), pre, spl, seed, out / "model.pt", out / "history.parquet", None, **kw
    )


class Killed(Exception):
    pass


def test_resume_after_kill_equals_uninterrupted_and_is_deterministic(toy, tmp_path):
    root, groups = toy
    straight = run(root, groups, tmp_path / "a")

    def kill_after_two(trainer):
        if trainer.epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        run(root, groups, tmp_path / "b", on_epoch_end=kill_after_two)
    assert (tmp_path / "b" / "state.pt").exists() and not (tmp_path / "b" / "model.pt").exists()
    epochs_after_resume = []
    resumed = run(root, groups, tmp_path / "b", on_epoch_end=lambda t: epochs_after_resume.append(t.epoch))
    assert epochs_after_resume == [3, 4] and not (tmp_path / "b" / "state.pt").exists()
    assert resumed["epochs_run"] == straight["epochs_run"] == 4
    for name, tensor in straight["state_dict"].items():
        assert torch.equal(tensor, resumed["state_dict"][name]), name
    cols = ["train_loss", "val_loss", "lr"]
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "a" / "history.parquet")[cols],
        pd.read_parquet(tmp_path / "b" / "history.parquet")[cols],
    )
    # determinism: same seed -> identical tensors; another seed -> different
    again = run(root, groups, tmp_path / "c")
    assert all(torch.equal(t, again["state_dict"][k]) for k, t in straight["state_dict"].items())
    other = run(root, groups, tmp_path / "d", seed=2)
    assert not all(torch.equal(t, other["state_dict"][k]) for k, t in straight["state_dict"].items())


def test_stale_state_from_other_settings_is_ignored(toy, tmp_path):
    root, groups = toy
    with pytest.raises(Killed):
        run(root, groups, tmp_path, on_epoch_end=lambda t: (_ for _ in ()).throw(Killed))
    epochs = []
    run(
        root,
        groups,
        tmp_path,
        cfg=setup_cfg(groups, max_epochs=2, lr=1e-3),
        on_epoch_end=lambda t: epochs.append(t.epoch),
    )
    assert epochs == [1, 2]  # started from scratch


def latent_auc(frame, split_paths, signal_code=13, background_code=1):
    sp = pd.concat([pd.read_parquet(p) for p in split_paths])
    d = frame.merge(sp, on="event_id")
    code = d.event_id // 10**9
    d = d[(code == signal_code) | (code == background_code)]
    z = [c for c in d.columns if c.startswith("z")]
    y = (d.event_id // 10**9 == signal_code).to_numpy()
    tr, te = (d.subset == "train").to_numpy(), (d.subset == "test").to_numpy()
    clf = LogisticRegression(max_iter=1000).fit(d.loc[tr, z], y[tr])
    return roc_auc_score(y[te], clf.predict_proba(d.loc[te, z])[:, 1])


def test_training_separates_signal_from_background(tmp_path):
    groups = write_toy_inputs(tmp_path, 1200, seed=5)
    pre, spl = toy_paths(tmp_path, groups)
    cfg = setup_cfg(groups, max_epochs=12, batch_size=250)
    ckpt = train_encoder(
        cfg,
        pre,
        spl,
        1,
        tmp_path / "m" / "model.pt",
        tmp_path / "m" / "history.parquet",
        tmp_path / "m" / "loss.png",
    )
    hist = pd.read_parquet(tmp_path / "m" / "history.parquet")
    assert hist["val_contrastive"].min() < hist["val_contrastive"].iloc[0] - 0.05
    frame = embed(tmp_path / "m" / "model.pt", pre, tmp_path / "emb.parquet")
    trained = latent_auc(frame, spl)
    assert trained > 0.9, trained
    # an untrained encoder of the same seed separates worse (the training did the work)
    model, norm, _ = load_checkpoint(tmp_path / "m" / "model.pt")
    torch.manual_seed(0)
    model.load_state_dict(type(model)(ckpt["config"]).state_dict(), strict=False)
    torch.save({**ckpt, "state_dict": model.state_dict()}, tmp_path / "untrained.pt")
    untrained = latent_auc(embed(tmp_path / "untrained.pt", pre, tmp_path / "u.parquet"), spl)
    assert trained > untrained + 0.03, (trained, untrained)
    assert (tmp_path / "m" / "loss.png").stat().st_size > 1000


def test_embed_contract_and_cli(toy, tmp_path):
    root, groups = toy
    pre, spl = toy_paths(root, groups)
    out = tmp_path / "enc"
    cfg = json.dumps({"encoder": setup_cfg(groups, max_epochs=2)})
    assert (
        main(
            [
                "train-encoder",
                "--preselected",
                *map(str, pre),
                "--split",
                *map(str, spl),
                "--model",
                str(out / "model.pt"),
                "--history",
                str(out / "history.parquet"),
                "--plot",
                str(out / "loss.png"),
                "--seed",
                "3",
                "--threads",
                "1",
                "--log",
                str(tmp_path / "train.log"),
                "--config",
                cfg,
            ]
        )
        == 0
    )
    assert "epoch   1" in (tmp_path / "train.log").read_text()
    hist = read_parquet(
        out / "history.parquet",
        {
            "epoch": "int",
            "train_loss": "float",
            "val_loss": "float",
            "train_kl": "float",
            "lr": "float",
            "time_s": "float",
        },
    )
    assert len(hist) == 2
    emb_path = tmp_path / "emb" / "ID" / "3.parquet"
    assert (
        main(
            [
                "embed",
                "--model",
                str(out / "model.pt"),
                "--preselected",
                *map(str, pre),
                "--output",
                str(emb_path),
                "--config",
                json.dumps({"embed": {"batch_size": 97}}),
            ]
        )
        == 0
    )
    z = [f"z{i}" for i in range(6)]
    frame = read_parquet(emb_path, {"event_id": "int", **{c: "float" for c in z}})
    assert list(frame.columns) == ["event_id", *z] and all(frame[c].dtype == np.float32 for c in z)
    ids = np.concatenate([pd.read_parquet(p, columns=["event_id"]).event_id for p in pre])
    assert np.array_equal(frame.event_id.to_numpy(), ids)  # every event, both halves
    other = embed(out / "model.pt", pre, tmp_path / "again.parquet", batch_size=1000)
    assert np.allclose(other[z].to_numpy(), frame[z].to_numpy(), atol=1e-5)  # batch-size free
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert (
        main(
            [
                "embed",
                "--model",
                str(tmp_path / "bad.pt"),
                "--preselected",
                str(pre[0]),
                "--output",
                str(tmp_path / "x.parquet"),
            ]
        )
        == 1
    )
    bad_cfg = json.dumps({"encoder": {"width": 3}})
    assert (
        main(
            [
                "train-encoder",
                "--preselected",
                str(pre[0]),
                "--split",
                str(spl[0]),
                "--model",
                str(out / "m2.pt"),
                "--history",
                str(out / "h2.parquet"),
                "--seed",
                "1",
                "--config",
                bad_cfg,
            ]
        )
        == 1
    )


def test_event_noise_is_standard_normal_and_a_function_of_the_event():
    from salad.encoder.embed import event_noise

    ids = np.arange(50_000, dtype=np.int64) * 7 + 3
    eps = event_noise(ids, 6, seed=3)
    assert eps.shape == (50_000, 6) and np.isfinite(eps).all()
    assert abs(eps.mean()) < 0.01 and abs(eps.std() - 1) < 0.01
    assert np.abs(np.corrcoef(eps.T) - np.eye(6)).max() < 0.03  # dimensions independent
    perm = np.random.default_rng(0).permutation(len(ids))
    assert np.array_equal(event_noise(ids[perm], 6, seed=3), eps[perm])  # order free
    assert not np.allclose(event_noise(ids, 6, seed=4), eps)  # seed matters


def test_embed_sample_is_mean_plus_sigma_noise(toy, tmp_path):
    from salad.encoder.data import load_events, to_tensors
    from salad.encoder.embed import encode_all, event_noise

    root, groups = toy
    pre, spl = toy_paths(root, groups)
    ckpt = train_encoder(
        setup_cfg(groups, max_epochs=1),
        pre,
        spl,
        2,
        tmp_path / "model.pt",
        tmp_path / "history.parquet",
        tmp_path / "loss.png",
    )
    z = [f"z{i}" for i in range(6)]
    sampled = embed(tmp_path / "model.pt", pre, tmp_path / "s.parquet")
    means = embed(tmp_path / "model.pt", pre, tmp_path / "m.parquet", latent="mean")
    model, norm, _ = load_checkpoint(tmp_path / "model.pt")
    events = load_events(pre)
    mu, sigma = encode_all(model, to_tensors(events, norm), 512, torch.device("cpu"))
    assert np.allclose(means[z].to_numpy(), mu, atol=1e-5)
    expected = mu + sigma * event_noise(events.event_id, 6, ckpt["seed"])
    assert np.allclose(sampled[z].to_numpy(), expected, atol=1e-5)
    assert np.abs(sampled[z].to_numpy() - means[z].to_numpy()).mean() > 1e-3
    with pytest.raises(SaladError, match="encoder.embed.latent"):
        embed(tmp_path / "model.pt", pre, tmp_path / "x.parquet", latent="median")


def test_signal_agnostic_stages_read_the_means(toy, tmp_path):
    from salad.contracts import latent_for, read_latent

    root, groups = toy
    pre, spl = toy_paths(root, groups)
    train_encoder(
        setup_cfg(groups, max_epochs=1),
        pre,
        spl,
        2,
        tmp_path / "model.pt",
        tmp_path / "history.parquet",
        tmp_path / "loss.png",
    )
    sampled = embed(tmp_path / "model.pt", pre, tmp_path / "s.parquet")
    means = embed(tmp_path / "model.pt", pre, tmp_path / "m.parquet", latent="mean")
    z, mu = [f"z{i}" for i in range(6)], [f"mu{i}" for i in range(6)]
    assert np.array_equal(sampled[mu].to_numpy(), means[z].to_numpy())  # same forward pass
    assert not any(c.startswith("mu") for c in means.columns)
    ids = sampled["event_id"].to_numpy()[::-1]
    assert np.allclose(latent_for(str(tmp_path / "s.parquet"), ids, means=True), means[z].to_numpy()[::-1])
    assert np.allclose(latent_for(str(tmp_path / "s.parquet"), ids), sampled[z].to_numpy()[::-1])
    # a file without means (mean latent, baselines) gives its z either way
    _, only = read_latent(str(tmp_path / "m.parquet"), means=True)
    assert np.allclose(only, means[z].to_numpy())
