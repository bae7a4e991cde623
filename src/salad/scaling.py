"""Cost model of a planned run: `salad scaling` -> CPU-h, GPU-h, wall time, largest job (docs/scaling.md).

Inputs:
- the planned job list of the target config: the first "Job stats" table that
  `snakemake -n --quiet rules --configfile X` prints (--jobs FILE);
- the Snakemake benchmark TSVs of a measured run (--benchmarks results/benchmarks; columns
  `s`, `cpu_time` [CPU s], `max_rss` [MB]) and the config that run used (--measured-config);
- the rule files (--rules rules/, for each rule's benchmark path, `threads_for(...)` and
  whether it asks for a GPU) and optionally `snakemake --rulegraph` output (--rulegraph FILE).

Model (all stated in the output):
- a job of rule r costs c_r core-seconds = (mean measured core-seconds held by a job of r: wall
  time `s` x the threads the measured run gave the rule) x f_r, where f_r is the product
  of the ratios target/measured of the size keys in SCALES[r] (e.g. flow epochs, luminosity);
  rules without an entry are taken as size-independent (f = 1). Core-seconds held, not the
  benchmark's `cpu_time`: Snakemake samples the CPU time every 0.5 s for the first 15 s of a job,
  then every 30 s, so a 40-s job loses its last ~25 s (measured: cpu_time/s = 0.45-0.57 for the
  encoder, embedding and CATHODE jobs of a laptop run on 2 idle cores, 0.89 for generation);
  a cluster also bills the cores it holds;
- memory: the measured max_rss of the rule (not scaled);
- a job holds `threads` cores (the config's `threads` entry its rule uses) for c_r / threads s
  (perfect parallel speed-up: optimistic for the wall time, neutral for CPU-h);
- GPU-h: the summed durations of the jobs of GPU rules (rules with `_gpu_resources()`) when the
  target config sets `encoder.resources.gpu`, from the CPU measurement (no GPU speed-up assumed:
  an upper bound);
- wall time on N nodes x C cores (P = N*C): list scheduling of the whole DAG lies between
  max(W/P, CP) and W/P + CP (Graham's bound), W = total core-seconds, CP = the longest chain of
  the rule graph weighted by each rule's longest job (without --rulegraph: the sum of every
  rule's longest job, i.e. the rules run one after another).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from .errors import SaladError

#: Size keys (dotted config paths) a rule's per-job CPU time is taken to be proportional to.
#: "@events_per_generated_sample": the mean of generate.events_per_sample / generate.events over
#: the generated samples (config `samples` + the extra keys of events_per_sample);
#: "@generated_events": their sum; "@cathode_sets_per_job" / "@nplm_sets_per_job": pseudo-data sets
#: per `cathode` / `nplm_fit` job (cathode.datasets_per_job / nplm.datasets_per_job, or when null
#: all sets of one stored signal / of the configuration). Not scaled: model width (the paper
#: encoder is ~5x slower per
#: event on CPU, docs/benchmarks.md), early stopping (epochs = max_epochs assumed).
SCALES: dict[str, tuple[str, ...]] = {
    "generate": ("@events_per_generated_sample",),
    "preselect": ("@events_per_generated_sample",),
    "split": ("@events_per_generated_sample",),
    "train_encoder": ("encoder.defaults.max_epochs", "encoder.defaults.max_events_per_sample"),
    "embed": ("@generated_events",),
    "pseudodata": ("pseudodata.luminosity_ifb", "pseudodata.instances"),
    # per set: flows ∝ epochs x events (∝ luminosity) x flows; BDTs ∝ events; sets per job
    "cathode": ("flow.max_epochs", "pseudodata.luminosity_ifb", "flow.count", "@cathode_sets_per_job"),
    "nplm_fit": ("pseudodata.luminosity_ifb", "@nplm_sets_per_job"),
    "nplm_toys": ("pseudodata.luminosity_ifb", "nplm.toys_per_batch"),
}


@dataclass
class Rule:
    """What the rule files say about one rule."""

    name: str
    benchmark: str | None = None  # path pattern, {wildcards} kept
    threads_key: str | None = None  # config `threads` key (threads_for("...")), None: 1 thread
    gpu: bool = False


@dataclass
class Measured:
    """Benchmark rows of one rule, per job: cpu_time [s, sampled], s [wall s], max_rss [MB],
    cost [core-s held: s x the rule's threads in the measured run]."""

    cpu: list = field(default_factory=list)
    cost: list = field(default_factory=list)
    wall: list = field(default_factory=list)
    rss: list = field(default_factory=list)
    paths: list = field(default_factory=list)  # benchmark file of each row


def parse_job_counts(text: str, where: str = "job list") -> dict[str, int]:
    """{rule: planned jobs} from the first "Job stats" table of `snakemake -n` output."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Job stats:")
    except StopIteration:
        raise SaladError(f"{where}: no 'Job stats:' table (output of snakemake -n --quiet rules?)") from None
    counts = {}
    for line in lines[start + 3 :]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        if parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    if not counts:
        raise SaladError(f"{where}: empty 'Job stats:' table")
    return counts


_RULE = re.compile(r"^rule (\w+):", re.M)


def parse_rules(rules_dir: str | Path) -> dict[str, Rule]:
    """{rule: Rule} from the `*.smk` files of `rules_dir` (benchmark path, threads, GPU)."""
    files = sorted(Path(rules_dir).glob("*.smk"))
    if not files:
        raise SaladError(f"{rules_dir}: no *.smk rule files")
    rules = {}
    for path in files:
        text = path.read_text()
        heads = list(_RULE.finditer(text))
        for head, nxt in zip(heads, heads[1:] + [None]):
            block = text[head.end() : nxt.start() if nxt else len(text)]
            rule = Rule(head.group(1))
            bench = re.search(r"benchmark:\s*f?[\"']([^\"']+)[\"']", block)
            rule.benchmark = bench.group(1) if bench else None
            threads = re.search(r"threads:\s*threads_for\([\"'](\w+)[\"']\)", block)
            rule.threads_key = threads.group(1) if threads else None
            rule.gpu = "_gpu_resources()" in block
            rules[rule.name] = rule
    return rules


def _pattern(benchmark: str) -> re.Pattern:
    parts = re.split(r"\{[^}]*\}", benchmark)
    return re.compile(".+".join(re.escape(p) for p in parts))


def rule_threads(rule: Rule, threads_cfg: Mapping | None) -> int:
    """Threads a config's `threads` gives `rule` (1 when the rule reads no `threads` entry)."""
    return int((threads_cfg or {}).get(rule.threads_key, 1)) if rule.threads_key else 1


def load_benchmarks(
    root: str | Path, rules: Mapping[str, Rule], threads: Mapping[str, int] | None = None
) -> dict[str, Measured]:
    """{rule: Measured} from the benchmark TSVs under `root` (…/results/benchmarks), each file
    assigned to the rule whose benchmark path matches it (the most specific pattern wins);
    `threads`: the measured run's config `threads` (a rule's cost = wall s x its threads)."""
    root = Path(root)
    files = sorted(root.rglob("*.tsv"))
    if not files:
        raise SaladError(f"{root}: no benchmark .tsv files")
    patterns = sorted(
        ((r.name, r.benchmark) for r in rules.values() if r.benchmark),
        key=lambda nb: -len(re.sub(r"\{[^}]*\}", "", nb[1])),
    )
    compiled = [(name, _pattern(b)) for name, b in patterns]
    out: dict[str, Measured] = {}
    for path in files:
        rel = f"results/benchmarks/{path.relative_to(root).as_posix()}"
        name = next((n for n, p in compiled if p.fullmatch(rel)), None)
        if name is None:
            continue
        rows = path.read_text().splitlines()
        head = rows[0].split("\t") if rows else []
        if not {"s", "cpu_time", "max_rss"} <= set(head) or len(rows) < 2:
            raise SaladError(f"{path}: not a Snakemake benchmark TSV (columns s, cpu_time, max_rss)")
        m = out.setdefault(name, Measured())
        held = rule_threads(rules[name], threads)
        for line in rows[1:]:  # one row per benchmark repeat
            vals = dict(zip(head, line.split("\t")))
            m.cpu.append(float(vals["cpu_time"]))
            m.paths.append(path)
            m.wall.append(float(vals["s"]))
            m.cost.append(float(vals["s"]) * held)
            rss = vals["max_rss"]
            m.rss.append(float(rss) if rss not in ("", "-", "NA") else math.nan)
    return out


def _get(cfg: Mapping, dotted: str):
    node = cfg
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def config_size(cfg: Mapping, key: str) -> float | None:
    """The value of a size key of SCALES in `cfg` (None when the config does not set it)."""
    if key in ("@events_per_generated_sample", "@generated_events"):
        gen = cfg.get("generate", {})
        extra = gen.get("events_per_sample") or {}
        samples = list(dict.fromkeys(list(cfg.get("samples", [])) + list(extra)))
        if not samples or "events" not in gen:
            return None
        events = [extra.get(s, gen["events"]) for s in samples]
        return float(np.mean(events) if key == "@events_per_generated_sample" else np.sum(events))
    if key in ("@cathode_sets_per_job", "@nplm_sets_per_job"):
        pd_cfg = cfg.get("pseudodata", {})
        strengths, signals = list(pd_cfg.get("strengths", [])), list(pd_cfg.get("signals", []))
        injected = sum(1 for s in strengths if float(s) > 0)
        if not strengths or not signals:
            return None
        per_signal = injected * int(pd_cfg.get("instances", 1))
        every = per_signal * len(signals) + (len(strengths) - injected) * int(pd_cfg.get("instances", 1))
        section = "cathode" if key == "@cathode_sets_per_job" else "nplm"
        size = (cfg.get(section) or {}).get("datasets_per_job")
        whole = per_signal if section == "cathode" else every
        return float(min(size, whole) if size else whole)
    value = _get(cfg, key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def scale_factor(rule: str, target: Mapping, measured: Mapping) -> tuple[float, list[str]]:
    """(f_r, notes): product of target/measured over SCALES[rule]; a key missing in either
    config counts as ratio 1 (noted)."""
    factor, notes = 1.0, []
    for key in SCALES.get(rule, ()):
        a, b = config_size(target, key), config_size(measured, key)
        if a is None or b is None or b == 0:
            notes.append(f"{key}: not set, ratio 1")
            continue
        factor *= a / b
        if a != b:
            notes.append(f"{key} {b:g}->{a:g}")
    return factor, notes


def critical_path(durations: Mapping[str, float], edges: Sequence[tuple[str, str]] | None) -> float:
    """Longest chain (s) of the rule graph, each rule weighted by `durations` (its longest job);
    edges (upstream, downstream). Without edges: the sum of all durations."""
    if edges is None:
        return float(sum(durations.values()))
    nodes = set(durations) | {n for e in edges for n in e}
    preds = {n: [a for a, b in edges if b == n] for n in nodes}
    memo: dict[str, float] = {}

    def finish(n, stack=()):
        if n in stack:
            raise SaladError(f"rule graph has a cycle through {n}")
        if n not in memo:
            memo[n] = durations.get(n, 0.0) + max((finish(p, stack + (n,)) for p in preds[n]), default=0.0)
        return memo[n]

    return max((finish(n) for n in nodes), default=0.0)


def parse_rulegraph(text: str) -> list[tuple[str, str]]:
    """(upstream, downstream) rule pairs from `snakemake --rulegraph` (dot) output."""
    labels = dict(re.findall(r"^\s*(\d+)\[label = \"([^\"]+)\"", text, re.M))
    edges = [
        (labels[a], labels[b])
        for a, b in re.findall(r"^\s*(\d+) -> (\d+)", text, re.M)
        if a in labels and b in labels
    ]
    if not labels:
        raise SaladError("rule graph: no nodes (output of snakemake --rulegraph?)")
    return edges


def estimate(
    jobs: Mapping[str, int],
    bench: Mapping[str, Measured],
    rules: Mapping[str, Rule],
    target: Mapping,
    measured: Mapping,
    nodes: int,
    cores: int,
    edges: Sequence[tuple[str, str]] | None = None,
) -> dict:
    """Per-rule and total cost of the planned `jobs` (see module doc); times in s, memory in MB."""
    if nodes < 1 or cores < 1:
        raise SaladError(f"nodes and cores must be >= 1 (got {nodes}, {cores})")
    threads_cfg = target.get("threads", {})
    use_gpu = bool(_get(target, "encoder.resources.gpu"))
    rows, unmeasured, longest = [], [], {}
    for name, n in jobs.items():
        m = bench.get(name)
        if m is None or not m.cost:
            unmeasured.append(name)
            continue
        rule = rules.get(name, Rule(name))
        f, notes = scale_factor(name, target, measured)
        threads = min(rule_threads(rule, threads_cfg), cores)
        mean_cpu, max_cpu = float(np.mean(m.cost)) * f, float(np.max(m.cost)) * f
        gpu = use_gpu and rule.gpu
        rows.append(
            {
                "rule": name,
                "jobs": n,
                "measured_jobs": len(m.cost),
                "cpu_s_per_job": mean_cpu,
                "factor": f,
                "notes": notes,
                "cpu_h": n * mean_cpu / 3600,
                "max_rss_mb": float(np.nanmax(m.rss)) if np.isfinite(m.rss).any() else math.nan,
                "threads": threads,
                "gpu_h": n * mean_cpu / threads / 3600 if gpu else 0.0,
                "max_job_cpu_s": max_cpu,
            }
        )
        longest[name] = max_cpu / threads
    core_s = sum(r["cpu_h"] * 3600 for r in rows)
    cp = critical_path(longest, edges)
    p = nodes * cores
    big = max(rows, key=lambda r: r["max_job_cpu_s"], default=None)
    fat = max(rows, key=lambda r: r["max_rss_mb"] if np.isfinite(r["max_rss_mb"]) else -1, default=None)
    return {
        "rows": rows,
        "unmeasured": unmeasured,
        "jobs": sum(jobs.values()),
        "cpu_h": core_s / 3600,
        "gpu_h": sum(r["gpu_h"] for r in rows),
        "critical_path_s": cp,
        "nodes": nodes,
        "cores": cores,
        "wall_lower_s": max(core_s / p, cp),
        "wall_upper_s": core_s / p + cp,
        "largest_job": big,
        "largest_memory": fat,
        "rulegraph": edges is not None,
    }


def to_markdown(est: Mapping) -> str:
    """The estimate as a Markdown table plus totals."""
    out = [
        "| rule | jobs | measured jobs | core-s/job | scale | CPU-h | max RSS (GB) | threads | GPU-h "
        "| size ratios |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(est["rows"], key=lambda r: -r["cpu_h"]):
        rss = f"{r['max_rss_mb'] / 1000:.2f}" if np.isfinite(r["max_rss_mb"]) else "n/a"
        out.append(
            f"| {r['rule']} | {r['jobs']} | {r['measured_jobs']} | {r['cpu_s_per_job']:.1f} | "
            f"{r['factor']:.3g} | {r['cpu_h']:.2f} | {rss} | {r['threads']} | {r['gpu_h']:.2f} | "
            f"{'; '.join(r['notes']) or '-'} |"
        )
    big, fat = est["largest_job"], est["largest_memory"]
    out += [
        "",
        f"- planned jobs: {est['jobs']}; no benchmark (cost 0 in the totals): "
        f"{', '.join(est['unmeasured']) or 'none'}",
        f"- total CPU: {est['cpu_h']:.1f} CPU-h; GPU: {est['gpu_h']:.1f} GPU-h "
        "(upper bound, CPU-measured durations)",
        f"- critical path: {est['critical_path_s'] / 3600:.2f} h "
        f"({'rule graph' if est['rulegraph'] else 'no rule graph: all rules in sequence'})",
        f"- wall time on {est['nodes']} node(s) x {est['cores']} cores: between "
        f"{est['wall_lower_s'] / 3600:.2f} h and {est['wall_upper_s'] / 3600:.2f} h (list scheduling)",
    ]
    if big:
        out.append(
            f"- largest single job: {big['rule']}, {big['max_job_cpu_s'] / 3600:.2f} CPU-h "
            f"(its rule's max RSS {big['max_rss_mb'] / 1000:.2f} GB)"
        )
    if fat:
        out.append(
            f"- largest memory: {fat['rule']}, {fat['max_rss_mb'] / 1000:.2f} GB max RSS "
            "(measured, not scaled)"
        )
    return "\n".join(out) + "\n"


def split_half_check(bench: Mapping[str, Measured], cfg: Mapping | None = None) -> dict:
    """Check of the model on one measured run: each rule's jobs are split into even- and
    odd-numbered benchmark files (sorted by path); the even half predicts the odd half's summed
    cost (core-s held): mean cost per job x jobs, or, for the per-sample rules of SCALES whose size is
    "@events_per_generated_sample" (file name = sample), CPU per generated event x events (from
    `cfg`, the measured run's config). {"predicted_s", "measured_s", "error"}; rules with >= 2 jobs."""
    pred = meas = 0.0
    for name, m in bench.items():
        if len(m.cost) < 2:
            continue
        even, odd = m.cost[0::2], m.cost[1::2]
        per_sample = cfg is not None and SCALES.get(name) == ("@events_per_generated_sample",)
        if per_sample:
            gen = cfg.get("generate", {})
            events = [
                float((gen.get("events_per_sample") or {}).get(Path(p).stem, gen.get("events", 0)))
                for p in m.paths
            ]
            rate = float(np.sum(even)) / max(sum(events[0::2]), 1.0)
            pred += rate * sum(events[1::2])
        else:
            pred += float(np.mean(even)) * len(odd)
        meas += float(np.sum(odd))
    if meas <= 0:
        raise SaladError("split-half check: no rule with two or more benchmark files")
    return {"predicted_s": pred, "measured_s": meas, "error": pred / meas - 1}


def _load_yaml(path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SaladError(f"{path}: cannot read config ({exc})") from None
    if not isinstance(data, dict):
        raise SaladError(f"{path}: not a YAML mapping")
    return data


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="salad scaling", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--jobs", required=True, help="output of snakemake -n --quiet rules --configfile TARGET"
    )
    parser.add_argument("--config", required=True, help="the target config (e.g. config/paper.yaml)")
    parser.add_argument("--benchmarks", required=True, help="results/benchmarks of a measured run")
    parser.add_argument("--measured-config", required=True, help="the config of the measured run")
    parser.add_argument("--rules", default="rules", help="directory of the *.smk rule files")
    parser.add_argument("--rulegraph", help="snakemake --rulegraph output (dot) for the critical path")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--cores", type=int, default=64, help="cores per node")
    parser.add_argument(
        "--check",
        action="store_true",
        help="also print the split-half check of the measured run (see split_half_check)",
    )
    args = parser.parse_args(argv)
    try:
        jobs_text = Path(args.jobs).read_text()
        graph = Path(args.rulegraph).read_text() if args.rulegraph else None
    except OSError as exc:
        raise SaladError(f"{exc.filename}: {exc.strerror}") from None
    rules = parse_rules(args.rules)
    measured_cfg = _load_yaml(args.measured_config)
    bench = load_benchmarks(args.benchmarks, rules, measured_cfg.get("threads"))
    est = estimate(
        parse_job_counts(jobs_text, args.jobs),
        bench,
        rules,
        _load_yaml(args.config),
        measured_cfg,
        args.nodes,
        args.cores,
        parse_rulegraph(graph) if graph else None,
    )
    print(to_markdown(est), end="")
    if args.check:
        chk = split_half_check(bench, measured_cfg)
        print(
            f"- split-half check of {args.benchmarks}: predicted {chk['predicted_s'] / 3600:.3f} CPU-h, "
            f"measured {chk['measured_s'] / 3600:.3f} CPU-h, error {100 * chk['error']:+.1f} %"
        )
