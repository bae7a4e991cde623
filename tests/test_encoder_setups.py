"""Encoder setups from config, input reading, normalisation and the class-balanced sampler."""

import numpy as np
import pandas as pd
import pytest

from encoder_fixtures import toy_objects, toy_paths, write_toy_inputs
from salad.artifacts import provenance, write_parquet
from salad.config import REPO, load_config, load_yaml
from salad.encoder.data import BalancedSampler, Normaliser, load_events, padding_mask
from salad.encoder.setups import resolve_setup, seeds_for, setup_names
from salad.errors import SaladError

GROUPS = {"yy": 0, "ggH": 1, "ttH": 4, "C1N2_200": -1, "C1N2_300": -1, "Y400": -6}
ENC = {
    "seeds": [1, 2],
    "defaults": {"width": 16, "heads": 2},
    "setups": {
        "ID": {},
        "IP": {"holdout_samples": ["C1N2_300"]},
        "EP": {"holdout_groups": [-1]},
        "bkg": {"signals": False, "kl_weight": 0.01, "seeds": [5]},
    },
}


def test_setups_select_training_samples():
    assert set(resolve_setup(ENC, "ID", GROUPS)["train_samples"]) == set(GROUPS)
    assert set(resolve_setup(ENC, "IP", GROUPS)["train_samples"]) == set(GROUPS) - {"C1N2_300"}
    assert set(resolve_setup(ENC, "EP", GROUPS)["train_samples"]) == {"yy", "ggH", "ttH", "Y400"}
    bkg = resolve_setup(ENC, "bkg", GROUPS)
    assert set(bkg["train_samples"]) == {"yy", "ggH", "ttH"} and bkg["kl_weight"] == 0.01
    assert seeds_for(ENC, "ID") == [1, 2] and seeds_for(ENC, "bkg") == [5]
    assert "seeds" not in bkg and bkg["width"] == 16


def test_editing_one_setup_leaves_others_unchanged():
    edited = {**ENC, "setups": {**ENC["setups"], "IP": {"holdout_samples": ["C1N2_200"], "lr": 1.0}}}
    assert resolve_setup(edited, "ID", GROUPS) == resolve_setup(ENC, "ID", GROUPS)
    assert resolve_setup(edited, "IP", GROUPS) != resolve_setup(ENC, "IP", GROUPS)


@pytest.mark.parametrize(
    "setup,message",
    [
        ({"holdout_samples": ["Y999"]}, "'Y999'"),
        ({"holdout_groups": [-5]}, "group -5"),
        ({"model": "cnn"}, "model"),
        ({"loss": "simclr"}, "augmentation"),
        ({"augmentations": {"zoom": 0.1}}, "zoom"),
        ({"width": 10, "heads": 4}, "divisible"),
    ],
)
def test_bad_setup_names_the_problem(setup, message):
    with pytest.raises(SaladError, match=message):
        resolve_setup({"setups": {"X": setup}}, "X", GROUPS)
    with pytest.raises(SaladError, match="unknown setup"):
        resolve_setup(ENC, "nope", GROUPS)


@pytest.mark.parametrize("name", ["config.yaml", "test.yaml"])
def test_configured_setups_resolve(name):
    cfg = load_config(REPO / "config" / name)
    table = load_yaml(REPO / cfg["processes"])["processes"]
    groups = {s: table[s]["group"] for s in cfg["samples"]}
    for setup in setup_names(cfg["encoder"]):
        resolved = resolve_setup(cfg["encoder"], setup, groups)
        assert len(set(resolved["train_samples"].values())) >= 2 and seeds_for(cfg["encoder"], setup)


def test_normaliser_uses_real_objects_and_keeps_padding_zero():
    rng = np.random.default_rng(1)
    raw = toy_objects(rng, 200, 1.5, 40.0, 0.2, 20.0)
    evt = rng.uniform(1, 100, (200, 2)).astype(np.float32)
    norm = Normaliser.fit(raw, evt)
    real = raw[padding_mask(raw)]
    assert norm.obj_mean[0] == pytest.approx(np.log1p(real[:, 0]).mean(), rel=1e-5)
    assert norm.obj_mean[1] == pytest.approx(real[:, 1].mean(), abs=1e-5)
    assert norm.evt_mean[1] == pytest.approx(np.log1p(evt[:, 1]).mean(), rel=1e-5)
    obj, ev = norm.apply(raw, evt)
    assert (obj[~padding_mask(raw)] == 0).all() and np.array_equal(obj[..., 7:], raw[..., 7:])
    assert np.allclose(obj[padding_mask(raw)][:, :7].mean(0), 0, atol=1e-4)
    assert np.allclose(ev.std(0), 1, atol=1e-3)
    back = Normaliser.from_state_dict(norm.state_dict()).apply(raw, evt)
    assert np.array_equal(back[0], obj)


def test_balanced_sampler():
    labels = np.repeat([0, 1, 2], [1000, 30, 5])
    sampler = BalancedSampler(labels, 96, seed=3)
    batches = sampler.epoch(0)
    assert len(batches) == len(labels) // 96
    for b in batches:
        assert np.array_equal(np.bincount(labels[b], minlength=3), [32, 32, 32])
    small = np.concatenate([b[labels[b] == 2] for b in batches])
    assert set(small) == set(np.flatnonzero(labels == 2))  # rare class cycles through all events
    first = np.concatenate(batches)[labels[np.concatenate(batches)] == 0]
    assert len(np.unique(first)) == len(first)  # no repeats before a class is exhausted
    assert all(np.array_equal(a, b) for a, b in zip(batches, BalancedSampler(labels, 96, 3).epoch(0)))
    assert not all(np.array_equal(a, b) for a, b in zip(batches, sampler.epoch(1)))


def test_load_events_checks_inputs(tmp_path):
    groups = write_toy_inputs(tmp_path, {"yy": 50, "ttH": 40})
    pre, spl = toy_paths(tmp_path, groups)
    ev = load_events(pre, spl, groups)
    assert (
        len(ev) == 90
        and ev.objects.shape == (90, 11, 12)
        and set(ev.subset) <= {"train", "val", "test", "data"}
    )
    with pytest.raises(SaladError, match="process table"):
        load_events(pre, spl, {"yy": 0, "ttH": 3})
    with pytest.raises(SaladError, match="not in this setup"):
        load_events(pre, spl, {"yy": 0})
    short = pd.read_parquet(spl[0]).iloc[5:]
    write_parquet(short, spl[0], provenance("split"))
    with pytest.raises(SaladError, match=r"yy.parquet: 5 event\(s\)"):
        load_events(pre, spl, groups)
