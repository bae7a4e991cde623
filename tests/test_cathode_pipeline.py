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
CLASSIFIER = {
    "folds": 3,
    "bdts": 2,
    "seed": 1,
    "early_stopping_rounds": 10,
    "lightgbm": {
        "n_estimators": 60,
        "learning_rate": 0.1,
        "num_leaves": 7,
        "min_child_samples": 10,
        "subsample": 1.0,
    },
}


def cfg(**extra):
    return json.dumps({"regions": REGIONS, "window": WINDOW, **extra})


def run(*argv):
    assert main([str(a) for a in argv]) == 0


FLOW = {"max_epochs": 6, "transforms": 2, "hidden": 16, "blocks": 1}


def pair(world, sample):
    return [world[f"presel_{sample}"], world[f"split_{sample}"]]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """evaluation-set -> cathode (2 pooled flows, CWoLa BDTs, references) -> evaluate -> tables,
    for a no-injection and an injected dataset."""
    root = tmp_path_factory.mktemp("cathode")
    res = root / "results"
    data_files, score_files, ref_files = [], [], []
    for strength, n_sig in (("0", 0), ("5", 400)):
        world = make_world(
            root / f"w{strength}",
            dims=3,
            n_bkg=3000,
            n_higgs_data=30,
            n_sig=n_sig,
            n_sim=900,
            seed=int(strength),
            n_eval=4000,
        )
        data = res / "pseudodata" / "SIG" / strength / "0.parquet"
        data.parent.mkdir(parents=True)
        shutil.copy(world["data"], data)
        data_files.append(data)
        evaluation = res / "evaluation" / f"set{strength}.parquet"
        run(
            "evaluation-set",
            "--background",
            "yy",
            *pair(world, "yy"),
            "--background",
            "ggH",
            *pair(world, "ggH"),
            "--signal",
            "SIG",
            *pair(world, "SIG"),
            "--output",
            evaluation,
            "--summary",
            evaluation.with_suffix(".json"),
            "--config",
            cfg(evaluation_set={"samples": []}),
        )
        run_dir = res / "cathode" / "ID" / "0" / "SIG" / "0"
        run(
            "cathode",
            "--embeddings",
            world["embeddings"],
            "--data",
            data,
            "--higgs",
            *pair(world, "ggH"),
            "--background",
            *pair(world, "yy"),
            "--background",
            *pair(world, "ggH"),
            "--signal",
            *pair(world, "SIG"),
            "--evaluation-set",
            evaluation,
            "--output-dir",
            run_dir,
            "--seed-key",
            "ID/0",
            "--config",
            cfg(flow=FLOW, flow_count=2, template={"oversample": 2}, classifier=CLASSIFIER, luminosity=10.0),
        )
        score_files.append(run_dir / "scores" / strength / "0.parquet")
        if strength == "0":
            assert not (run_dir / "reference").exists()  # references serve injected sets only
            continue
        ref_files.append(run_dir / "reference" / strength / "0.parquet")
    ev = res / "evaluation" / "ID" / "SIG"
    ecfg = {
        "working_points": [0.01, 0.05],
        "target_significance": 3.0,
        "ensemble_size": 2,
        "bootstrap": 5,
        "mass_bins": 11,
    }
    run(
        "evaluate",
        "sensitivity",
        "--setup",
        "ID",
        "--signal",
        "SIG",
        "--data",
        *data_files,
        "--scores",
        *score_files,
        "--references",
        *ref_files,
        "--evaluation-set",
        evaluation,
        "--held-out",
        "false",
        "--output-dir",
        ev,
        "--config",
        cfg(evaluate=ecfg),
    )
    tables = res / "tables"
    run(
        "evaluate",
        "tables",
        "--sensitivity",
        ev / "sensitivity.parquet",
        "--sculpting-auc",
        ev / "sculpting_auc.parquet",
        "--sculpting-mass",
        ev / "sculpting_mass.parquet",
        "--output-dir",
        tables,
        "--config",
        cfg(evaluate=ecfg),
    )
    return res, ev, tables, data_files, score_files


def test_template_and_scores_follow_contract(pipeline):
    res, *_ = pipeline
    run_dir = res / "cathode/ID/0/SIG/0"
    assert (run_dir / "flows/5/0/1.pt").exists()
    tmpl = read_parquet(
        run_dir / "templates/5/0.parquet", {"z0": "float", "myy": "float", "weight": "float", "source": "str"}
    )
    assert set(tmpl["source"]) == {"flow", "ggH"}
    scores = read_parquet(
        run_dir / "scores/5/0.parquet", {"role": "str", "event_id": "int", "fold": "int", "score_1": "float"}
    )
    assert scores["score_1"].between(0, 1).all()
    assert set(scores.loc[scores["role"] == "sr", "fold"]) == {0, 1, 2}
    evaluation = read_parquet(res / "evaluation/set5.parquet")
    scored = scores[scores["role"] == "eval"]
    assert sorted(scored["event_id"]) == sorted(evaluation["event_id"])
    assert (scored["fold"] == -1).all()
    # the evaluation set shares no event with the pseudo-data or the references' training
    data = read_parquet(res / "pseudodata/SIG/5/0.parquet")
    assert not set(evaluation["event_id"]) & set(data["event_id"])
    assert not set(evaluation["event_id"]) & set(scores.loc[scores["role"] != "eval", "event_id"])


def test_sensitivity_rows(pipeline):
    _, ev, *_ = pipeline
    sens = read_parquet(ev / "sensitivity.parquet")
    # strength 5 only (the no-injection set serves the sculpting check); 2 BDTs -> 1
    # ensemble per method; 3 methods x 2 working points
    assert len(sens) == 3 * 2 and set(sens["strength"]) == {5.0}
    assert (~sens["held_out"]).all()
    # SIC is eps_S / sqrt(eps_B) in every row, with a finite statistical error
    assert np.allclose(sens["sic"], sens["eps_s"] / np.sqrt(sens["eps_b"]))
    assert (sens["sic_err"] >= 0).all() and (sens["n_bkg_pass"] <= sens["n_bkg_eval"]).all()
    strong = sens[sens["method"] == "cathode"]
    assert (strong["sic"] > 1).all()
    sup = sens[sens["method"] == "supervised"]
    assert (sup["sic"] >= strong["sic"].min() * 0.5).all()


def test_tables_written_with_markdown(pipeline):
    *_, tables, _, _ = pipeline
    req = read_parquet(tables / "cathode_required_injection.parquet")
    row = req[(req["method"] == "cathode") & (req["eps_b"] == 0.05)].iloc[0]
    assert row["reached"] and 0 < row["required_strength"] < 5
    sens = read_parquet(tables / "cathode_sensitivity.parquet")
    for col in ("held_out", "n_bkg_eval", "sic_err", "sic_syst"):
        assert col in sens
    sculpt = read_parquet(tables / "cathode_sculpting.parquet")
    assert 0.3 < sculpt["auc_mean"].iloc[0] < 0.7 and sculpt["ndf"].iloc[0] == 10
    assert sorted(sculpt["efficiency"]) == [0.01, 0.05, 0.2]
    md = (tables / "cathode_sensitivity.md").read_text()
    assert md.startswith("# CATHODE sensitivity") and "| signal | εB | S/√B | ID |" in md


def test_plots(pipeline, tmp_path):
    res, ev, tables, data_files, _ = pipeline
    world = res.parent / "w5"
    c = cfg(evaluate={"tsne_events": 150})
    outputs = {
        "latent": [
            "--data",
            data_files[1],
            "--embeddings",
            world / "embeddings.parquet",
            "--template",
            res / "cathode/ID/0/SIG/0/templates/5/0.parquet",
            "--config",
            c,
        ],
        "tsne": ["--data", data_files[1], "--embeddings", world / "embeddings.parquet", "--config", c],
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
    code = main(
        [
            "fit-flow",
            "--embeddings",
            str(tmp_path / "short.parquet"),
            "--data",
            str(world["data"]),
            "--output",
            str(tmp_path / "f.pt"),
            "--config",
            cfg(),
        ]
    )
    assert code == 1 and not (tmp_path / "f.pt").exists()
