"""Shared by all stage files: config validation, sample tables, input functions."""
import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.utils import validate

from salad.config import cross_check, load_processes, load_yaml
from salad.config import validate as check_config

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
if "conda" not in str(workflow.deployment_settings.deployment_method).lower():
    shell.prefix(
        f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH"
        f" PYTHONPATH={shlex.quote(str(BASE / 'src'))}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
    )


def repo_path(path):
    """A config path: absolute as given, else relative to the workflow folder."""
    path = Path(path)
    return path if path.is_absolute() else BASE / path


def dag_path(path):
    """A config path for the DAG (inputs, params): as given when absolute, else relative to the
    working directory (so that a moved checkout, whose absolute paths all change, re-runs nothing)."""
    path = Path(path)
    return str(path) if path.is_absolute() else os.path.relpath(BASE / path)


PROCESSES = load_processes(repo_path(config["processes"]))
# Cross-key checks (ordered ranges, signal region inside the m_yy window, delphes_inputs keys
# that are configured samples of the process table) fail here, at parse time, naming the key.
cross_check(config, PROCESSES)
SAMPLES = list(config["samples"])
SIGNALS = [s for s in SAMPLES if PROCESSES[s]["group"] < 0]
BACKGROUNDS = [s for s in SAMPLES if PROCESSES[s]["group"] >= 0]
# The truth-labelled evaluation set (salad.evalset): evaluation-only samples (generated, read,
# split and embedded like the others, never in `samples`) and the shares of the other samples.
EVAL_SET_CFG = {"samples": [], "fraction": 0.25, "reference_fraction": 0.15,
                  "min_background_passing": 100, **config.get("evaluation_set", {})}
EVAL_ONLY_SAMPLES = list(EVAL_SET_CFG["samples"])
_bad_eval = [s for s in EVAL_ONLY_SAMPLES if s not in PROCESSES or s in SAMPLES
             or PROCESSES[s]["group"] < 0]
if _bad_eval:
    raise ValueError(
        f"config key evaluation_set.samples: {_bad_eval} must be SM processes of "
        f"{config['processes']} that are not in config key samples"
    )
ALL_SAMPLES = SAMPLES + EVAL_ONLY_SAMPLES
_EVAL_ONLY_GROUPS = {PROCESSES[s]["group"] for s in EVAL_ONLY_SAMPLES}


def evaluation_share(sample):
    """Config for `salad split` of one sample: an evaluation-only sample keeps
    `reference_fraction` for the references; a sample whose group has an evaluation-only
    sample gives nothing to the evaluation set (that sample replaces it); others give
    `fraction` of their pseudo-data half."""
    if sample in EVAL_ONLY_SAMPLES:
        return {"reference_fraction": EVAL_SET_CFG["reference_fraction"]}
    if PROCESSES[sample]["group"] in _EVAL_ONLY_GROUPS:
        return {"fraction": 0.0}
    return {"fraction": EVAL_SET_CFG["fraction"]}


def truth_background_samples():
    """SM samples standing for the true background: their `eval` events in the evaluation set,
    and (evaluation-only samples: their `ref` events) in the references' training. An
    evaluation-only sample replaces the configured samples of its group."""
    return EVAL_ONLY_SAMPLES + [s for s in BACKGROUNDS if PROCESSES[s]["group"] not in _EVAL_ONLY_GROUPS]


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


_TARGETS = {}


def register_targets(name, function):
    """Each rule file registers a function returning its final targets for `rule all`."""
    _TARGETS[name] = function


def all_targets(wildcards):
    return [t for name in sorted(_TARGETS) for t in _TARGETS[name]()]


# ------------------------------ input functions of rules/cathode.smk


def cathode_seeds(setup):
    """Encoder seeds of a setup: its own `seeds`, else encoder.seeds (else [1], as the encoder)."""
    own = (_ENC.get("setups") or {}).get(setup) or {}
    return [str(s) for s in own.get("seeds", _ENC.get("seeds", [1]))]


def _sim_pairs(samples):
    return [p for s in samples for p in (f"results/preselected/{s}.parquet", f"results/split/{s}.parquet")]


def _replaced_samples():
    """Configured SM samples whose group has an evaluation-only sample (its yield check)."""
    return [s for s in BACKGROUNDS if PROCESSES[s]["group"] in _EVAL_ONLY_GROUPS]


def _triples(option, samples):
    return " ".join(f"{option} {s} results/preselected/{s}.parquet results/split/{s}.parquet"
                    for s in samples)


def _pair_args(option, samples):
    return " ".join(f"{option} {shlex.quote(pre)} {shlex.quote(split)}"
                    for pre, split in map(_pair, samples))


def _seed_key(w):
    return f"{w.setup}/{w.seed}/{w.signal}/{w.strength}/{w.instance}"


def _common_cfg(**extra):
    return cfg_arg("regions", window=_WINDOW, **extra)


def setup_grid(setup):
    """(strength labels, instance labels) CATHODE evaluates for `setup`: the full grid, or the
    reduced one of cathode.scan for scan-only setups."""
    if setup in _SCAN.get("setups", []) and setup not in (_CATHODE.get("setups") or []):
        strengths = [_strength(s) for s in _SCAN.get("strengths", _CPD["strengths"])]
        return strengths, [str(i) for i in range(_SCAN.get("instances", _CPD["instances"]))]
    return _STRENGTHS, _INSTANCES


def _datasets(pattern, w, injected_only=False):
    """`pattern` for every encoder seed x pseudo-data set of (setup, signal); without the
    no-injection sets if `injected_only` (the references serve the sensitivity only)."""
    strengths, instances = setup_grid(w.setup)
    return [pattern.format(setup=w.setup, seed=seed, signal=dataset_signal(w.signal, s),
                           strength=s, instance=i)
            for seed in cathode_seeds(w.setup) for s in strengths for i in instances
            if not (injected_only and float(s) == 0)]


def _pseudo(w):
    strengths, instances = setup_grid(w.setup)
    return [f"results/pseudodata/{dataset_signal(w.signal, s)}/{s}/{i}.parquet"
            for s in strengths for i in instances]


def _evals(name, setups=None):
    return [CATHODE_EVAL.format(setup=s, signal=g, name=name)
            for s in (setups or CATHODE_SETUPS) for g in _CPD["signals"]]


def _show(w):
    return {"seed": cathode_seeds(w.setup)[0], "signal": _CPD["signals"][0],
            "strength": max(setup_grid(w.setup)[0], key=float),
            "instance": "0", "setup": w.setup}


def cathode_targets():
    """Tables and figures; nothing until config `encoder` names setups."""
    if not (CATHODE_SETUPS and _CPD["signals"]):
        return []
    plots = [f"{_PLOTS}/{kind}_{s}.png" for s in CATHODE_SETUPS for kind in ("latent", "tsne")]
    plots += [f"{_PLOTS}/sculpting_{s}.png" for s in CATHODE_SETUPS
              if 0.0 in [float(x) for x in setup_grid(s)[0]]]
    plots += [f"{_PLOTS}/sic_{g}.png" for g in _CPD["signals"]]
    plots.append(f"{_PLOTS}/required_injection.png")
    return CATHODE_TABLES + plots


# ------------------------------ input functions of rules/encoder.smk


def _train_samples(w):
    return list(ENCODER_SETUPS[w.setup]["train_samples"])


def _gpu_resources():
    return {"gpu": 1} if _ENC_RES["gpu"] else {}


def encoder_targets():
    """Embeddings of every configured setup and seed."""
    return [f"results/embeddings/{setup}/{seed}.parquet"
            for setup in ENCODER_SETUPS for seed in seeds_for(ENCODER, setup)]


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


def strength_label(strength):
    """Path form of an injection strength: 0.0 -> '0', 2.5 -> '2.5'."""
    return f"{float(strength):g}"


def dataset_signal(signal, strength):
    """The signal wildcard under which a pseudo-data set is stored.

    With no injection the set does not depend on the signal (the background draw depends on
    the instance only), so every signal's strength-0 set is the first signal's: each
    background-only instance is drawn, embedded, fitted and classified once.
    """
    return _PSEUDO["signals"][0] if float(strength) == 0 else signal


def pseudodata_sets():
    """Unique (signal, strength label, instance) pseudo-data sets of the configuration."""
    sets = [
        (dataset_signal(sig, s), strength_label(s), str(i))
        for sig in _PSEUDO["signals"]
        for s in _PSEUDO["strengths"]
        for i in range(_PSEUDO["instances"])
    ]
    return list(dict.fromkeys(sets))


def pseudodata_paths(suffix=".parquet"):
    """Every configured pseudo-data set: results/pseudodata/{signal}/{strength}/{instance}."""
    return [f"results/pseudodata/{sig}/{s}/{i}{suffix}" for sig, s, i in pseudodata_sets()]


def _pair(sample):
    return f"results/preselected/{sample}.parquet", f"results/split/{sample}.parquet"


# ------------------------------ input functions of rules/signal_agnostic.smk


def _scan_inputs(kind):
    """dimension_scan inputs: the CATHODE table (setups), NPLM power and per-seed linear tables (families)."""
    if kind == "sic":
        return [_SA_SCAN.get("sic_table", "results/tables/cathode_sensitivity.parquet")] if _SA_SCAN_SETUPS else []
    pattern = {"nplm": "results/tables/nplm/{}/{}_power.parquet",
               "linear": "results/tables/linear_eval/{}/{}.parquet"}[kind]
    return [pattern.format(s, seed) for s in _SA_SCAN_FAMILY_SETUPS for seed in representation_seeds(s)]


def _scan_arg(flag, paths):
    return f" {flag} " + " ".join(shlex.quote(str(p)) for p in paths) if len(paths) else ""


def _nplm_cfg(base, setup):
    """NPLM settings of one representation (nplm_fit, nplm_toys): only its own kernel_widths rule
    (salad.nplm.kernel_rule), so changing one representation's rule re-runs only its jobs."""
    own = {setup: _NPLM_WIDTHS[setup]} if setup in _NPLM_WIDTHS else {}
    return cfg_arg(nplm={**base, "kernel_widths": own}, pseudodata=_NPLM_LUMI)


def _signal_flag(setup):
    """' --trained-on-signals' for a representation trained on BSM samples, else ''."""
    resolved = globals().get("ENCODER_SETUPS", {}).get(setup)
    aware = resolved is not None and any(g < 0 for g in resolved["train_samples"].values())
    return " --trained-on-signals" if aware else ""


def representation_seeds(setup):
    """Seed wildcards of a representation: baselines.seeds, or the encoder setup's seeds."""
    if setup.startswith("baseline_"):
        if setup[len("baseline_"):] not in BASELINE_NAMES:
            raise ValueError(f"unknown baseline {setup!r}; known: baseline_{', baseline_'.join(BASELINE_NAMES)}")
        return [str(s) for s in _SA_BASE["seeds"]]
    if setup not in _SA_ENC_SETUPS:
        raise ValueError(f"representation {setup!r} is neither baseline_<name> nor in config encoder.setups "
                         f"({', '.join(_SA_ENC_SETUPS) or 'none'})")
    return [str(s) for s in seeds_for(_SA_ENC, setup)]


def _check_representations(key, names):
    for name in names:
        representation_seeds(name)


def _nplm_batches():
    return [str(b) for b in range(math.ceil(_SA_NPLM.get("toys", 0) / _SA_NPLM.get("toys_per_batch", 1)))]


def _baseline_cfg(name):
    """Only the settings baseline `name` reads (editing the VAE re-runs only the VAE)."""
    keys = {"leading": ["leading_dim"], "vae": ["vae", "seed"]}.get(name, [])
    return {k: _SA_BASE[k] for k in keys}


def _nplm_reps():
    return [(r, s) for r in _SA_NPLM.get("representations", []) for s in representation_seeds(r)]


def _tsne_show(w):
    """First seed, first injected signal at its largest strength, instance 0."""
    strength = max((_SA_label(s) for s in _SA_PSEUDO["strengths"]), key=float)
    return {"setup": w.setup, "seed": representation_seeds(w.setup)[0],
            "signal": _SA_PSEUDO["signals"][0], "strength": strength, "instance": "0"}


def _info_embedding():
    seed = _SA_INFO.get("encoder_seed")
    seed = str(seed) if seed is not None else representation_seeds(_SA_INFO["setup"])[0]
    return f"results/embeddings/{_SA_INFO['setup']}/{seed}.parquet"


def signal_agnostic_targets():
    """NPLM, linear evaluation, information check, t-SNE and (with encoders) the dimension scan."""
    targets = []
    if _SA_NPLM.get("representations") and _SA_PSEUDO["signals"]:
        targets += ["results/tables/nplm.parquet", "results/tables/nplm.md"]
        targets += [f"results/plots/nplm/null_{r}_{s}.png" for r, s in _nplm_reps()]
        targets += [f"results/plots/nplm/tsne_{r}.png" for r in _SA_NPLM["representations"]]
    if _SA_LIN.get("representations"):
        targets += ["results/tables/linear_eval.parquet", "results/tables/linear_eval.md"]
    if _SA_INFO:
        targets += ["results/tables/information.md", "results/plots/information_confusion.png"]
    if _SA_SCAN_ON and _SA_PSEUDO["signals"]:
        targets += ["results/plots/dimension_scan.png", "results/tables/dimension_scan.md"]
    return targets


# ------------------------------ input functions of rules/report.smk


def _report_place(w):
    """(category, subcategory) of a table page in the report."""
    return _REPORT_TABLES.get(w.table, (REPORT_NPLM, "tables per representation"))


def report_table_html(md_path):
    """results/tables/a/b.md -> results/report/tables/a__b.html"""
    parts = Path(md_path).relative_to("results/tables").with_suffix("").parts
    return str(Path("results/report/tables") / ("__".join(parts) + ".html"))


def report_table_md(w):
    """Inverse of report_table_html: the Markdown table behind a table page."""
    return str(Path("results/tables", *w.table.split("__")).with_suffix(".md"))


def report_targets():
    """An HTML page per Markdown table that the other stages produce."""
    tables = [t for name in sorted(_TARGETS) if name != "report" for t in _TARGETS[name]()
              if t.startswith("results/tables") and t.endswith(".md")]
    if "results/tables/nplm.md" in tables:
        tables += [str(Path("results/tables/nplm", r, s).with_suffix(".md")) for r, s in _nplm_reps()]
    return [report_table_html(t) for t in dict.fromkeys(tables)]
