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


rule paper_comparison:
    input:
        tables=lambda w: list(_made_tables().values()),
    output:
        table="results/tables/paper_comparison.parquet",
        markdown="results/tables/paper_comparison.md",
    log:
        "results/logs/paper_comparison.log",
    benchmark:
        "results/benchmarks/paper_comparison.tsv"
    conda:
        "../envs/salad.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        # the claims file's content, not its path: a moved checkout changes no input
        claims=lambda w: shlex.quote(
            json.dumps(load_yaml(repo_path(PAPER_CLAIMS)), sort_keys=True, default=str)
        ),
        claims_name=Path(PAPER_CLAIMS).name,
        tables=lambda w: " ".join(shlex.quote(f"{n}={p}") for n, p in _made_tables().items()),
    shell:
        "python -m salad paper-comparison --claims {params.claims_name:q} --claims-json {params.claims}"
        " --table {params.tables}"
        " --output {output.table:q} --markdown {output.markdown:q} > {log:q} 2>&1"


rule paper_figure_sic:
    input:
        SENSITIVITY_TABLE,
    output:
        png="results/figures/{figure}/sic_{signal}.png",
        pdf="results/figures/{figure}/sic_{signal}.pdf",
    log:
        "results/logs/figures/{figure}/sic_{signal}.log",
    conda:
        "../envs/salad.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        args=_figure_args,
    shell:
        "python -m salad evaluate plot sic --table {input:q} --signal {wildcards.signal}"
        "{params.args} --output {output.png:q} > {log:q} 2>&1"


rule paper_figure_required:
    input:
        REQUIRED_INJECTION_TABLE,
    output:
        png="results/figures/{figure}/required.png",
        pdf="results/figures/{figure}/required.pdf",
    log:
        "results/logs/figures/{figure}/required.log",
    conda:
        "../envs/salad.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        args=_figure_args,
    shell:
        "python -m salad evaluate plot required --table {input:q}{params.args}"
        " --output {output.png:q} > {log:q} 2>&1"


rule paper_figure_sculpting:
    input:
        png=f"{CATHODE_PLOTS}/sculpting_{{setup}}.png",
        pdf=f"{CATHODE_PLOTS}/sculpting_{{setup}}.pdf",
    output:
        png="results/figures/{figure}/sculpting_{setup}.png",
        pdf="results/figures/{figure}/sculpting_{setup}.pdf",
    log:
        "results/logs/figures/{figure}/sculpting_{setup}.log",
    localrule: True
    conda:
        "../envs/salad.yaml"
    shell:
        "(cp {input.png:q} {output.png:q} && cp {input.pdf:q} {output.pdf:q}) > {log:q} 2>&1"


for _name in FIGURES:

    rule:
        name:
            f"figure_{_name}"
        input:
            _figure_files(_name),
        localrule: True


register_targets("comparison", comparison_targets)
