"""Config files validate against the schema; typos and bad values fail naming the key."""

import copy
from pathlib import Path

import pytest
import yaml

from salad.config import load_config, load_yaml, validate
from salad.errors import SaladError

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "config").glob("*.yaml"))


# processes.yaml (process table) and paper_claims.yaml (salad.comparison) are data files, not run configs
@pytest.mark.parametrize(
    "path",
    [p for p in CONFIGS if p.name not in ("processes.yaml", "paper_claims.yaml")],
    ids=lambda p: p.name,
)
def test_shipped_configs_are_valid(path):
    config = load_config(path)
    processes = load_yaml(REPO / config["processes"])["processes"]
    assert set(config["samples"]) <= set(processes)


@pytest.fixture
def config():
    return load_yaml(REPO / "config" / "test.yaml")


def test_typo_in_key_is_named(config):
    bad = copy.deepcopy(config)
    bad["preselect"]["chunk_sise"] = 100
    with pytest.raises(SaladError, match=r"key preselect.*chunk_sise"):
        validate(bad)


def test_out_of_range_value_is_named(config):
    bad = copy.deepcopy(config)
    bad["split"]["encoder_fraction"] = 1.5
    with pytest.raises(SaladError, match=r"key split\.encoder_fraction"):
        validate(bad)


def test_unknown_top_level_key(config):
    bad = copy.deepcopy(config)
    bad["generat"] = {}
    with pytest.raises(SaladError, match="generat"):
        validate(bad)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(SaladError, match="nope.yaml: file not found"):
        load_config(tmp_path / "nope.yaml")


def test_stage_defaults_live_in_one_place_and_unknown_keys_are_errors():
    """merge_defaults: DEFAULTS <- section, one level deeper for dict defaults; a key nobody
    reads is an error naming section.key (it used to be dropped silently)."""
    from salad.cathode import classify, evaluate, flow, template
    from salad.config import merge_defaults

    defaults = {"a": 1, "b": {"x": 1, "y": 2}}
    assert merge_defaults("s", {"b": {"y": 5}}, defaults) == {"a": 1, "b": {"x": 1, "y": 5}}
    assert merge_defaults("s", None, defaults) == defaults
    with pytest.raises(SaladError, match=r"unknown key\(s\) s\.c"):
        merge_defaults("s", {"c": 0}, defaults)
    with pytest.raises(SaladError, match=r"s\.b\.z"):
        merge_defaults("s", {"b": {"z": 0}}, defaults)
    assert flow.settings({"count": 4, "template": {}, "hidden": 8})["hidden"] == 8
    for module, section in (
        (flow, "flow"),
        (classify, "classifier"),
        (evaluate, "evaluate"),
        (template, "flow.template"),
    ):
        with pytest.raises(SaladError, match=rf"{section}\.hiden"):
            module.settings({"hiden": 8})
    # every shipped configuration passes (no key is dropped or unknown)
    for name in ("test.yaml", "config.yaml", "paper.yaml"):
        config = load_config(REPO / "config" / name)
        flow.settings(config["flow"])
        template.settings(config["flow"].get("template"))
        classify.settings(config["classifier"])
        evaluate.settings(config["evaluate"])


# ---------------------------------------------------------------- process table schema


def _table(tmp_path, body: str) -> Path:
    path = tmp_path / "processes.yaml"
    path.write_text(body)
    return path


def test_process_table_schema_accepts_the_shipped_table():
    from salad.config import load_processes

    table = load_processes(REPO / "config" / "processes.yaml")
    assert {"yy", "yy_sr", "ggH", "ggH_eval", "C1N2_300", "Y400"} <= set(table)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{code: x, group: 0}", "key processes.yy.code: 'x' is not of type 'integer'"),
        ("{code: 1}", "key processes.yy: 'group' is a required property"),
        ("{code: 1, group: 0, xsec_fb: -2.0}", "key processes.yy.xsec_fb: -2.0 is less than or equal to"),
        ("{code: 1, group: 0, higgs: forced}", "key processes.yy.higgs: 'forced' is not one of"),
        (
            "{code: 1, group: 0, xsecfb: 2.0}",
            "Additional properties are not allowed ('xsecfb' was unexpected)",
        ),
        ("{code: 1, group: 0, pythia: [1]}", "key processes.yy.pythia.0: 1 is not valid under any of"),
    ],
)
def test_process_table_schema_names_file_and_key(tmp_path, entry, message):
    from salad.config import load_processes

    path = _table(tmp_path, f"processes:\n  yy: {entry}\n")
    with pytest.raises(SaladError) as err:
        load_processes(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_process_codes_are_unique(tmp_path):
    from salad.config import load_processes

    path = _table(tmp_path, "processes:\n  yy: {code: 1, group: 0}\n  ggH: {code: 1, group: 1}\n")
    with pytest.raises(SaladError, match=r"processes.ggH.code: 1 is also the code of yy"):
        load_processes(path)


def test_bad_process_table_fails_the_dag_at_parse_time(tmp_path):
    """A wrong type in the process table stops `snakemake -n` with the file and key, before any job."""
    import shutil
    import subprocess
    import sys

    text = (REPO / "config" / "processes.yaml").read_text().replace("    code: 2\n", "    code: two\n", 1)
    assert "code: two" in text
    procs = _table(tmp_path, text)
    cfg = load_yaml(REPO / "config" / "test.yaml")
    cfg["processes"] = str(procs)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    snakemake = shutil.which("snakemake", path=str(Path(sys.executable).parent))
    res = subprocess.run(
        [
            snakemake,
            "-s",
            str(REPO / "Snakefile"),
            "-n",
            "--cores",
            "1",
            "--configfile",
            str(tmp_path / "c.yaml"),
            "-d",
            str(tmp_path / "w"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert res.returncode != 0
    assert f"{procs}: key processes.ggH.code: 'two' is not of type 'integer'" in res.stdout + res.stderr
