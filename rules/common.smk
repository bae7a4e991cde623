"""Shared by all stage files, read top to bottom: the validated configuration, every section
bound once here under one name (PSEUDODATA, ENCODER, CATHODE, FLOW, NPLM, ...; the rule files
define no globals of their own), then the input functions of each rule file in the order the
Snakefile includes them, then the lists derived through those functions. Functions live here and
not next to their rules because `snakemake --lint` asks for that (tests/test_lint.py)."""

import json
import math
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.utils import validate

from salad.config import cross_check, load_processes, load_yaml
from salad.config import validate as check_config
from salad.encoder.setups import expand_setups, family_groups, held_out, resolve_setup, seeds_for, setup_names

# Config files once more with the strict reader: a key given twice (which Snakemake's reader
# silently resolves to the last value) or a YAML error is reported with file and line.
for _file in getattr(workflow, "configfiles", None) or []:
    load_yaml(_file)
# One-line error naming the offending key first; then Snakemake's validation fills defaults.
check_config(config, source="config")
validate(config, "../workflow/schemas/config.schema.yaml")

BASE = Path(workflow.basedir)
# Jobs run the Python that runs Snakemake (e.g. .venv) and import the library from this
# checkout, installed or not. With --sdm conda the rule's environment provides Python.
# Numba (UMAP's nearest neighbours and layout) compiles ~40 s per process; its on-disk cache in
# the working directory lets every later 2-D map job reuse the compiled code.
_NUMBA_CACHE = "export NUMBA_CACHE_DIR=${{NUMBA_CACHE_DIR:-$PWD/.snakemake/numba-cache}}; "
if "conda" not in str(workflow.deployment_settings.deployment_method).lower():
    shell.prefix(
        f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH"
        f" PYTHONPATH={shlex.quote(str(BASE / 'src'))}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; {_NUMBA_CACHE}"
    )
else:
    shell.prefix(_NUMBA_CACHE)


def repo_path(path):
    """A config path: absolute as given, else relative to the workflow folder."""
    path = Path(path)
    return path if path.is_absolute() else BASE / path


def dag_path(path):
    """A config path for the DAG (inputs, params): as given when absolute, else relative to the
    working directory (so that a moved checkout, whose absolute paths all change, re-runs nothing)."""
    path = Path(path)
    return str(path) if path.is_absolute() else os.path.relpath(BASE / path)


def strength_label(strength):
    """Path form of an injection strength: 0.0 -> '0', 2.5 -> '2.5'."""
    return f"{float(strength):g}"


# ------------------------------ configuration, each section bound once

PROCESSES = load_processes(repo_path(config["processes"]))
# Cross-key checks (ordered ranges, signal region inside the m_yy window, delphes_inputs keys
# that are configured samples of the process table) fail here, at parse time, naming the key.
cross_check(config, PROCESSES)
SAMPLES = list(config["samples"])
# encoder.leave_one_model_out: the generated EP family joins encoder.setups here, before any stage
# reads them (salad.encoder.setups.expand_setups); FAMILY_SETUPS {setup: held-out group}.
SAMPLE_GROUPS = {s: PROCESSES[s]["group"] for s in SAMPLES}
if config.get("encoder"):
    FAMILY_SETUPS = family_groups(config["encoder"], SAMPLE_GROUPS)
    config["encoder"] = expand_setups(config["encoder"], SAMPLE_GROUPS)
else:
    FAMILY_SETUPS = {}
SIGNALS = [s for s in SAMPLES if PROCESSES[s]["group"] < 0]
BACKGROUNDS = [s for s in SAMPLES if PROCESSES[s]["group"] >= 0]
# The truth-labelled evaluation set (salad.evalset): evaluation-only samples (generated, read,
# split and embedded like the others, never in `samples`) and the shares of the other samples.
EVAL_SET_CFG = {
    "samples": [],
    "fraction": 0.25,
    "reference_fraction": 0.15,
    "min_background_passing": 100,
    **config.get("evaluation_set", {}),
}
EVAL_ONLY_SAMPLES = list(EVAL_SET_CFG["samples"])
_bad_eval = [s for s in EVAL_ONLY_SAMPLES if s not in PROCESSES or s in SAMPLES or PROCESSES[s]["group"] < 0]
if _bad_eval:
    raise ValueError(
        f"config key evaluation_set.samples: {_bad_eval} must be SM processes of "
        f"{config['processes']} that are not in config key samples"
    )
ALL_SAMPLES = SAMPLES + EVAL_ONLY_SAMPLES
EVAL_ONLY_GROUPS = {PROCESSES[s]["group"] for s in EVAL_ONLY_SAMPLES}

HIGGS_SAMPLES = [s for s in BACKGROUNDS if 1 <= PROCESSES[s]["group"] <= 4]
MYY_WINDOW = config["preselect"]["myy_range"]
EVALUATION_SET = "results/evaluation/set.parquet"

PSEUDODATA = config["pseudodata"]
_unknown_signals = [s for s in PSEUDODATA["signals"] if s not in SIGNALS]
if _unknown_signals:
    raise ValueError(
        f"config key pseudodata.signals: {_unknown_signals} not among the BSM samples (group < 0) "
        f"of config key samples: {SIGNALS}"
    )
STRENGTH_LABELS = [strength_label(s) for s in PSEUDODATA["strengths"]]
INSTANCE_LABELS = [str(i) for i in range(PSEUDODATA["instances"])]

ENCODER = config.get("encoder") or {"setups": {}}
ENCODER_RESOURCES = {"mem_mb": 4000, "runtime_min": 120, "gpu": False, **ENCODER.get("resources", {})}
# every setup resolved at parse time: a bad setup (e.g. unknown held-out sample) fails the DAG
ENCODER_SETUPS = {name: resolve_setup(ENCODER, name, SAMPLE_GROUPS) for name in setup_names(ENCODER)}
ENCODER_DIR = "results/encoders/{setup}/{seed}"
# per rule: only configured setups (results/embeddings/ also holds baseline_* embeddings)
ENCODER_SETUP_RE = "|".join(map(re.escape, ENCODER_SETUPS)) or "(?!)"

CATHODE = config.get("cathode") or {}
CATHODE_SCAN = CATHODE.get("scan") or {}
FLOW = config["flow"]
FLOW_FIT = {k: v for k, v in FLOW.items() if k not in ("count", "template")}
CATHODE_RUN = "results/cathode/{setup}/{seed}/{signal}/{batch}"
CATHODE_EVAL_SETUP = "results/cathode/evaluation/{setup}"
CATHODE_EVAL_DIR = "results/cathode/evaluation/{setup}/{signal}"
CATHODE_EVAL = "results/cathode/evaluation/{setup}/{signal}/{name}.parquet"
CATHODE_PLOTS = "results/plots/cathode"
CATHODE_TABLES = [
    f"results/tables/cathode_{t}.{ext}"
    for t in ("sensitivity", "required_injection", "sculpting")
    for ext in ("parquet", "md")
] + ["results/tables/cathode_sensitivity_instances.parquet"]

BASELINE_NAMES = ["source", "leading", "ref22", "vae"]
BASELINES = config.get("baselines") or {"seeds": [1]}
PRESELECTED_FILES = [f"results/preselected/{s}.parquet" for s in SAMPLES]
SPLIT_FILES = [f"results/split/{s}.parquet" for s in SAMPLES]
BACKGROUND_PRESELECTED_FILES = [f"results/preselected/{s}.parquet" for s in BACKGROUNDS]
BACKGROUND_SPLIT_FILES = [f"results/split/{s}.parquet" for s in BACKGROUNDS]
NPLM = config.get("nplm") or {}
# NPLM settings that change a fit / a toy (the list of representations, plots and thresholds do not)
NPLM_FIT_CFG = {
    k: v
    for k, v in NPLM.items()
    if k not in ("representations", "toys", "toys_per_batch", "z_threshold", "tsne", "kernel_widths")
}
NPLM_TOY_CFG = {**NPLM_FIT_CFG, "toys_per_batch": NPLM.get("toys_per_batch")}
NPLM_WIDTHS = NPLM.get("kernel_widths") or {}
NPLM_LUMI = {"luminosity_ifb": PSEUDODATA["luminosity_ifb"]}
NPLM_DIR = "results/nplm/{setup}/{seed}"
NPLM_TABLE = "results/tables/nplm/{setup}/{seed}"
NPLM_FIT_BATCH = f"{NPLM_DIR}/fits/{{batch}}"
LINEAR_EVAL = config.get("linear_eval") or {}
INFORMATION = config.get("information") or {}
DIMENSION_SCAN = config.get("dimension_scan") or {"setups": {}}
SCAN_SETUPS_BY_DIM = {int(d): s for d, s in (DIMENSION_SCAN.get("setups") or {}).items()}
SCAN_FAMILIES = {
    f: {int(d): s for d, s in m.items()} for f, m in (DIMENSION_SCAN.get("families") or {}).items()
}
SCAN_FAMILY_SETUPS = list(dict.fromkeys(s for m in SCAN_FAMILIES.values() for s in m.values()))
SCAN_ALL_SETUPS = list(SCAN_SETUPS_BY_DIM.values()) + SCAN_FAMILY_SETUPS
DIMENSION_SCAN_ON = bool(SCAN_ALL_SETUPS) and all(s in ENCODER_SETUPS for s in SCAN_ALL_SETUPS)
if SCAN_ALL_SETUPS and ENCODER_SETUPS and not DIMENSION_SCAN_ON:
    raise ValueError(
        "config key dimension_scan.setups/families: "
        f"{sorted(set(SCAN_ALL_SETUPS) - set(ENCODER_SETUPS))} not in encoder.setups"
    )

FIGURES = config.get("figures") or {}
PAPER_CLAIMS = config.get("paper_claims", "config/paper_claims.yaml")
# run tables the claims may read (salad.comparison): name -> Parquet
COMPARISON_TABLES = {
    n: f"results/tables/{n}.parquet"
    for n in (
        "cathode_sensitivity",
        "cathode_sensitivity_instances",
        "cathode_required_injection",
        "cathode_sculpting",
        "linear_eval",
        "nplm",
        "dimension_scan",
    )
}
SENSITIVITY_TABLE = COMPARISON_TABLES["cathode_sensitivity"]
REQUIRED_INJECTION_TABLE = COMPARISON_TABLES["cathode_required_injection"]


def evaluation_share(sample):
    """Config for `salad split` of one sample: an evaluation-only sample keeps
    `reference_fraction` for the references; a sample whose group has an evaluation-only
    sample gives nothing to the evaluation set (that sample replaces it); others give
    `fraction` of their pseudo-data half."""
    if sample in EVAL_ONLY_SAMPLES:
        return {"reference_fraction": EVAL_SET_CFG["reference_fraction"]}
    if PROCESSES[sample]["group"] in EVAL_ONLY_GROUPS:
        return {"fraction": 0.0}
    return {"fraction": EVAL_SET_CFG["fraction"]}


def truth_background_samples():
    """SM samples standing for the true background: their `eval` events in the evaluation set,
    and (evaluation-only samples: their `ref` events) in the references' training. An
    evaluation-only sample replaces the configured samples of its group."""
    return EVAL_ONLY_SAMPLES + [s for s in BACKGROUNDS if PROCESSES[s]["group"] not in EVAL_ONLY_GROUPS]


wildcard_constraints:
    sample="[A-Za-z0-9_]+",
    signal="[A-Za-z0-9_]+",
    setup="[A-Za-z0-9_]+",
    seed=r"\d+",
    strength=r"[0-9.]+",
    instance=r"\d+",


def cfg_arg(*sections, **extra):
    """Shell-quoted JSON of the named config sections (plus extra values) for --config.

    Passed via `params:` so that editing a section re-runs exactly the rules that read it.
    """
    payload = {name: config[name] for name in sections}
    payload.update(extra)
    return shlex.quote(json.dumps(payload, sort_keys=True))


def threads_for(stage):
    """Threads a stage may use (config `threads`, capped by --cores at run time)."""
    return config["threads"].get(stage, 1)


REPORT_COMPARISON = "0. Paper comparison"  # first: the papers' claims vs this run
REPORT_SCULPTING = "1. Sculpting"
REPORT_SENSITIVITY = "2. Sensitivity"
REPORT_NPLM = "3. NPLM"
REPORT_LATENT = "4. Latent space"
REPORT_DIAGNOSTICS = "5. Diagnostics"
# table stem -> (category, subcategory); per-representation NPLM tables are nplm__{setup}__{seed}
REPORT_TABLES = {
    "paper_comparison": (REPORT_COMPARISON, "claims vs this run"),
    "cathode_sculpting": (REPORT_SCULPTING, "tables"),
    "cathode_sensitivity": (REPORT_SENSITIVITY, "tables"),
    "cathode_required_injection": (REPORT_SENSITIVITY, "tables"),
    "nplm": (REPORT_NPLM, "tables"),
    "linear_eval": (REPORT_LATENT, "tables"),
    "information": (REPORT_LATENT, "tables"),
    "dimension_scan": (REPORT_LATENT, "tables"),
}


_TARGETS = {}


def register_targets(name, function):
    """Each rule file registers a function returning its final targets for `rule all`."""
    _TARGETS[name] = function


def all_targets(wildcards):
    return [t for name in sorted(_TARGETS) for t in _TARGETS[name]()]


# ------------------------------ input functions of rules/cathode.smk


def cathode_seeds(setup):
    """Seed wildcards of a CATHODE setup: an encoder setup's seeds (salad.encoder.setups.seeds_for);
    a baseline_* representation runs once per encoder.seeds (its features are fixed, its BDTs are not)."""
    seeds = seeds_for(ENCODER, setup) if setup in ENCODER_SETUPS else ENCODER.get("seeds", [1])
    return [str(s) for s in seeds]


def _sim_pairs(samples):
    return [p for s in samples for p in (f"results/preselected/{s}.parquet", f"results/split/{s}.parquet")]


def _replaced_samples():
    """Configured SM samples whose group has an evaluation-only sample (its yield check)."""
    return [s for s in BACKGROUNDS if PROCESSES[s]["group"] in EVAL_ONLY_GROUPS]


def _triples(option, samples):
    return " ".join(
        f"{option} {s} results/preselected/{s}.parquet results/split/{s}.parquet" for s in samples
    )


def _pair_args(option, samples):
    return " ".join(f"{option} {shlex.quote(pre)} {shlex.quote(split)}" for pre, split in map(_pair, samples))


def _common_cfg(**extra):
    return cfg_arg("regions", window=MYY_WINDOW, **extra)


def _quoted(paths):
    return " ".join(shlex.quote(str(p)) for p in paths)


def setup_grid(setup):
    """(strength labels, instance labels) CATHODE evaluates for `setup`: the full grid, or the
    reduced one of cathode.scan for scan-only setups."""
    if setup in CATHODE_SCAN.get("setups", []) and setup not in (CATHODE.get("setups") or []):
        strengths = [strength_label(s) for s in CATHODE_SCAN.get("strengths", PSEUDODATA["strengths"])]
        return strengths, [str(i) for i in range(CATHODE_SCAN.get("instances", PSEUDODATA["instances"]))]
    return STRENGTH_LABELS, INSTANCE_LABELS


def signal_sets(setup, signal):
    """Pseudo-data sets (stored signal, strength label, instance) of `signal` on `setup`'s grid
    (no-injection sets are stored under the first signal: see dataset_signal)."""
    strengths, instances = setup_grid(setup)
    return [(dataset_signal(signal, s), s, i) for s in strengths for i in instances]


def cathode_batches(setup):
    """{(stored signal, batch label): [(strength, instance), ...]}: the pseudo-data sets of
    `setup`, per stored signal in chunks of cathode.datasets_per_job (one `cathode` job each)."""
    size = int(CATHODE.get("datasets_per_job") or 10**9)
    per_signal = {}
    for stored, s, i in dict.fromkeys(t for g in cathode_signals(setup) for t in signal_sets(setup, g)):
        per_signal.setdefault(stored, []).append((s, i))
    return {
        (stored, str(k // size)): sets[k : k + size]
        for stored, sets in per_signal.items()
        for k in range(0, len(sets), size)
    }


def cathode_run(setup, seed, stored, strength, instance):
    """Output folder of the `cathode` job that holds this pseudo-data set."""
    for (sig, batch), sets in cathode_batches(setup).items():
        if sig == stored and (strength, instance) in sets:
            return CATHODE_RUN.format(setup=setup, seed=seed, signal=sig, batch=batch)
    raise ValueError(f"pseudo-data set {stored}/{strength}/{instance} is not on setup {setup}'s grid")


def cathode_file(kind, setup, seed, stored, strength, instance):
    """{kind} = scores | reference | templates artifact of one (encoder, pseudo-data set)."""
    return f"{cathode_run(setup, seed, stored, strength, instance)}/{kind}/{strength}/{instance}.parquet"


def _batch_data(w):
    return [
        f"results/pseudodata/{w.signal}/{s}/{i}.parquet"
        for s, i in cathode_batches(w.setup)[(w.signal, w.batch)]
    ]


def _batch_injected(w):
    return any(float(s) > 0 for s, _ in cathode_batches(w.setup)[(w.signal, w.batch)])


def _reference_args(w):
    """--background/--signal simulation of the references, for batches with injected sets."""
    if not _batch_injected(w):
        return ""
    return f'{_pair_args("--background", truth_background_samples())} {_pair_args("--signal", [w.signal])}'


def _reference_inputs(w):
    return _sim_pairs(truth_background_samples() + [w.signal]) if _batch_injected(w) else []


def _evaluate_runs(w):
    """Every `cathode` output folder of a setup (all seeds and batches)."""
    return [
        CATHODE_RUN.format(setup=w.setup, seed=seed, signal=sig, batch=b)
        for seed in cathode_seeds(w.setup)
        for sig, b in cathode_batches(w.setup)
    ]


def _evaluate_command(w):
    """One `salad evaluate sensitivity` call per injected signal of the setup (one job)."""
    calls, cfg = [], _common_cfg(evaluate=config["evaluate"])
    for g in cathode_signals(w.setup):
        sets = signal_sets(w.setup, g)
        data = [f"results/pseudodata/{sig}/{s}/{i}.parquet" for sig, s, i in sets]
        scores = [cathode_file("scores", w.setup, seed, *t) for seed in cathode_seeds(w.setup) for t in sets]
        refs = [
            cathode_file("reference", w.setup, seed, *t)
            for seed in cathode_seeds(w.setup)
            for t in sets
            if float(t[1]) > 0
        ]
        held = str(held_out(ENCODER_SETUPS.get(w.setup), g)).lower()
        calls.append(
            f"python -m salad evaluate sensitivity --setup {w.setup} --signal {g}"
            f" --data {_quoted(data)} --scores {_quoted(scores)} --references {_quoted(refs)}"
            f" --evaluation-set {EVALUATION_SET} --held-out {held}"
            f" --output-dir {shlex.quote(CATHODE_EVAL_DIR.format(setup=w.setup, signal=g))}"
            f" --config {cfg}"
        )
    return " && ".join(calls)


def cathode_signals(setup):
    """Injected signals CATHODE evaluates `setup` on: a leave-one-model-out setup only those of
    its held-out group (its EP test), every other setup all of pseudodata.signals."""
    if setup in FAMILY_SETUPS:
        return [g for g in PSEUDODATA["signals"] if PROCESSES[g]["group"] == FAMILY_SETUPS[setup]]
    return list(PSEUDODATA["signals"])


def _evals(name, setups=None):
    return [
        CATHODE_EVAL.format(setup=s, signal=g, name=name)
        for s in (setups or CATHODE_SETUPS)
        for g in cathode_signals(s)
    ]


def _show(w):
    """The set shown in latent plots: first seed, the setup's first signal at its largest
    strength, instance 0."""
    strength = max(setup_grid(w.setup)[0], key=float)
    signal = dataset_signal(cathode_signals(w.setup)[0], strength)
    seed = cathode_seeds(w.setup)[0]
    return {
        "setup": w.setup,
        "seed": seed,
        "signal": signal,
        "strength": strength,
        "instance": "0",
        "run": cathode_run(w.setup, seed, signal, strength, "0"),
    }


def _has_sculpting(setup):
    return 0.0 in [float(x) for x in setup_grid(setup)[0]]


def cathode_targets():
    """Tables and figures; nothing until config `encoder` names setups."""
    if not (CATHODE_SETUPS and PSEUDODATA["signals"]):
        return []
    plots = [f"{CATHODE_PLOTS}/{kind}_{s}.png" for s in LATENT_PLOT_SETUPS for kind in ("latent", "tsne")]
    plots += [f"{CATHODE_PLOTS}/sculpting_{s}.png" for s in SCULPTING_SETUPS]
    plots += [f"{CATHODE_PLOTS}/sic_{g}.png" for g in PSEUDODATA["signals"]]
    plots.append(f"{CATHODE_PLOTS}/required_injection.png")
    return CATHODE_TABLES + plots


def _plot_report(kind, caption, category, subcategory, label):
    return report(
        f"{CATHODE_PLOTS}/{kind}_{label}.png",
        caption=f"../workflow/report/{caption}.rst",
        category=category,
        subcategory=subcategory,
        labels={"signal" if kind == "sic" else "setup": label},
    )


def _latent_plot_calls(setup):
    """Latent projections and t-SNE of the set of _show (with its pooled template)."""
    show = _show(type("W", (), {"setup": setup}))
    emb = "results/embeddings/{setup}/{seed}.parquet".format(**show)
    data = "results/pseudodata/{signal}/{strength}/{instance}.parquet".format(**show)
    template = f"{show['run']}/templates/{show['strength']}/0.parquet"
    lumi = PSEUDODATA["luminosity_ifb"]
    return [
        f"python -m salad evaluate plot latent --data {data} --embeddings {emb} --template {template}"
        f" --title {shlex.quote(f'SR latent projections, setup {setup}')}"
        f" --output {CATHODE_PLOTS}/latent_{setup}.png --lumi {lumi} --config {_common_cfg()}",
        f"python -m salad evaluate plot tsne --data {data} --embeddings {emb}"
        f" --title {shlex.quote(f't-SNE of the SR latent space, setup {setup}')}"
        f" --output {CATHODE_PLOTS}/tsne_{setup}.png --lumi {lumi}"
        f" --config {_common_cfg(evaluate=config['evaluate'])}",
    ]


def _sculpting_plot_call(setup):
    return (
        f"python -m salad evaluate plot sculpting --roc {_quoted(_evals('sculpting_roc', [setup]))}"
        f" --mass {_quoted(_evals('sculpting_mass', [setup]))}"
        f" --title {shlex.quote(f'Sculpting check (no injection), setup {setup}')}"
        f" --output {CATHODE_PLOTS}/sculpting_{setup}.png --lumi {PSEUDODATA['luminosity_ifb']} --config {_common_cfg()}"
    )


def _setup_plot_inputs():
    files = []
    for setup in LATENT_PLOT_SETUPS:
        show = _show(type("W", (), {"setup": setup}))
        files += [
            "results/embeddings/{setup}/{seed}.parquet".format(**show),
            "results/pseudodata/{signal}/{strength}/{instance}.parquet".format(**show),
            show["run"],
        ]
    return list(dict.fromkeys(files + [CATHODE_EVAL_SETUP.format(setup=s) for s in SCULPTING_SETUPS]))


# ------------------------------ input functions of rules/encoder.smk


def _train_samples(w):
    return list(ENCODER_SETUPS[w.setup]["train_samples"])


def _gpu_resources():
    return {"gpu": 1} if ENCODER_RESOURCES["gpu"] else {}


def encoder_targets():
    """Embeddings of every configured setup and seed."""
    return [
        f"results/embeddings/{setup}/{seed}.parquet"
        for setup in ENCODER_SETUPS
        for seed in seeds_for(ENCODER, setup)
    ]


# ------------------------------ input functions of rules/generate.smk


def process_spec_arg(wildcards):
    """The process-table entry of one sample (so editing one process re-runs only its sample)."""
    return shlex.quote(json.dumps(PROCESSES[wildcards.sample], sort_keys=True, default=str))


def generated_samples():
    return [s for s in ALL_SAMPLES if s not in config.get("delphes_inputs", {})]


# ------------------------------ input functions of rules/preselect.smk


def delphes_files(wildcards):
    """A sample's ROOT files: config `delphes_inputs` when listed, else the generator's output."""
    paths = config.get("delphes_inputs", {}).get(wildcards.sample)
    if paths:
        return [dag_path(p) for p in paths]
    return [f"results/generated/{wildcards.sample}.root"]


def dataset_signal(signal, strength):
    """The signal wildcard under which a pseudo-data set is stored.

    With no injection the set does not depend on the signal (the background draw depends on
    the instance only), so every signal's strength-0 set is the first signal's: each
    background-only instance is drawn, embedded, fitted and classified once.
    """
    return PSEUDODATA["signals"][0] if float(strength) == 0 else signal


def pseudodata_sets():
    """Unique (signal, strength label, instance) pseudo-data sets of the configuration."""
    sets = [
        (dataset_signal(sig, s), strength_label(s), str(i))
        for sig in PSEUDODATA["signals"]
        for s in PSEUDODATA["strengths"]
        for i in range(PSEUDODATA["instances"])
    ]
    return list(dict.fromkeys(sets))


def pseudodata_paths(suffix=".parquet"):
    """Every configured pseudo-data set: results/pseudodata/{signal}/{strength}/{instance}."""
    return [f"results/pseudodata/{sig}/{s}/{i}{suffix}" for sig, s, i in pseudodata_sets()]


def _pair(sample):
    return f"results/preselected/{sample}.parquet", f"results/split/{sample}.parquet"


# ------------------------------ input functions of rules/preselect.smk (pseudodata)


def _pseudodata_command(w):
    """One `salad pseudodata` call per instance (one job per signal and strength)."""
    cfg = cfg_arg("regions", pseudodata={k: PSEUDODATA[k] for k in ("luminosity_ifb", "seed")})
    background = " ".join(shlex.quote(":".join(_pair(s))) for s in BACKGROUNDS)
    out = f"results/pseudodata/{w.signal}/{w.strength}"
    return " && ".join(
        f"python -m salad pseudodata --background {background}"
        f" --signal {shlex.quote(':'.join(_pair(w.signal)))} --strength {w.strength} --instance {i}"
        f" --output {out}/{i}.parquet --summary {out}/{i}.json --config {cfg}"
        for i in INSTANCE_LABELS
    )


# ------------------------------ input functions of rules/signal_agnostic.smk


def _scan_inputs(kind):
    """dimension_scan inputs: the CATHODE table (setups), NPLM power and per-seed linear tables (families)."""
    if kind == "sic":
        return (
            [DIMENSION_SCAN.get("sic_table", "results/tables/cathode_sensitivity.parquet")]
            if SCAN_SETUPS_BY_DIM
            else []
        )
    pattern = {
        "nplm": "results/tables/nplm/{}/{}_power.parquet",
        "linear": "results/tables/linear_eval/{}/{}.parquet",
    }[kind]
    return [pattern.format(s, seed) for s in SCAN_FAMILY_SETUPS for seed in representation_seeds(s)]


def _scan_arg(flag, paths):
    return f" {flag} " + " ".join(shlex.quote(str(p)) for p in paths) if len(paths) else ""


def _nplm_cfg(base, setup):
    """NPLM settings of one representation (nplm_fit, nplm_toys): only its own kernel_widths rule
    (salad.nplm.kernel_rule), so changing one representation's rule re-runs only its jobs."""
    own = {setup: NPLM_WIDTHS[setup]} if setup in NPLM_WIDTHS else {}
    return cfg_arg(nplm={**base, "kernel_widths": own}, pseudodata=NPLM_LUMI)


def _signal_flag(setup):
    """' --trained-on-signals' for a representation trained on BSM samples, else ''."""
    resolved = ENCODER_SETUPS.get(setup)
    aware = resolved is not None and any(g < 0 for g in resolved["train_samples"].values())
    return " --trained-on-signals" if aware else ""


def representation_seeds(setup):
    """Seed wildcards of a representation: baselines.seeds, or the encoder setup's seeds."""
    if setup.startswith("baseline_"):
        if setup[len("baseline_") :] not in BASELINE_NAMES:
            raise ValueError(
                f"unknown baseline {setup!r}; known: baseline_{', baseline_'.join(BASELINE_NAMES)}"
            )
        return [str(s) for s in BASELINES["seeds"]]
    if setup not in ENCODER_SETUPS:
        raise ValueError(
            f"representation {setup!r} is neither baseline_<name> nor in config encoder.setups "
            f"({', '.join(ENCODER_SETUPS) or 'none'})"
        )
    return [str(s) for s in seeds_for(ENCODER, setup)]


def _check_representations(key, names):
    for name in names:
        representation_seeds(name)


def _nplm_batches():
    return [str(b) for b in range(math.ceil(NPLM.get("toys", 0) / NPLM.get("toys_per_batch", 1)))]


def _baseline_samples(w):
    extra = EVAL_ONLY_SAMPLES if f"baseline_{w.name}" in CATHODE_SETUPS else []
    return SAMPLES + extra


def _baseline_cfg(name):
    """Only the settings baseline `name` reads (editing the VAE re-runs only the VAE)."""
    keys = {"leading": ["leading_dim"], "vae": ["vae", "seed"]}.get(name, [])
    return {k: BASELINES[k] for k in keys}


def _nplm_reps():
    return [(r, s) for r in NPLM.get("representations", []) for s in representation_seeds(r)]


def _tsne_show(w):
    """The set of the 2-D map: first injected signal at its largest strength, instance 0."""
    strength = max((strength_label(s) for s in PSEUDODATA["strengths"]), key=float)
    return {
        "setup": w.setup,
        "seed": w.seed,
        "signal": dataset_signal(PSEUDODATA["signals"][0], strength),
        "strength": strength,
        "instance": "0",
    }


def _nplm_fit_batches():
    """Pseudo-data sets of every NPLM representation in chunks of nplm.datasets_per_job."""
    size = int(NPLM.get("datasets_per_job") or 10**9)
    return [PSEUDODATA_SETS[k : k + size] for k in range(0, len(PSEUDODATA_SETS), size)]


def _nplm_fit_files(w, name):
    """{name} = fit | scores files of every pseudo-data set of representation {setup}/{seed}."""
    return [
        f"{NPLM_DIR}/fits/{b}/{sig}/{s}/{i}/{name}.parquet".format(setup=w.setup, seed=w.seed)
        for b, sets in enumerate(_nplm_fit_batches())
        for sig, s, i in sets
    ]


def _nplm_map_scores(w):
    show = _tsne_show(w)
    key = (show["signal"], show["strength"], show["instance"])
    batch = next(b for b, sets in enumerate(_nplm_fit_batches()) if key in sets)
    return f"{NPLM_DIR}/fits/{batch}/{show['signal']}/{show['strength']}/0/scores.parquet".format(**show)


def _info_embedding():
    seed = INFORMATION.get("encoder_seed")
    seed = str(seed) if seed is not None else representation_seeds(INFORMATION["setup"])[0]
    return f"results/embeddings/{INFORMATION['setup']}/{seed}.parquet"


def signal_agnostic_targets():
    """NPLM, linear evaluation, information check, t-SNE and (with encoders) the dimension scan."""
    targets = []
    if NPLM.get("representations") and PSEUDODATA["signals"]:
        targets += ["results/tables/nplm.parquet", "results/tables/nplm.md"]
        targets += [f"results/plots/nplm/null_{r}_{s}.png" for r, s in _nplm_reps()]
        targets += [f"results/plots/nplm/tsne_{r}_{s}.png" for r, s in _nplm_reps()]
    if LINEAR_EVAL.get("representations"):
        targets += ["results/tables/linear_eval.parquet", "results/tables/linear_eval.md"]
    if INFORMATION:
        targets += ["results/tables/information.md", "results/plots/information_confusion.png"]
    if DIMENSION_SCAN_ON and PSEUDODATA["signals"]:
        targets += ["results/plots/dimension_scan.png", "results/tables/dimension_scan.md"]
    return targets


# ------------------------------ input functions of rules/comparison.smk


def _made_tables():
    """{name: path} of the comparison tables that this configuration makes (its targets name
    the Parquet or the Markdown next to it)."""
    made = {t for name, f in _TARGETS.items() if name not in ("comparison", "report") for t in f()}
    return {n: p for n, p in COMPARISON_TABLES.items() if p in made or p.replace(".parquet", ".md") in made}


def _figure_files(name):
    """Output PNGs of figure `name` (config figures.<name>); checks its setups and signals."""
    fig = FIGURES[name]
    where = f"config key figures.{name}"
    unknown = [s for s in fig.get("setups", []) if s not in CATHODE_SETUPS]
    if unknown:
        raise ValueError(f"{where}.setups: {unknown} are not CATHODE setups ({', '.join(CATHODE_SETUPS)})")
    missing = [s for s in fig.get("signals", []) if s not in PSEUDODATA["signals"]]
    if missing:
        raise ValueError(f"{where}.signals: {missing} are not in pseudodata.signals")
    if fig.get("leave_one_model_out") and not FAMILY_SETUPS:
        raise ValueError(f"{where}.leave_one_model_out: config encoder.leave_one_model_out is not set")
    out = f"results/figures/{name}"
    if fig["kind"] == "sic":
        return [f"{out}/sic_{s}.png" for s in fig["signals"]]
    if fig["kind"] == "required":
        return [f"{out}/required.png"]
    return [f"{out}/sculpting_{s}.png" for s in fig["setups"]]


def _figure_args(w):
    fig = FIGURES[w.figure]
    args = " --setups " + " ".join(map(shlex.quote, fig.get("setups", [])))
    if fig.get("working_points"):
        args += " --working-points " + " ".join(f"{float(x):g}" for x in fig["working_points"])
    if fig.get("leave_one_model_out"):
        prefix = (ENCODER.get("leave_one_model_out") or {}).get("prefix", "EP_m")
        args += f" --family {shlex.quote(prefix)} EP"
    return args + f" --lumi {PSEUDODATA['luminosity_ifb']}"


def comparison_targets():
    figures = [f for name in FIGURES for f in _figure_files(name)]
    return ["results/tables/paper_comparison.md", "results/tables/paper_comparison.parquet"] + figures


# ------------------------------ input functions of rules/report.smk


def _report_place(html):
    """(category, subcategory) of a table page in the report."""
    return REPORT_TABLES.get(Path(html).stem, (REPORT_NPLM, "tables per representation"))


def report_table_html(md_path):
    """results/tables/a/b.md -> results/report/tables/a__b.html"""
    parts = Path(md_path).relative_to("results/tables").with_suffix("").parts
    return str(Path("results/report/tables") / ("__".join(parts) + ".html"))


def report_table_md(html):
    """Inverse of report_table_html: the Markdown table behind a table page."""
    return str(Path("results/tables", *Path(html).stem.split("__")).with_suffix(".md"))


def report_targets():
    """An HTML page per Markdown table that the other stages produce."""
    tables = [
        t
        for name in sorted(_TARGETS)
        if name != "report"
        for t in _TARGETS[name]()
        if t.startswith("results/tables") and t.endswith(".md")
    ]
    if "results/tables/nplm.md" in tables:
        tables += [str(Path("results/tables/nplm", r, s).with_suffix(".md")) for r, s in _nplm_reps()]
    return [report_table_html(t) for t in dict.fromkeys(tables)]


# ------------------------------ lists derived through the functions above

# Representations CATHODE runs on: config cathode.setups (encoder setups or baseline_*), else
# every encoder setup; plus cathode.scan.setups on a reduced list of pseudo-data sets.
# Leave-one-model-out setups (FAMILY_SETUPS) join the main grid when a signal of their group is injected.
CATHODE_MAIN_SETUPS = [
    s for s in (CATHODE.get("setups") or ENCODER.get("setups") or {}) if s not in FAMILY_SETUPS
]
CATHODE_MAIN_SETUPS += [s for s in FAMILY_SETUPS if cathode_signals(s)]
CATHODE_SETUPS = CATHODE_MAIN_SETUPS + [
    s for s in CATHODE_SCAN.get("setups", []) if s not in CATHODE_MAIN_SETUPS
]
# plots: every setup's latent projections and t-SNE (one per model family is enough) and the
# sculpting check of the setups with a no-injection set
SCULPTING_SETUPS = [s for s in CATHODE_SETUPS if _has_sculpting(s)]
LATENT_PLOT_SETUPS = [s for s in CATHODE_SETUPS if s not in FAMILY_SETUPS]
PSEUDODATA_SETS = pseudodata_sets()
_check_representations("nplm.representations", NPLM.get("representations", []))
_check_representations("linear_eval.representations", LINEAR_EVAL.get("representations", []))
if INFORMATION:
    _check_representations("information.setup", [INFORMATION["setup"]])
_check_representations("nplm.kernel_widths", list(NPLM_WIDTHS))
