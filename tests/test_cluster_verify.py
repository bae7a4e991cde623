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


def test_checkpoint_provenance_compares_input_names_not_hashes():
    def ckpt(h, w):
        return {"state": [w], "provenance": {"inputs": {"results/a.parquet": h}, "git_commit": "c"}}

    same = verify._comparable_checkpoint
    assert verify.same_value(same(ckpt("h1", 1.0)), same(ckpt("h2", 1.0))) is None  # hashes aside
    assert verify.same_value(same(ckpt("h1", 1.0)), same(ckpt("h1", 2.0)))  # the weights count
    other = {"state": [1.0], "provenance": {"inputs": {"results/b.parquet": "h1"}, "git_commit": "c"}}
    assert verify.same_value(same(ckpt("h1", 1.0)), same(other))  # another input file counts
