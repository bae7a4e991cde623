"""The local-vs-SLURM comparison of `make test-cluster` blanks only timing columns."""

import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location(
    "verify_cluster_run", Path(__file__).parent / "cluster" / "verify_cluster_run.py"
)
verify = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(verify)


def test_markdown_timing_columns_are_blanked_and_nothing_else():
    table = (
        "intro\n"
        "| representation | KS p-value | s per toy | fit_seconds |\n"
        "|---|---|---|---|\n"
        "| simclr | {ks} | {t} | {f} |\n"
    )
    a = verify.masked_markdown(table.format(ks="0.40", t="0.0033", f="1.2"))
    assert a == verify.masked_markdown(table.format(ks="0.40", t="0.0041", f="3.4"))  # timing only
    assert a != verify.masked_markdown(table.format(ks="0.41", t="0.0033", f="1.2"))  # a physics cell
