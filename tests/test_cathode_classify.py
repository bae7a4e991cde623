"""Template shapes/weights, out-of-fold scoring, SIC on an easy signal, AUC ~ 0.5 on no signal."""

import numpy as np
import pandas as pd
import pytest

from cathode_fixtures import SR, WINDOW, background_latent, make_world
from salad.cathode import classify, flow, metrics, template
from salad.cathode.data import read_dataset
from salad.contracts import read_embeddings, region_masks
from salad.errors import SaladError

FAST_BDT = {
    "folds": 3,
    "bdts": 1,
    "seed": 1,
    "early_stopping_rounds": 10,
    "lightgbm": {
        "n_estimators": 80,
        "learning_rate": 0.1,
        "num_leaves": 7,
        "min_child_samples": 10,
        "subsample": 1.0,
    },
}


def test_template_shapes_and_weights(tmp_path):
    paths = make_world(tmp_path, dims=2, n_bkg=2000, n_higgs_data=40, n_sim=600, lumi=10.0)
    emb = read_embeddings(paths["embeddings"])
    data = read_dataset(paths["data"], emb)
    sr, sb = region_masks(data["myy"].to_numpy(), SR, WINDOW)
    ckpt = flow.fit(
        data.loc[sb, ["z0", "z1"]].to_numpy(),
        data.loc[sb, "myy"].to_numpy(),
        WINDOW,
        {"max_epochs": 3, "transforms": 1, "hidden": 8},
        seed=0,
    )
    ckpt["latent_columns"] = ["z0", "z1"]
    model = flow.build_flow(ckpt["arch"])
    model.load_state_dict(ckpt["state_dict"])
    higgs = template.read_higgs([(paths["presel_ggH"], paths["split_ggH"])], emb, ["val", "test"])
    out = template.build(data[sr], [(model.eval(), ckpt)], higgs, SR, 10.0, {"oversample": 3}, seed=1)
    n_sr = int(sr.sum())
    is_flow = out["source"] == "flow"
    assert is_flow.sum() == 3 * n_sr
    assert set(out["source"]) == {"flow", "ggH"}
    assert out["myy"].between(*SR).all() and (out["weight"] > 0).all()
    assert np.isfinite(out[["z0", "z1"]].to_numpy()).all()
    # Higgs: expected SR yield at 10/fb (~40 events in the fixture, 0.5% outside the SR) x 3
    y_h = out.loc[~is_flow, "weight"].sum() / 3
    assert y_h == pytest.approx(40 * 0.997, rel=0.15)
    # whole template = oversample x N_SR
    assert out["weight"].sum() == pytest.approx(3 * n_sr)
    # the pseudo-data half never enters the template
    assert not set(higgs["event_id"]) & set(data["event_id"])


def test_simulation_subsets_exclude_pseudodata_half(tmp_path):
    paths = make_world(tmp_path, dims=2, n_bkg=200, n_sim=200)
    with pytest.raises(SaladError, match="only train/val/test"):
        template.read_higgs(
            [(paths["presel_ggH"], paths["split_ggH"])], read_embeddings(paths["embeddings"]), ["data"]
        )


def test_out_of_fold_no_event_scored_by_its_own_model():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(size=(300, 2)), rng.normal(size=(500, 2))
    res = classify.kfold_scores(
        pos,
        neg,
        np.ones(500),
        FAST_BDT,
        seeds=[7],
        fold_seed=3,
        X_extra=rng.normal(size=(50, 2)),
        keep_models=True,
    )
    X = np.concatenate([pos, neg])
    fold = np.concatenate([res["pos_fold"], res["neg_fold"]])
    scores = np.concatenate([res["pos"][:, 0], res["neg"][:, 0]])
    models = res["models"][0]
    assert sorted(set(fold)) == [0, 1, 2]
    for f, model in enumerate(models):
        held = fold == f
        # the model of fold f reproduces exactly the scores of fold f ...
        assert np.allclose(model.predict_proba(X[held])[:, 1], scores[held])
        # ... and was fitted on exactly the other folds: no scored event among its rows
        assert not set(res["train_rows"][f]) & set(np.nonzero(held)[0])
        assert len(res["train_rows"][f]) + held.sum() == len(X)
    # a memorising model scores training points higher than held-out ones (pure noise here)
    in_sample = metrics.auc(
        models[0].predict_proba(X[fold != 0])[:, 1], np.r_[np.ones(300), np.zeros(500)][fold != 0]
    )
    oof = metrics.auc(scores, np.r_[np.ones(300), np.zeros(500)])
    assert in_sample > oof + 0.05


def _world_scores(tmp_path, n_sig, seed):
    paths = make_world(tmp_path, dims=3, n_bkg=5000, n_higgs_data=0, n_sig=n_sig, n_sim=300, seed=seed)
    data = read_dataset(paths["data"], read_embeddings(paths["embeddings"]))
    sr, sb = region_masks(data["myy"].to_numpy(), SR, WINDOW)
    rng = np.random.default_rng(seed + 100)
    # template drawn from the TRUE background density at SR masses (perfect density estimate)
    m = rng.uniform(*SR, 4 * int(sr.sum()))
    z = background_latent(rng, m, 3)
    tmpl = pd.DataFrame(
        {"z0": z[:, 0], "z1": z[:, 1], "z2": z[:, 2], "myy": m, "weight": 1.0, "source": "flow"}
    )
    scores = classify.cwola(data, tmpl, sr, sb, FAST_BDT, key="t")
    return data, sr, scores


def test_strong_easy_signal_gives_sic_above_one(tmp_path):
    data, sr, scores = _world_scores(tmp_path, n_sig=200, seed=1)
    srs = scores[scores["role"] == "sr"].set_index("event_id").loc[data.loc[sr, "event_id"]]
    is_sig = data.loc[sr, "is_signal"].to_numpy()
    assert metrics.sic(srs["score_0"], is_sig, 0.005) > 1.0
    assert metrics.sic(srs["score_0"], is_sig, 0.001) > 1.0
    assert set(scores["role"]) == {"sr", "sb", "template"}
    assert (
        scores.loc[scores["role"] == "sr", "event_id"].sort_values().to_numpy()
        == np.sort(data.loc[sr, "event_id"])
    ).all()


def test_no_signal_true_template_gives_auc_half(tmp_path):
    data, sr, scores = _world_scores(tmp_path, n_sig=0, seed=2)
    part = scores[scores["role"].isin(["sr", "template"])]
    label = (part["role"] == "sr").to_numpy()
    value = metrics.auc(part["score_0"], label, part["weight"])
    err = metrics.bootstrap_auc(part["score_0"].to_numpy(), label, part["weight"].to_numpy(), 30, 0)
    assert 0 < err < 0.05
    assert abs(value - 0.5) < 3 * err + 0.01


def test_reference_scores_separate_signal(tmp_path):
    paths = make_world(tmp_path, dims=3, n_bkg=3000, n_higgs_data=30, n_sig=150, n_sim=1500)
    emb = read_embeddings(paths["embeddings"])
    data = read_dataset(paths["data"], emb)
    sr, _ = region_masks(data["myy"].to_numpy(), SR, WINDOW)
    bkg = classify.simulation(
        [(paths["presel_yy"], paths["split_yy"]), (paths["presel_ggH"], paths["split_ggH"])],
        emb,
        ["val", "test"],
    )
    sig = classify.simulation([(paths["presel_SIG"], paths["split_SIG"])], emb, ["val", "test"])
    ref = classify.reference(data, sr, bkg, sig, SR, FAST_BDT, key="r")
    truth = data.loc[sr].set_index("event_id").loc[ref["event_id"], "is_signal"].to_numpy()
    assert metrics.auc(ref["sup_0"], truth) > 0.95
    assert metrics.auc(ref["iad_0"], truth) > 0.8
