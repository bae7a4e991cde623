"""Lint and format: `snakemake --lint` on every shipped configuration, ruff (check and format)
on src/ and tests/, snakefmt on the Snakefile and rules/ (line length in pyproject.toml)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO


@pytest.mark.parametrize("config", ["config.yaml", "test.yaml"])
def test_snakemake_lint_is_clean(config):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--lint",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--configfile",
            str(REPO / "config" / config),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Lints for" not in out, out[-3000:]


def _ruff() -> str:
    local = Path(sys.executable).with_name("ruff")
    found = str(local) if local.exists() else shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed: `make setup` (requirements.txt pins it)")
    return found


def test_ruff_check_is_clean():
    proc = subprocess.run(
        [_ruff(), "check", "--no-cache", "src", "tests"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]


def test_ruff_format_is_clean():
    proc = subprocess.run(
        [_ruff(), "format", "--check", "--no-cache", "src", "tests"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]


def test_snakefmt_is_clean():
    local = Path(sys.executable).with_name("snakefmt")
    found = str(local) if local.exists() else shutil.which("snakefmt")
    if found is None:
        pytest.fail("snakefmt is not installed: `make setup` (requirements.txt pins it)")
    proc = subprocess.run(
        [found, "--check", "Snakefile", "rules"], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
