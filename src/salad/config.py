"""Configuration: loading, schema validation, and the per-stage JSON hand-off.

The Snakefile validates the whole config against `workflow/schemas/config.schema.yaml`
(the same function runs here for tests and the CLI). Rules hand each stage only the
config subsection it depends on, as a JSON string, so editing a setting invalidates
exactly the steps that read it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .artifacts import note_input
from .errors import SaladError

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
PROCESS_SCHEMA = REPO / "workflow" / "schemas" / "processes.schema.yaml"


class _StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that rejects a key given twice in one mapping (instead of keeping the
    last value). Merge keys (`<<: *anchor`) may still be overridden, as YAML intends."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:  # unhashable key: SafeLoader reports it
                    continue
                if first is not key_node.start_mark:
                    raise yaml.MarkedYAMLError(
                        problem=f"duplicate key {key!r} (first given on line {first.line + 1})",
                        problem_mark=key_node.start_mark,
                    )
        return super().construct_mapping(node, deep)


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file, with a one-line error naming file and line for a missing or
    malformed file or a key given twice in one mapping."""
    path = Path(path)
    if not path.exists():
        raise SaladError(f"{path}: file not found")
    if path.resolve() not in (SCHEMA, PROCESS_SCHEMA):
        note_input(path)
    try:
        return yaml.load(path.read_text(), Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        detail = f"{context}: {problem}" if context and "duplicate" not in problem else problem
        raise SaladError(f"{where}: invalid YAML ({detail})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SaladError(f"{path}: cannot read ({exc})") from None


def validate(config: dict, schema_path: str | Path = SCHEMA, source: str = "config") -> dict:
    """Validate `config` against the schema, filling defaults; raise SaladError naming the key."""
    schema = load_yaml(schema_path)
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise SaladError(f"{source}: key {key}: {err.message}")
    return config


def load_processes(path: str | Path) -> dict:
    """The `processes` mapping of a process table YAML file, validated against
    workflow/schemas/processes.schema.yaml; process codes must be unique (they make event ids)."""
    table = load_yaml(path)
    if not isinstance(table, dict) or not isinstance(table.get("processes"), dict):
        raise SaladError(f"{path}: expected a top-level mapping 'processes'")
    validate(table, PROCESS_SCHEMA, source=str(path))
    by_code: dict = {}
    for name, entry in table["processes"].items():
        other = by_code.setdefault(entry["code"], name)
        if other != name:
            raise SaladError(
                f"{path}: key processes.{name}.code: {entry['code']} is also the code of {other} "
                "(codes make the event ids and must be unique)"
            )
    return table["processes"]


def process_table_arg(processes: str | None, spec: str | None, sample: str) -> tuple[dict, str]:
    """({process: entry}, source label) from a stage's `--processes PATH` (the process table)
    or `--spec JSON` (the one entry of `sample`, as the rules pass it: no path enters the DAG
    and editing one process re-runs only its sample)."""
    if (processes is None) == (spec is None):
        raise SaladError("give exactly one of --processes (process table) and --spec (entry JSON)")
    if processes is not None:
        return load_processes(processes), str(processes)
    return {sample: json_object(spec, "--spec")}, f"--spec ({sample})"


def load_config(path: str | Path) -> dict:
    """Load and validate a pipeline config file (schema and cross-checks)."""
    config = validate(load_yaml(path), source=str(path))
    cross_check(config, load_processes(_config_path(config["processes"])), source=str(path))
    return config


def _config_path(value: str) -> Path:
    """A path from the config: absolute as given, else relative to the workflow folder."""
    return Path(value) if Path(value).is_absolute() else REPO / value


def _ordered_range(config: dict, key: str, source: str) -> tuple[float, float]:
    section, name = key.split(".")
    lo, hi = config[section][name]
    if not lo < hi:
        raise SaladError(f"{source}: key {key}: [{lo}, {hi}] is not an ordered range (low < high)")
    return lo, hi


def cross_check(config: dict, processes: dict, source: str = "config") -> None:
    """Checks across keys that the schema cannot express; SaladError naming the key.

    - preselect.myy_range and regions.signal_region are ordered ranges [GeV];
    - the signal region lies strictly inside the m_yy window (a sideband on both sides);
    - every sample, and every delphes_inputs key, is a process of the process table, and every
      delphes_inputs key is one of config `samples` (else its files would be ignored)."""
    lo, hi = _ordered_range(config, "preselect.myy_range", source)
    for name in config["regions"]:
        a, b = _ordered_range(config, f"regions.{name}", source)
        if not lo < a < b < hi:
            raise SaladError(
                f"{source}: key regions.{name}: [{a}, {b}] must lie strictly inside "
                f"preselect.myy_range [{lo}, {hi}] (sidebands on both sides)"
            )
    unknown = [s for s in config["samples"] if s not in processes]
    if unknown:
        raise SaladError(
            f"{source}: key samples: unknown process(es) {', '.join(unknown)}; "
            f"defined in {config['processes']}"
        )
    for sample in config.get("delphes_inputs") or {}:
        if sample not in processes:
            raise SaladError(
                f"{source}: key delphes_inputs.{sample}: unknown process; "
                f"defined in {config['processes']}: {', '.join(processes)}"
            )
        if sample not in config["samples"]:
            raise SaladError(
                f"{source}: key delphes_inputs.{sample}: not one of config key "
                f"samples ({', '.join(config['samples'])}); its files would be ignored"
            )


def merge_defaults(section: str, cfg: Mapping | None, defaults: Mapping, ignore: Sequence[str] = ()) -> dict:
    """The one defaults merge of every stage: `defaults` (the stage module's DEFAULTS, the only
    place a default lives) overridden by the config section `cfg`; a dict-valued default is
    merged one level deeper the same way. A key that is neither a default nor in `ignore`
    (keys of the section read by another consumer) is a SaladError naming `section.key`."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(defaults) - set(ignore))
    if unknown:
        raise SaladError(
            f"config: unknown key(s) {', '.join(f'{section}.{k}' for k in unknown)}"
            f" (known: {', '.join(sorted(defaults))})"
        )
    out = {**defaults, **{k: v for k, v in cfg.items() if k in defaults}}
    for key, value in defaults.items():
        if isinstance(value, Mapping) and cfg.get(key) is not None:
            out[key] = merge_defaults(f"{section}.{key}", cfg[key], value)
    return out


def parse_stage_config(text: str | None) -> dict:
    """Decode the JSON config subsection a rule passed on the command line."""
    return json_object(text, "--config") if text else {}


def json_object(text: str, option: str) -> dict:
    """Decode a command-line JSON object; SaladError naming `option` otherwise."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SaladError(f"{option}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise SaladError(f"{option}: expected a JSON object")
    return value


def cli(argv: list[str]) -> None:
    """`python -m salad check-config FILE...`: strict YAML (file and line of a syntax error or a
    duplicate key), schema and cross-checks, as `snakemake` applies them at parse time."""
    import argparse

    parser = argparse.ArgumentParser(prog="salad check-config", description=cli.__doc__)
    parser.add_argument("files", nargs="+", help="pipeline config YAML file(s)")
    for path in parser.parse_args(argv).files:
        config = load_config(path)
        print(f"{path}: ok ({len(config['samples'])} samples)")
