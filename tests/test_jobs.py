"""Job granularity (issue 17): the planned DAGs stay small enough for a laptop and a cluster.

One `cathode` job per (encoder, batch of pseudo-data sets), NPLM fits batched per
representation, toys per `nplm.toys_per_batch`: the laptop default plans <= 150 jobs and
config/paper.yaml <= 2,000 (many SLURM sites cap a user at a few thousand queued jobs, and
per-job start-up would dominate seconds-long jobs). The dry-run time and memory of the paper
DAG are measured in docs/scaling.md, not asserted here (they depend on the machine's load).
"""

from __future__ import annotations

import re

import pytest

from conftest import REPO, run_snakemake

LIMITS = {"config.yaml": 150, "paper.yaml": 2000}


def planned_jobs(tmp_path, config: str) -> dict[str, int]:
    """{rule: planned job count} of a dry run of `config` in an empty working directory."""
    proc = run_snakemake(tmp_path, "-n", "--quiet", "rules", config=REPO / "config" / config, timeout=600)
    counts = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        m = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if m:
            counts[m.group(1)] = int(m.group(2))
    assert counts.get("total"), f"no job table in the dry run of {config}"
    return counts


@pytest.mark.parametrize("config", sorted(LIMITS))
def test_planned_job_count(tmp_path, config):
    counts = planned_jobs(tmp_path, config)
    total = counts.pop("total")
    assert total == sum(counts.values())
    assert total <= LIMITS[config], f"{config} plans {total} jobs: {counts}"
    # the granularity the counts rest on: references live in the cathode job, NPLM fits are
    # batched (no rule per pseudo-data set and flow/classifier)
    assert not {"classify_reference", "fit_flow", "sample_sr", "classify", "tsne_nplm"} & set(counts)
    assert counts["nplm_fit"] <= counts["nplm_summary"]
