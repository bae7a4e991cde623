"""Shared fixtures: the end-to-end Snakemake run on config/test.yaml (once per session)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def run_snakemake(
    workdir: Path,
    *args: str,
    config: Path = REPO / "config" / "test.yaml",
    check: bool = True,
    timeout: float = 3000,
) -> subprocess.CompletedProcess:
    """Run the pipeline's Snakefile in `workdir` on `config`; returns the finished process."""
    cmd = [
        *SNAKEMAKE,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config),
        "--cores",
        "2",
        *args,
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tests run torch on one thread: results depend on the thread count, and CI has 2 cores."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory) -> Path:
    """Working directory after the whole DAG ran on config/test.yaml."""
    workdir = tmp_path_factory.mktemp("pipeline")
    run_snakemake(workdir)
    return workdir
