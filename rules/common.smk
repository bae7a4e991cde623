"""Shared by every rule file: config validation, sample tables, input functions."""
import json
import os
import shlex
import sys
from pathlib import Path

import yaml
from snakemake.utils import validate


validate(config, "../workflow/schemas/config.schema.yaml")

BASE = Path(workflow.basedir)
PYTHON = "python -m salad"
# Jobs run the Python that runs Snakemake (e.g. .venv) unless a conda env (--sdm conda) is
# activated in front of it, and import the library from this checkout, installed or not.
os.environ["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", "")))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(BASE / "src"), os.environ.get("PYTHONPATH", "")) if p
)


def repo_path(path):
    """A config path: absolute as given, else relative to the workflow folder."""
    path = Path(path)
    return path if path.is_absolute() else BASE / path


PROCESSES = yaml.safe_load(repo_path(config["processes"]).read_text())["processes"]
SAMPLES = list(config["samples"])
_unknown = [s for s in SAMPLES if s not in PROCESSES]
if _unknown:
    raise ValueError(
        f"config key samples: unknown process(es) {_unknown}; defined in {config['processes']}"
    )
SIGNALS = [s for s in SAMPLES if PROCESSES[s]["group"] < 0]
BACKGROUNDS = [s for s in SAMPLES if PROCESSES[s]["group"] >= 0]


wildcard_constraints:
    sample="[A-Za-z0-9_]+",
    signal="[A-Za-z0-9_]+",
    setup="[A-Za-z0-9_]+",
    seed=r"\d+",
    strength=r"[0-9.]+",
    instance=r"\d+",


def cfg_arg(*sections, **extra):
    """Shell-quoted JSON of the named config sections (plus extra values) for --config.

    Passed via `params:` so that editing a section re-runs exactly the rules that read it.
    """
    payload = {name: config[name] for name in sections}
    payload.update(extra)
    return shlex.quote(json.dumps(payload, sort_keys=True))


def threads_for(stage):
    """Threads a stage may use (config `threads`, capped by --cores at run time)."""
    return config["threads"].get(stage, 1)


_TARGETS = {}


def register_targets(name, function):
    """Each rule file registers a function returning its final targets for `rule all`."""
    _TARGETS[name] = function


def all_targets(wildcards):
    return [t for name in sorted(_TARGETS) for t in _TARGETS[name]()]
