"""salad.scaling: the cost model's arithmetic on a hand-made job list, benchmark tree and rules."""

import pytest

from salad.errors import SaladError
from salad.scaling import (
    Measured,
    critical_path,
    estimate,
    load_benchmarks,
    parse_job_counts,
    parse_rulegraph,
    parse_rules,
    scale_factor,
    split_half_check,
    to_markdown,
)

DRY_RUN = """Building DAG of jobs...
Job stats:
job           count
----------  -------
generate          3
cathode           4
all               1
total             8

Job stats:
job           count
"""

RULES = """
rule generate:
    output: "x"
    threads: threads_for("generate")
    benchmark:
        "results/benchmarks/generate/{sample}.tsv"

rule cathode:
    threads: threads_for("flow")
    resources:
        **_gpu_resources(),
    benchmark:
        f"results/benchmarks/cathode/{_DS}.tsv"

rule all:
    input: "y"
"""

GRAPH = """digraph snakemake_dag {
	0[label = "all", color = "0.00 0.6 0.85", style="rounded"];
	1[label = "cathode", color = "0.1 0.6 0.85", style="rounded"];
	2[label = "generate", color = "0.2 0.6 0.85", style="rounded"];
	2 -> 1
	1 -> 0
}"""

HEAD = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def bench(path, s, rss, cpu):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEAD + f"{s}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t100\t{cpu}\n")


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "all.smk").write_text(RULES)
    root = tmp_path / "benchmarks"
    bench(root / "generate" / "a.tsv", 100, 300.0, 100.0)
    bench(root / "generate" / "b.tsv", 300, 500.0, 300.0)  # generate: mean 200 CPU s, max 300
    # cathode at 2 threads: cost = wall x 2 = 100, 140 core-s (mean 120, max 140); the sampled
    # cpu_time (10: a job past Snakemake's sampling) is not the cost
    bench(root / "cathode" / "ID" / "1" / "x.tsv", 50, 2000.0, 10.0)
    bench(root / "cathode" / "ID" / "1" / "y.tsv", 70, 1000.0, 80.0)
    bench(root / "unrelated" / "z.tsv", 1, 1.0, 1e6)  # matches no rule: ignored
    return tmp_path


MEASURED = {
    "samples": ["a", "b"],
    "generate": {"events": 100},
    "threads": {"flow": 2},
    "flow": {"max_epochs": 10, "count": 1},
    "pseudodata": {"luminosity_ifb": 5.0},
}
TARGET = {
    "samples": ["a", "b", "c"],
    "generate": {"events": 300, "events_per_sample": {"c": 600}},
    "threads": {"flow": 4, "generate": 1},
    "flow": {"max_epochs": 20, "count": 4},
    "pseudodata": {"luminosity_ifb": 10.0},
    "encoder": {"resources": {"gpu": True}},
}


def test_job_counts_rules_and_benchmarks_are_parsed(tree):
    assert parse_job_counts(DRY_RUN) == {"generate": 3, "cathode": 4, "all": 1}
    rules = parse_rules(tree / "rules")
    assert rules["cathode"].threads_key == "flow" and rules["cathode"].gpu
    assert not rules["generate"].gpu and rules["all"].benchmark is None
    measured = load_benchmarks(tree / "benchmarks", rules, MEASURED["threads"])
    assert sorted(measured) == ["cathode", "generate"]
    assert sorted(measured["cathode"].cpu) == [10.0, 80.0]
    assert sorted(measured["cathode"].cost) == [100.0, 140.0]  # wall s x 2 threads (flow)
    assert sorted(measured["generate"].cost) == [100.0, 300.0]  # no threads entry: 1
    assert sorted(load_benchmarks(tree / "benchmarks", rules)["cathode"].cost) == [50.0, 70.0]
    assert parse_rulegraph(GRAPH) == [("generate", "cathode"), ("cathode", "all")]
    with pytest.raises(SaladError, match="Job stats"):
        parse_job_counts("nothing")


def test_scale_factors_are_config_ratios():
    # generate: events per generated sample 100 -> (300 + 300 + 600) / 3 = 400: x4
    assert scale_factor("generate", TARGET, MEASURED)[0] == pytest.approx(4.0)
    # cathode: epochs 10 -> 20, luminosity 5 -> 10, flows per job 1 -> 4: x16
    assert scale_factor("cathode", TARGET, MEASURED)[0] == pytest.approx(16.0)
    assert scale_factor("all", TARGET, MEASURED) == (1.0, [])


def test_estimate_arithmetic_by_hand(tree):
    rules = parse_rules(tree / "rules")
    est = estimate(
        parse_job_counts(DRY_RUN),
        load_benchmarks(tree / "benchmarks", rules, MEASURED["threads"]),
        rules,
        TARGET,
        MEASURED,
        nodes=2,
        cores=4,
        edges=parse_rulegraph(GRAPH),
    )
    rows = {r["rule"]: r for r in est["rows"]}
    # generate: 3 jobs x 200 core-s x 4 = 2400; cathode: 4 x 120 x 16 = 7680 core-s
    assert rows["generate"]["cpu_h"] == pytest.approx(2400 / 3600)
    assert rows["cathode"]["cpu_h"] == pytest.approx(7680 / 3600)
    assert est["cpu_h"] == pytest.approx(10080 / 3600)
    assert rows["generate"]["max_rss_mb"] == 500.0 and rows["cathode"]["max_rss_mb"] == 2000.0
    # GPU rule (cathode here), 4 threads in the target: 7680 / 4 s held
    assert est["gpu_h"] == pytest.approx(1920 / 3600) and rows["generate"]["gpu_h"] == 0
    # critical path generate -> cathode -> all: longest jobs 300*4/1 + 140*16/4 = 1760 s
    assert est["critical_path_s"] == pytest.approx(1760.0)
    assert est["wall_lower_s"] == pytest.approx(max(10080 / 8, 1760.0))
    assert est["wall_upper_s"] == pytest.approx(10080 / 8 + 1760.0)
    assert est["largest_job"]["rule"] == "cathode" and est["largest_memory"]["rule"] == "cathode"
    assert est["unmeasured"] == ["all"]
    assert "| cathode | 4 | 2 | 1920.0 | 16 |" in to_markdown(est)
    # no rule graph: rules in sequence (same here, a chain)
    assert critical_path({"a": 1.0, "b": 2.0}, None) == 3.0
    assert critical_path({"a": 1.0, "b": 2.0, "c": 5.0}, [("a", "b")]) == 5.0


def test_bad_inputs_are_named(tree):
    with pytest.raises(SaladError, match="no benchmark"):
        load_benchmarks(tree / "rules", parse_rules(tree / "rules"))
    (tree / "benchmarks" / "generate" / "a.tsv").write_text("x\ty\n1\t2\n")
    with pytest.raises(SaladError, match="a.tsv: not a Snakemake benchmark"):
        load_benchmarks(tree / "benchmarks", parse_rules(tree / "rules"))


def test_split_half_check_by_hand():
    # a: even files [10, 30] -> mean 20, odd files [20] -> predicted 20, measured 20;
    # b: even [1] -> predicted 1 x 1 = 1, odd [3]; c (one file) is skipped
    bench = {
        "a": Measured(cost=[10.0, 20.0, 30.0]),
        "b": Measured(cost=[1.0, 3.0]),
        "c": Measured(cost=[100.0]),
    }
    chk = split_half_check(bench)
    assert (chk["predicted_s"], chk["measured_s"]) == (21.0, 23.0)
    assert chk["error"] == pytest.approx(21 / 23 - 1)


def test_split_half_check_per_sample_rules_use_events():
    # generate: files a, b, c (sorted); even = a (100 events, 10 s) + c (300 events, 30 s):
    # 0.1 s/event; odd = b (1000 events) -> predicted 100 s, measured 120 s
    cfg = {"generate": {"events": 100, "events_per_sample": {"b": 1000, "c": 300}}}
    bench = {"generate": Measured(cost=[10.0, 120.0, 30.0], paths=["g/a.tsv", "g/b.tsv", "g/c.tsv"])}
    chk = split_half_check(bench, cfg)
    assert (chk["predicted_s"], chk["measured_s"]) == (pytest.approx(100.0), 120.0)


def test_sets_per_job_size_keys():
    from salad.scaling import config_size

    cfg = {"pseudodata": {"signals": ["A", "B"], "strengths": [0.0, 1.0, 5.0], "instances": 3}}
    # cathode: all sets of one stored signal (2 injected strengths x 3 instances) unless capped
    assert config_size(cfg, "@cathode_sets_per_job") == 6
    assert config_size({**cfg, "cathode": {"datasets_per_job": 4}}, "@cathode_sets_per_job") == 4
    # nplm: every set of the configuration (2 signals x 6 + 3 no-injection sets) unless capped
    assert config_size(cfg, "@nplm_sets_per_job") == 15
    assert config_size({**cfg, "nplm": {"datasets_per_job": 40}}, "@nplm_sets_per_job") == 15
