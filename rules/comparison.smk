"""Papers vs this run, and paper A's figures as named targets.

paper_comparison  the run's summary tables + config `paper_claims` -> results/tables/paper_comparison.{parquet,md}
                  (salad.comparison; a table the run does not make leaves its claims "not covered")
figure_<name>     one target per entry of config `figures` (e.g. `snakemake figure_fig4`):
                  kind sic       SIC vs injection per signal (results/figures/<name>/sic_<signal>.png)
                  kind required  injection needed for the target significance, EP = each model's
                                 leave-one-model-out setup (results/figures/<name>/required.png)
                  kind sculpting the setup's sculpting figure (results/figures/<name>/sculpting_<setup>.png)
Reads tables and plots only (not per-job files), so the CATHODE/NPLM job granularity is free.
"""

_FIGURES = config.get("figures") or {}
_CLAIMS = config.get("paper_claims", "config/paper_claims.yaml")
# run tables the claims may read (salad.comparison): name -> Parquet
_COMPARISON_TABLES = {n: f"results/tables/{n}.parquet" for n in (
    "cathode_sensitivity", "cathode_sensitivity_instances", "cathode_required_injection",
    "cathode_sculpting", "linear_eval", "nplm", "dimension_scan")}
_SENS_TABLE = _COMPARISON_TABLES["cathode_sensitivity"]
_REQ_TABLE = _COMPARISON_TABLES["cathode_required_injection"]


def _made_tables():
    """{name: path} of the comparison tables that this configuration makes (its targets name
    the Parquet or the Markdown next to it)."""
    made = {t for name, f in _TARGETS.items() if name not in ("comparison", "report") for t in f()}
    return {n: p for n, p in _COMPARISON_TABLES.items()
            if p in made or p.replace(".parquet", ".md") in made}


def _figure_files(name):
    """Output PNGs of figure `name` (config figures.<name>); checks its setups and signals."""
    fig = _FIGURES[name]
    where = f"config key figures.{name}"
    unknown = [s for s in fig.get("setups", []) if s not in CATHODE_SETUPS]
    if unknown:
        raise ValueError(f"{where}.setups: {unknown} are not CATHODE setups ({', '.join(CATHODE_SETUPS)})")
    missing = [s for s in fig.get("signals", []) if s not in _CPD["signals"]]
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
    fig = _FIGURES[w.figure]
    args = " --setups " + " ".join(map(shlex.quote, fig.get("setups", [])))
    if fig.get("working_points"):
        args += " --working-points " + " ".join(f"{float(x):g}" for x in fig["working_points"])
    if fig.get("leave_one_model_out"):
        prefix = (_ENC.get("leave_one_model_out") or {}).get("prefix", "EP_m")
        args += f" --family {shlex.quote(prefix)} EP"
    return args + f" --lumi {_CPD['luminosity_ifb']}"


def comparison_targets():
    figures = [f for name in _FIGURES for f in _figure_files(name)]
    return ["results/tables/paper_comparison.md", "results/tables/paper_comparison.parquet"] + figures


rule paper_comparison:
    conda:
        "../envs/salad.yaml"
    input:
        claims=dag_path(_CLAIMS),
        tables=lambda w: list(_made_tables().values()),
    output:
        table="results/tables/paper_comparison.parquet",
        markdown="results/tables/paper_comparison.md",
    params:
        tables=lambda w: " ".join(shlex.quote(f"{n}={p}") for n, p in _made_tables().items()),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    log:
        "results/logs/paper_comparison.log",
    benchmark:
        "results/benchmarks/paper_comparison.tsv"
    shell:
        "python -m salad paper-comparison --claims {input.claims:q} --table {params.tables}"
        " --output {output.table:q} --markdown {output.markdown:q} > {log:q} 2>&1"


rule paper_figure_sic:
    conda:
        "../envs/salad.yaml"
    input:
        _SENS_TABLE,
    output:
        png="results/figures/{figure}/sic_{signal}.png",
        pdf="results/figures/{figure}/sic_{signal}.pdf",
    params:
        args=_figure_args,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "results/logs/figures/{figure}/sic_{signal}.log",
    shell:
        "python -m salad evaluate plot sic --table {input:q} --signal {wildcards.signal}"
        "{params.args} --output {output.png:q} > {log:q} 2>&1"


rule paper_figure_required:
    conda:
        "../envs/salad.yaml"
    input:
        _REQ_TABLE,
    output:
        png="results/figures/{figure}/required.png",
        pdf="results/figures/{figure}/required.pdf",
    params:
        args=_figure_args,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "results/logs/figures/{figure}/required.log",
    shell:
        "python -m salad evaluate plot required --table {input:q}{params.args}"
        " --output {output.png:q} > {log:q} 2>&1"


rule paper_figure_sculpting:
    input:
        png=f"{_PLOTS}/sculpting_{{setup}}.png",
        pdf=f"{_PLOTS}/sculpting_{{setup}}.pdf",
    output:
        png="results/figures/{figure}/sculpting_{setup}.png",
        pdf="results/figures/{figure}/sculpting_{setup}.pdf",
    localrule: True
    shell:
        "cp {input.png:q} {output.png:q} && cp {input.pdf:q} {output.pdf:q}"


for _name in _FIGURES:

    rule:
        name:
            f"figure_{_name}"
        input:
            _figure_files(_name),
        localrule: True


register_targets("comparison", comparison_targets)
