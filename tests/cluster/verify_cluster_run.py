"""Check a pipeline run made through SLURM against a local run of the same config.

    python tests/cluster/verify_cluster_run.py LOCAL_WORKDIR SLURM_WORKDIR [--slurmctld-log FILE]

Two checks, both must pass (exit 0), else a list of problems and exit 1:

1. The jobs really went through sbatch: both runs executed the same jobs per rule; every job
   the SLURM run did not run as a `localrule` appears in its snakemake log as
   "Job N has been submitted with SLURM jobid X"; each such job has its SLURM output file
   .snakemake/slurm_logs/rule_<rule>/<X>.log (kept with --slurm-keep-successful-logs), jobs
   bundled into group jobs (profile `groups`) are covered by group_<name> submissions, and,
   where the controller log is readable, slurmctld logged "_job_complete: JobId=X WEXITSTATUS 0"
   during this run. With --planned (the output of `snakemake -n --quiet rules` for the same
   config and targets, made before the run), the sbatch submissions plus the jobs run on the
   host must equal the planned job count, per rule and in total.
   No sacct is needed (the test cluster runs without accounting).
2. Same config gives identical numbers: the two results/ trees hold the same files (logs and
   benchmarks aside); Parquet tables are equal including their provenance metadata, ROOT
   files hold equal trees (the file bytes carry timestamps), JSON, Markdown tables and torch
   checkpoints are equal in content, every other file is byte-identical; plots and HTML
   (creation dates in their metadata) only have to exist in both. Measured run times
   (columns/keys named like `seconds`, `fit_seconds`, `time_s`) are the only values skipped.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import torch
import uproot

from salad.scaling import parse_job_counts

SKIP_DIRS = {"logs", "benchmarks"}  # wall times and host names differ by design
EXIST_ONLY = {".png", ".pdf", ".svg", ".html"}  # creation dates in their metadata
# Measured run times (a column, JSON key or checkpoint entry named like `seconds`,
# `fit_seconds`, `seconds_per_toy`, `time_s`, `events_per_s`) legitimately differ between runs.
TIMING = re.compile(r"(^|_)(seconds|time_s|per_s|elapsed|wall)(_|$)")
# ... and, in the Markdown tables, a column headed in seconds per unit ("s per toy")
TIMING_HEADER = re.compile(r"^s per ")
# "Job N has been submitted ..."; a group job's N is a UUID
SUBMITTED = re.compile(r"Job (\S+) has been submitted with SLURM jobid (\d+) \(log: (.+?)\)")
RULE_LINE = re.compile(r"^( *)(local)?rule (\w+):", re.M)  # indented: a job inside a group job


def result_files(workdir: Path) -> dict[str, Path]:
    """{relative path: path} of every artifact under workdir/results (not logs/benchmarks)."""
    root = workdir / "results"
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and rel.parts[0] not in SKIP_DIRS and not path.name.startswith("."):
            files[str(rel)] = path
    return files


def compare_root(a: Path, b: Path) -> str | None:
    """None if both ROOT files hold the same objects and equal TTree branches."""
    with uproot.open(a) as fa, uproot.open(b) as fb:
        keys_a, keys_b = sorted(fa.keys(cycle=False)), sorted(fb.keys(cycle=False))
        if keys_a != keys_b:
            return f"different keys {keys_a} vs {keys_b}"
        for key in keys_a:
            obj_a, obj_b = fa[key], fb[key]
            if not isinstance(obj_a, uproot.TTree):
                continue
            if sorted(obj_a.keys()) != sorted(obj_b.keys()):
                return f"{key}: different branches"
            if not ak.array_equal(obj_a.arrays(), obj_b.arrays(), equal_nan=True):
                return f"{key}: branch values differ"
    return None


def _input_names(value):
    """A provenance record (dict with an `inputs` {path: hash} dict) with `inputs` reduced to
    the paths: a generated ROOT file's bytes hold its generation wall time (salad.generate's
    summary `seconds`), so its hash, and the hash of every file whose provenance lists it,
    differs between runs; every input is itself a result file compared by content. Any other
    value is returned as it is."""
    if isinstance(value, dict) and isinstance(value.get("inputs"), dict):
        return {**value, "inputs": sorted(value["inputs"])}
    return value


def _comparable_metadata(meta) -> dict:
    """Schema metadata with JSON values decoded and provenance inputs reduced to their names."""
    out = {}
    for key, value in (meta or {}).items():
        try:
            value = json.loads(value)
        except ValueError:
            pass
        out[key] = _input_names(value)
    return out


def _comparable_checkpoint(obj):
    """A loaded checkpoint with its provenance inputs reduced to their names."""
    if isinstance(obj, dict) and "provenance" in obj:
        return {**obj, "provenance": _input_names(obj["provenance"])}
    return obj


def compare_parquet(a: Path, b: Path) -> str | None:
    """None if both tables have equal metadata (provenance), schema and non-timing columns."""
    ta, tb = pq.read_table(a), pq.read_table(b)
    ma, mb = (_comparable_metadata(t.schema.metadata) for t in (ta, tb))
    if set(ma) != set(mb) or any(same_value(ma[k], mb[k], k) for k in ma):
        return "provenance/schema metadata differ"
    if ta.schema.remove_metadata() != tb.schema.remove_metadata():
        return f"schemas differ:\n{ta.schema}\nvs\n{tb.schema}"
    for name in ta.column_names:
        if not TIMING.search(name) and not ta[name].equals(tb[name]):
            return f"column {name!r} differs"
    return None


def same_value(x, y, path="") -> str | None:
    """None if two loaded objects (dicts, lists, tensors, arrays, scalars) are equal, entries
    whose key looks like a timing aside; else the path of the first difference."""
    if isinstance(x, dict):
        if not isinstance(y, dict) or set(x) != set(y):
            return path or "keys differ"
        for key in x:
            if not TIMING.search(str(key)):
                diff = same_value(x[key], y[key], f"{path}/{key}")
                if diff:
                    return diff
        return None
    if isinstance(x, (list, tuple)):
        if not isinstance(y, (list, tuple)) or len(x) != len(y):
            return path or "lengths differ"
        return next(
            (d for i, (u, v) in enumerate(zip(x, y)) if (d := same_value(u, v, f"{path}[{i}]"))), None
        )
    if isinstance(x, torch.Tensor):
        return None if isinstance(y, torch.Tensor) and torch.equal(x, y) else path or "tensor"
    if isinstance(x, np.ndarray):
        return None if np.array_equal(x, y, equal_nan=x.dtype.kind == "f") else path or "array"
    return None if x == y or (x != x and y != y) else path or "value"


def masked_markdown(text: str) -> list[str]:
    """Lines of a Markdown file with the cells of timing columns of every table blanked."""
    lines, timing_cols = text.splitlines(), set()
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            timing_cols = set()
            continue
        cells = line.strip("|").split("|")
        if i + 1 < len(lines) and lines[i + 1].startswith("|---"):  # header row
            timing_cols = {
                j
                for j, cell in enumerate(cells)
                if TIMING.search(cell.strip()) or TIMING_HEADER.match(cell.strip())
            }
        lines[i] = "|".join("" if j in timing_cols else c for j, c in enumerate(cells))
    return lines


def compare_file(a: Path, b: Path) -> str | None:
    """None if two artifacts agree in content (see the module docstring); else the problem."""
    suffix = a.suffix
    if suffix == ".parquet":
        return compare_parquet(a, b)
    if suffix == ".root":
        return compare_root(a, b)
    if suffix in EXIST_ONLY:
        return None
    if suffix == ".json":
        diff = same_value(json.loads(a.read_text()), json.loads(b.read_text()))
    elif suffix == ".md":
        diff = None if masked_markdown(a.read_text()) == masked_markdown(b.read_text()) else "table"
    elif suffix == ".pt":
        diff = same_value(*(_comparable_checkpoint(torch.load(p, weights_only=False)) for p in (a, b)))
    else:
        diff = None if a.read_bytes() == b.read_bytes() else "bytes"
    return f"content differs at {diff}" if diff else None


def compare_results(local: Path, slurm: Path) -> tuple[list[str], collections.Counter]:
    """Problems found comparing the two results/ trees, and a count of files per kind."""
    problems, kinds = [], collections.Counter()
    fa, fb = result_files(local), result_files(slurm)
    for rel in sorted(set(fa) ^ set(fb)):
        problems.append(f"results/{rel}: only in the {'local' if rel in fa else 'SLURM'} run")
    for rel in sorted(set(fa) & set(fb)):
        kinds[Path(rel).suffix or "(none)"] += 1
        error = compare_file(fa[rel], fb[rel])
        if error:
            problems.append(f"results/{rel}: {error}")
    if not fa:
        problems.append("the local run produced no results/ files: nothing was compared")
    return problems, kinds


def snakemake_log(workdir: Path) -> str:
    """Text of the newest snakemake log of a workdir."""
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        raise SystemExit(f"{workdir}: no snakemake log under .snakemake/log")
    return logs[-1].read_text()


def rule_counts(log: str) -> tuple[collections.Counter, collections.Counter, collections.Counter]:
    """Jobs per rule in a snakemake log: (all jobs, jobs run on this host as `localrule`,
    jobs that ran inside a group job)."""
    every, local, grouped = collections.Counter(), collections.Counter(), collections.Counter()
    for indent, local_flag, rule in RULE_LINE.findall(log):
        every[rule] += 1
        local[rule] += bool(local_flag)
        grouped[rule] += bool(indent)
    return every, +local, +grouped


def check_planned(
    planned: Mapping[str, int],
    by_rule: Mapping[str, int],
    on_host: Mapping[str, int],
    grouped: Mapping[str, int],
) -> list[str]:
    """Problems unless each rule's planned jobs = its own sbatch submissions + jobs run on the
    host (localrules) + jobs inside group submissions; the total is printed."""
    problems = []
    submitted = sum(n for r, n in by_rule.items() if not r.startswith("group_"))
    for rule in sorted(set(planned) | set(by_rule) | set(on_host)):
        if rule.startswith("group_"):
            continue
        got = by_rule.get(rule, 0) + on_host.get(rule, 0) + grouped.get(rule, 0)
        if got != planned.get(rule, 0):
            problems.append(
                f"rule {rule}: {planned.get(rule, 0)} jobs planned by the dry run, but "
                f"{by_rule.get(rule, 0)} sbatch submissions + {on_host.get(rule, 0)} on the "
                f"host + {grouped.get(rule, 0)} in group jobs"
            )
    total = sum(planned.values())
    print(
        f"planned jobs (dry run): {total}; sbatch submissions: {submitted} single + "
        f"{sum(n for r, n in by_rule.items() if r.startswith('group_'))} group; "
        f"on the host: {sum(on_host.values())}"
    )
    return problems


def check_submissions(
    local: Path,
    slurm: Path,
    slurmctld_log: Path | None,
    slurmctld_offset: int = 0,
    planned: Mapping[str, int] | None = None,
) -> tuple[list[str], dict]:
    """Problems with the evidence that every non-local job ran as a SLURM job."""
    problems = []
    expected, _, _ = rule_counts(snakemake_log(local))  # a --cores run shows all as localrule
    slurm_text = snakemake_log(slurm)
    executed, on_host, grouped = rule_counts(slurm_text)
    remote = executed - on_host - grouped  # each submitted on its own
    submissions = SUBMITTED.findall(slurm_text)
    by_rule = collections.Counter()
    controller = None
    if slurmctld_log:
        with open(slurmctld_log, "rb") as handle:  # only what this run logged
            handle.seek(slurmctld_offset)
            controller = handle.read().decode(errors="replace")
    for _jobid, slurm_id, log in submissions:
        # the log path as the SLURM run wrote it, found under the workdir given here
        log_path = slurm / ".snakemake" / "slurm_logs" / log.split("/.snakemake/slurm_logs/", 1)[-1]
        # .snakemake/slurm_logs/rule_<rule>[/<wildcard values>]/<slurm id>.log, or
        # .snakemake/slurm_logs/group_<group>/<slurm id>.log for a group job
        rule = next(
            (
                part.removeprefix("rule_") if part.startswith("rule_") else part
                for part in reversed(log_path.parts)
                if part.startswith(("rule_", "group_"))
            ),
            "?",
        )
        by_rule[rule] += 1
        if log_path.name != f"{slurm_id}.log" or not log_path.is_file():
            problems.append(f"SLURM job {slurm_id} ({rule}): no SLURM output file {log_path}")
        if controller is not None and not re.search(
            rf"_job_complete: JobId={slurm_id} WEXITSTATUS 0\b", controller
        ):
            problems.append(f"SLURM job {slurm_id} ({rule}): slurmctld logged no exit status 0")
    if not submissions:
        problems.append("no job was submitted with sbatch")
    if executed != expected:
        problems.append(f"jobs per rule differ: local run {dict(expected)}, SLURM run {dict(executed)}")
    single = collections.Counter({r: n for r, n in by_rule.items() if not r.startswith("group_")})
    if single != remote:
        problems.append(f"remote jobs {dict(remote)} but sbatch submissions {dict(single)}")
    groups = sum(n for r, n in by_rule.items() if r.startswith("group_"))
    if grouped and not 0 < groups <= sum(grouped.values()):
        problems.append(f"{dict(grouped)} jobs ran in group jobs, but {groups} group submissions")
    if planned is not None:
        problems += check_planned(planned, by_rule, on_host, grouped)
    print(f"jobs inside group jobs: {dict(grouped)}")
    print(f"run on the submitting host (localrules): {dict(on_host)}")
    return problems, dict(by_rule)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("local", type=Path, help="workdir of the local run")
    parser.add_argument("slurm", type=Path, help="workdir of the SLURM run")
    parser.add_argument(
        "--slurmctld-log",
        type=Path,
        default=None,
        help="controller log to cross-check job completions (optional)",
    )
    parser.add_argument(
        "--slurmctld-offset",
        type=int,
        default=0,
        help="size of that log before the SLURM run (job ids restart after a purge)",
    )
    parser.add_argument(
        "--planned",
        type=Path,
        default=None,
        help="output of `snakemake -n --quiet rules` for the same config/targets",
    )
    args = parser.parse_args(argv)
    planned = parse_job_counts(args.planned.read_text(), str(args.planned)) if args.planned else None
    ctl = args.slurmctld_log if args.slurmctld_log and args.slurmctld_log.is_file() else None
    problems, by_rule = check_submissions(args.local, args.slurm, ctl, args.slurmctld_offset, planned)
    diffs, kinds = compare_results(args.local, args.slurm)
    problems += diffs
    print(
        f"SLURM jobs per rule: {by_rule} (total {sum(by_rule.values())})"
        + ("; slurmctld completion records checked" if ctl else "")
    )
    print(f"compared {sum(kinds.values())} result files: {dict(kinds)}")
    for problem in problems:
        print(f"FAIL: {problem}")
    if not problems:
        print("OK: every job went through sbatch and both runs gave identical results")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
