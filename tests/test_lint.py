"""`snakemake --lint` finds nothing to complain about, on every shipped configuration."""
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.parametrize("config", ["config.yaml", "test.yaml"])
def test_snakemake_lint_is_clean(config):
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "--snakefile", str(REPO / "Snakefile"),
         "--configfile", str(REPO / "config" / config)],
        capture_output=True, text=True, timeout=300, cwd=REPO)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Lints for" not in out, out[-3000:]
