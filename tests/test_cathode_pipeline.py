"""The four stage CLIs chained on synthetic artifacts, through tables and plots."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from cathode_fixtures import make_world
from salad.__main__ import main
from salad.artifacts import read_parquet

REGIONS = {"signal_region": [120.0, 130.0]}
WINDOW = [105.0, 160.0]
CLASSIFIER = {"folds": 3, "bdts": 2, "seed": 1, "early_stopping_rounds": 10,
              "lightgbm": {"n_estimators": 60, "learning_rate": 0.1, "num_leaves": 7,
                           "min_child_samples": 10, "subsample": 1.0}}


def cfg(**extra):
    return json.dumps({"regions": REGIONS, "window": WINDOW, **extra})


def run(*argv):
    assert main([str(a) for a in argv]) == 0


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("cathode")
    res = root / "results"
    data_files, score_files, ref_files = [], [], []
    for strength, n_sig in (("0", 0), ("5", 400)):
        world = make_world(root / f"w{strength}", dims=3, n_bkg=3000, n_higgs_data=30,
                           n_sig=n_sig, n_sim=900, seed=int(strength))
        data = res / "pseudodata" / "SIG" / strength / "0.parquet"
        data.parent.mkdir(parents=True)
        shutil.copy(world["data"], data)
        data_files.append(data)
        ds = f"ID/0/SIG/{strength}/0"
        ckpt = res / "flows" / ds / "0.pt"
        run("fit-flow", "--embeddings", world["embeddings"], "--data", data, "--output", ckpt,
            "--seed-key", ds, "--config",
            cfg(flow={"max_epochs": 6, "transforms": 2, "hidden": 16, "blocks": 1}))
        tmpl = res / "templates" / ds / "0.parquet"
        run("sample-sr", "--flow", ckpt, "--embeddings", world["embeddings"], "--data", data,
            "--higgs", world["presel_ggH"], world["split_ggH"], "--output", tmpl,
            "--config", cfg(template={"oversample": 2}, luminosity=10.0, seed=3))
        scores = res / "scores" / ds / "0.parquet"
        run("classify", "cwola", "--template", tmpl, "--embeddings", world["embeddings"],
            "--data", data, "--output", scores, "--seed-key", ds, "--config",
            cfg(classifier=CLASSIFIER))
        score_files.append(scores)
        ref = res / "reference" / "ID/0/SIG" / strength / "0.parquet"
        run("classify", "reference", "--embeddings", world["embeddings"], "--data", data,
            "--background", world["presel_yy"], world["split_yy"],
            "--background", world["presel_ggH"], world["split_ggH"],
            "--signal", world["presel_SIG"], world["split_SIG"], "--output", ref,
            "--seed-key", ds, "--config", cfg(classifier=CLASSIFIER))
        ref_files.append(ref)
    ev = res / "evaluation" / "ID" / "SIG"
    ecfg = {"working_points": [0.001, 0.005], "target_significance": 3.0, "ensemble_size": 2,
            "bootstrap": 5, "mass_bins": 11}
    run("evaluate", "sensitivity", "--setup", "ID", "--signal", "SIG", "--data", *data_files,
        "--scores", *score_files, "--references", *ref_files, "--output-dir", ev,
        "--config", cfg(evaluate=ecfg))
    tables = res / "tables"
    run("evaluate", "tables", "--sensitivity", ev / "sensitivity.parquet",
        "--sculpting-auc", ev / "sculpting_auc.parquet", "--sculpting-mass",
        ev / "sculpting_mass.parquet", "--output-dir", tables, "--config", cfg(evaluate=ecfg))
    return res, ev, tables, data_files, score_files


def test_template_and_scores_follow_contract(pipeline):
    res, *_ = pipeline
    tmpl = read_parquet(res / "templates/ID/0/SIG/5/0/0.parquet",
                        {"z0": "float", "myy": "float", "weight": "float", "source": "str"})
    assert set(tmpl["source"]) == {"flow", "ggH"}
    scores = read_parquet(res / "scores/ID/0/SIG/5/0/0.parquet",
                          {"role": "str", "event_id": "int", "fold": "int", "score_1": "float"})
    assert scores["score_1"].between(0, 1).all()
    assert set(scores.loc[scores["role"] == "sr", "fold"]) == {0, 1, 2}


def test_sensitivity_rows(pipeline):
    _, ev, *_ = pipeline
    sens = read_parquet(ev / "sensitivity.parquet")
    # 2 BDTs -> 1 ensemble per method; 2 strengths x 3 methods x 2 working points
    assert len(sens) == 2 * 3 * 2
    strong = sens[(sens["strength"] == 5) & (sens["method"] == "cathode")]
    assert (strong["sic"] > 1).all()
    none = sens[sens["strength"] == 0]
    assert none["sic"].isna().all() and (none["significance"] == 0).all()
    sup = sens[(sens["strength"] == 5) & (sens["method"] == "supervised")]
    assert (sup["sic"] >= strong["sic"].min() * 0.5).all()


def test_tables_written_with_markdown(pipeline):
    *_, tables, _, _ = pipeline
    req = read_parquet(tables / "cathode_required_injection.parquet")
    row = req[(req["method"] == "cathode") & (req["eps_b"] == 0.005)].iloc[0]
    assert row["reached"] and 0 < row["required_strength"] < 5
    sculpt = read_parquet(tables / "cathode_sculpting.parquet")
    assert 0.3 < sculpt["auc_mean"].iloc[0] < 0.7 and sculpt["ndf"].iloc[0] == 10
    md = (tables / "cathode_sensitivity.md").read_text()
    assert md.startswith("# CATHODE sensitivity") and "| signal | εB | S/√B | ID |" in md


def test_plots(pipeline, tmp_path):
    res, ev, tables, data_files, _ = pipeline
    world = res.parent / "w5"
    c = cfg(evaluate={"tsne_events": 150})
    outputs = {
        "latent": ["--data", data_files[1], "--embeddings", world / "embeddings.parquet",
                   "--template", res / "templates/ID/0/SIG/5/0/0.parquet", "--config", c],
        "tsne": ["--data", data_files[1], "--embeddings", world / "embeddings.parquet",
                 "--config", c],
        "sculpting": ["--roc", ev / "sculpting_roc.parquet", "--mass", ev / "sculpting_mass.parquet"],
        "sic": ["--table", tables / "cathode_sensitivity.parquet", "--signal", "SIG", "--setups", "ID"],
        "required": ["--table", tables / "cathode_required_injection.parquet"],
    }
    for kind, args in outputs.items():
        out = tmp_path / f"{kind}.png"
        run("evaluate", "plot", kind, *args, "--output", out)
        assert out.read_bytes()[:4] == b"\x89PNG"


def test_missing_embedding_is_named(tmp_path):
    world = make_world(tmp_path, dims=2, n_bkg=300, n_sim=100)
    emb = pd.read_parquet(world["embeddings"]).iloc[5:]
    emb.to_parquet(tmp_path / "short.parquet")
    code = main(["fit-flow", "--embeddings", str(tmp_path / "short.parquet"), "--data",
                 str(world["data"]), "--output", str(tmp_path / "f.pt"), "--config", cfg()])
    assert code == 1 and not (tmp_path / "f.pt").exists()
