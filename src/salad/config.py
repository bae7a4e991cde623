"""Configuration: loading, schema validation, and the per-stage JSON hand-off.

The Snakefile validates the whole config against `workflow/schemas/config.schema.yaml`
(the same function runs here for tests and the CLI). Rules hand each stage only the
config subsection it depends on, as a JSON string, so editing a setting invalidates
exactly the steps that read it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import SaladError

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file, with a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.exists():
        raise SaladError(f"{path}: file not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SaladError(f"{path}: invalid YAML ({exc})") from None


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


def load_config(path: str | Path) -> dict:
    """Load and validate a pipeline config file."""
    return validate(load_yaml(path), source=str(path))


def parse_stage_config(text: str | None) -> dict:
    """Decode the JSON config subsection a rule passed on the command line."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SaladError(f"--config: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise SaladError("--config: expected a JSON object")
    return value
