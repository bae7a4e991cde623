"""Input hardening (issue 14): config cross-checks and strict YAML at parse time; Delphes files
from stock cards (missing optional collections); stale temporaries; OS errors as one line;
provenance with code version and input hashes."""

from __future__ import annotations

import copy
import errno
import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

import salad.artifacts as artifacts
from delphes_fixtures import COLLECTIONS, random_events, write_delphes
from salad.__main__ import main
from salad.config import REPO, cross_check, load_config, load_processes, load_yaml
from salad.errors import SaladError
from salad.preselect import FEATURES, N_FEATURES, N_OBJECTS, OBJECT_SLOTS, preselect

PROCESSES = load_processes(REPO / "config" / "processes.yaml")
CFG = dict(
    chunk_size=300,
    n_photon_candidates=3,
    higgs_mass=125.0,
    diphoton_trigger_pt=[35.0, 25.0],
    single_photon_trigger_pt=140.0,
    pt_over_myy=[0.4, 0.3],
    myy_range=[105.0, 160.0],
)


def _config():
    return yaml.safe_load((REPO / "config" / "test.yaml").read_text())


# --------------------------------------------------------------------------- config cross-checks
def _set(path, value):
    def edit(c):
        section, key = path.split(".")
        c.setdefault(section, {})[key] = value

    return edit


@pytest.mark.parametrize(
    "edit,message",
    [
        (
            _set("preselect.myy_range", [160.0, 105.0]),
            "key preselect.myy_range: [160.0, 105.0] is not an ordered range",
        ),
        (
            _set("regions.signal_region", [130.0, 120.0]),
            "key regions.signal_region: [130.0, 120.0] is not an ordered range",
        ),
        (
            _set("regions.signal_region", [165.0, 170.0]),
            "key regions.signal_region: [165.0, 170.0] must lie strictly inside "
            "preselect.myy_range [105.0, 160.0]",
        ),
        (
            _set("regions.signal_region", [100.0, 130.0]),  # straddles the lower edge
            "key regions.signal_region: [100.0, 130.0] must lie strictly inside",
        ),
        (
            _set("regions.signal_region", [105.0, 130.0]),  # no lower sideband
            "key regions.signal_region: [105.0, 130.0] must lie strictly inside",
        ),
        (_set("delphes_inputs.Y400x", ["a.root"]), "key delphes_inputs.Y400x: unknown process"),
        (
            _set("delphes_inputs.C1N2_600", ["a.root"]),  # a process, not a configured sample
            "key delphes_inputs.C1N2_600: not one of config key samples",
        ),
    ],
    ids=[
        "myy_reversed",
        "sr_reversed",
        "sr_outside",
        "sr_straddles",
        "sr_no_sideband",
        "delphes_unknown_process",
        "delphes_not_a_sample",
    ],
)
def test_cross_checks_name_the_key(edit, message):
    config = copy.deepcopy(_config())
    edit(config)
    with pytest.raises(SaladError) as err:
        cross_check(config, PROCESSES, source="cfg.yaml")
    assert str(err.value).startswith(f"cfg.yaml: {message}"), str(err.value)
    assert "\n" not in str(err.value)


def test_shipped_configs_pass_the_cross_checks():
    for name in ("config.yaml", "test.yaml", "paper.yaml"):
        load_config(REPO / "config" / name)
    ok = copy.deepcopy(_config())
    ok["delphes_inputs"] = {"ggH": ["x.root"]}
    cross_check(ok, PROCESSES)


def test_duplicate_yaml_key_is_an_error_with_file_and_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\nb:\n  x: 2\n  y: 3\n  x: 4\n")
    with pytest.raises(SaladError) as err:
        load_yaml(path)
    assert str(err.value) == (
        f"{path}, line 5, column 3: invalid YAML (duplicate key 'x' (first given on line 3))"
    )
    # merge keys may still be overridden, as YAML intends (the process table uses anchors)
    path.write_text("base: &b {p: 1, q: 2}\nderived: {<<: *b, q: 3}\n")
    assert load_yaml(path)["derived"] == {"p": 1, "q": 3}


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("samples: [yy, ggH\nthreads: {}\n")
    with pytest.raises(SaladError) as err:
        load_yaml(path)
    assert str(err.value).startswith(f"{path}, line 2, column 8: invalid YAML (")


def test_check_config_cli(tmp_path, capsys):
    assert main(["check-config", str(REPO / "config" / "test.yaml")]) == 0
    assert "test.yaml: ok (5 samples)" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "config" / "test.yaml").read_text() + "threads: {generate: 2}\n")
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "duplicate key 'threads' (first given on line 5)" in err


def _dry_run(tmp_path, config_text):
    path = tmp_path / "cfg.yaml"
    path.write_text(config_text)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--cores",
            "1",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path / "wd"),
            "--configfile",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("case", ["delphes_typo", "duplicate_key"])
def test_snakemake_dry_run_stops_at_parse_time(tmp_path, case):
    if case == "delphes_typo":
        config = copy.deepcopy(_config())
        config["delphes_inputs"] = {"gHH": ["my.root"]}
        text, words = yaml.safe_dump(config), "key delphes_inputs.gHH: unknown process"
    else:
        text = (REPO / "config" / "test.yaml").read_text() + "split: {seed: 9}\n"
        words = "invalid YAML (duplicate key 'split'"
    proc = _dry_run(tmp_path, text)
    assert proc.returncode != 0 and words in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-2000:]
    assert not (tmp_path / "wd" / "results").exists()


# --------------------------------------------------------------------------- stock Delphes cards
def _drop(*collections):
    return [f"{c}/{c}.{f}" for c in collections for f in COLLECTIONS[c]] + [f"{c}_size" for c in collections]


def _objects(table):
    return np.stack(table.column("objects").to_numpy(zero_copy_only=False)).reshape(-1, N_OBJECTS, N_FEATURES)


def _rows(coll):
    start = 0
    for name, n in OBJECT_SLOTS:
        if name == coll:
            return slice(start, start + n)
        start += n


def test_stock_card_without_fatjet_is_read_as_zero_fat_jets(tmp_path, caplog):
    events = random_events(400, seed=3)
    stock = write_delphes(tmp_path / "stock.root", events, drop=_drop("FatJet"))
    empty = {**events, "FatJet": events["FatJet"][:, :0]}  # same events, zero fat jets
    reference = write_delphes(tmp_path / "ref.root", empty)
    with caplog.at_level(logging.WARNING, logger="salad.delphes"):
        table, cutflow = preselect([str(stock)], "ggH", 2, 1, 10.0, CFG)
    ref_table, ref_cutflow = preselect([str(reference)], "ggH", 2, 1, 10.0, CFG)
    assert table.num_rows > 30 and table.equals(ref_table)
    objects = _objects(table)
    assert (objects[:, _rows("FatJet")] == 0).all()
    assert (objects[:, _rows("Jet"), FEATURES.index("pt")] > 0).any()  # other collections read
    warnings = [r.getMessage() for r in caplog.records if r.name == "salad.delphes"]
    assert warnings == [
        f"{stock}: warning: no FatJet collection; read as zero objects in every event (zero padding)"
    ]
    assert cutflow["missing_collections"] == {str(stock): ["FatJet"]}
    assert ref_cutflow["missing_collections"] == {}
    assert cutflow["cuts"] == ref_cutflow["cuts"]


def test_one_warning_per_file_naming_every_missing_collection(tmp_path, caplog):
    files = [
        write_delphes(
            tmp_path / f"{i}.root",
            random_events(300, seed=i, number_start=1000 * i),
            drop=_drop("FatJet", "Electron", "Muon"),
            basket_size=100,
        )
        for i in range(2)
    ]
    with caplog.at_level(logging.WARNING, logger="salad.delphes"):
        table, cutflow = preselect([str(f) for f in files], "ggH", 2, 1, 10.0, dict(CFG, chunk_size=100))
    warnings = [r.getMessage() for r in caplog.records if r.name == "salad.delphes"]
    assert len(warnings) == 2  # several chunks per file, still one warning per file
    for f, w in zip(files, warnings):
        assert w.startswith(f"{f}: warning: no Electron / FatJet / Muon collection")
    assert cutflow["missing_collections"] == {str(f): ["Electron", "FatJet", "Muon"] for f in files}
    objects = _objects(table)
    for coll in ("FatJet", "Electron", "Muon"):
        assert (objects[:, _rows(coll)] == 0).all()


def test_missing_required_branches_are_all_listed_in_one_line(tmp_path):
    path = write_delphes(
        tmp_path / "r.root",
        random_events(50, seed=1),
        drop=["Photon/Photon.PT", "Photon/Photon.E", "Event/Event.Weight"] + _drop("FatJet"),
    )
    with pytest.raises(SaladError) as err:
        preselect([str(path)], "ggH", 2, 1, 10.0, CFG)
    assert str(err.value) == (
        f"{path}: tree 'Delphes' has no branch Event/Event.Weight, "
        "Photon/Photon.PT, Photon/Photon.E (3 missing branch(es))"
    )


def test_partly_missing_optional_collection_is_an_error(tmp_path):
    """An optional collection counts as absent only when none of its fields exists."""
    path = write_delphes(tmp_path / "p.root", random_events(50, seed=1), drop=["Muon/Muon.Eta"])
    with pytest.raises(SaladError, match=r"p\.root: tree 'Delphes' has no branch Muon/Muon\.Eta \(1 missing"):
        preselect([str(path)], "ggH", 2, 1, 10.0, CFG)


def test_generator_switch_zeroes_small_r_nsubjettiness(tmp_path):
    import awkward as ak
    import uproot

    from salad import generate as gen

    spec = gen.process_spec(PROCESSES, "ttH")
    path = tmp_path / "ttH.root"
    gen.generate(spec, 40, 5, 40, False, path, detector={"small_r_nsubjettiness": False})
    tree = uproot.open(path)["Delphes"]
    jet_tau, fat_tau = (tree[f"{c}/{c}.Tau[5]"].array() for c in ("Jet", "FatJet"))
    assert ak.sum(ak.num(jet_tau, axis=1)) > 20 and ak.all(ak.flatten(jet_tau, axis=None) == 0)
    assert ak.any(ak.flatten(fat_tau, axis=None) > 0)  # fat jets keep their N-subjettiness


# --------------------------------------------------------------------------- leftovers, OS errors
def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    out = tmp_path / "state.pt"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    stale = tmp_path / f".state.pt.tmp{dead}"
    stale.write_bytes(b"")  # what a SIGKILLed writer leaves
    live = tmp_path / f".state.pt.tmp{os.getppid()}"  # a running process: kept
    live.write_bytes(b"")
    other = tmp_path / f".other.pt.tmp{dead}"  # another output's: not ours to touch
    other.write_bytes(b"")
    with artifacts.atomic_output(out) as tmp:
        tmp.write_text("new")
    assert out.read_text() == "new"
    assert not stale.exists() and live.exists() and other.exists()


def test_disk_full_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    def full(table, where, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(artifacts.pq, "write_table", full)
    out = tmp_path / "x.parquet"
    with pytest.raises(SaladError) as err:
        artifacts.write_parquet(__import__("pandas").DataFrame({"a": [1]}), out, {})
    assert str(err.value) == f"{out}: cannot write (No space left on device)"
    assert not list(tmp_path.iterdir())


def test_os_error_in_a_stage_is_one_line(monkeypatch, capsys):
    import salad.inspect

    def denied(argv):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/data/x.root")

    monkeypatch.setattr(salad.inspect, "cli", denied)
    assert main(["inspect", "whatever"]) == 1
    assert capsys.readouterr().err == "salad: error: /data/x.root: Permission denied\n"


# --------------------------------------------------------------------------- provenance
def test_provenance_has_code_version_and_streamed_input_hashes(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "in" / "a.bin"
    data.parent.mkdir()
    data.write_bytes(os.urandom(3 << 20) + b"tail")  # > 1 block: hashed in pieces
    artifacts.reset_inputs()
    artifacts.note_input(data)
    artifacts.write_parquet(
        __import__("pandas").DataFrame({"a": [1]}),
        tmp_path / "o.parquet",
        artifacts.provenance("test", {"k": 1}, code=2),
    )  # a stage extra "code"
    prov = artifacts.read_provenance(tmp_path / "o.parquet")
    assert prov["inputs"] == {"in/a.bin": hashlib.sha256(data.read_bytes()).hexdigest()[:16]}
    assert prov["stage"] == "test" and prov["config_hash"] == artifacts.config_hash({"k": 1})
    assert prov["code"] == 2  # extras are kept as they are
    code = prov["code_version"]
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert code["git_commit"] == commit and isinstance(code["git_dirty"], bool)


def test_code_version_outside_git_is_the_package_version(monkeypatch, tmp_path):
    import salad

    monkeypatch.setattr(artifacts, "_REPO", tmp_path)
    artifacts.code_version.cache_clear()
    try:
        assert artifacts.code_version() == {"package_version": salad.__version__}
    finally:
        artifacts.code_version.cache_clear()


def test_inspect_reads_a_checkpoint(tmp_path, capsys):
    import torch

    path = tmp_path / "m.pt"
    artifacts.save_checkpoint(
        {"state_dict": {"w": torch.zeros(2, 3)}, "seed": 4}, path, artifacts.provenance("fit-flow", {"a": 1})
    )
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert '"stage": "fit-flow"' in out and "key state_dict: state dict, 1 tensors, 6 values" in out
    assert "key seed: 4" in out
    assert json.loads(out.split("provenance: ")[1].splitlines()[0])["config_hash"] == artifacts.config_hash(
        {"a": 1}
    )
