"""CATHODE on the latent space: evaluation_set; cathode (flows -> pooled template -> CWoLa
BDTs -> references) per (encoder, batch of pseudo-data sets); evaluate per setup; tables, plots.

Wildcards {setup}/{seed} name an encoder, {signal} the folder a pseudo-data set is stored under
(results/pseudodata/{signal}/{strength}/{instance}) and {batch} a chunk of
`cathode.datasets_per_job` of its sets. One `cathode` job fits, per set, all `flow.count` flows,
pools their samples into one template, trains all `classifier.bdts` BDTs (paper A's ensemble)
and the references; it reads the embeddings, the evaluation set and the simulation once, so a
job is worth its start-up cost and the paper-scale DAG stays small (tests/test_jobs.py).
"""


rule evaluation_set:
    input:
        _sim_pairs(truth_background_samples() + PSEUDODATA["signals"] + _replaced_samples()),
    output:
        parquet=EVALUATION_SET,
        summary="results/evaluation/set.json",
    log:
        "results/logs/evaluation_set.log",
    benchmark:
        "results/benchmarks/evaluation_set.tsv"
    conda:
        "../envs/salad.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        cfg=lambda w: _common_cfg(evaluation_set={"samples": EVAL_ONLY_SAMPLES}),
        background=_triples("--background", truth_background_samples()),
        signal=_triples("--signal", PSEUDODATA["signals"]),
        replaced=_triples("--replaced", _replaced_samples()),
    shell:
        "python -m salad evaluation-set {params.background} {params.signal} {params.replaced}"
        " --output {output.parquet:q} --summary {output.summary:q} --config {params.cfg}"
        " > {log:q} 2>&1"


rule cathode:
    input:
        embeddings="results/embeddings/{setup}/{seed}.parquet",
        data=_batch_data,
        higgs=_sim_pairs(HIGGS_SAMPLES),
        simulation=_reference_inputs,
        evaluation=EVALUATION_SET,
    output:
        directory(CATHODE_RUN),
    log:
        "results/logs/cathode/{setup}/{seed}/{signal}/{batch}.log",
    benchmark:
        "results/benchmarks/cathode/{setup}/{seed}/{signal}/{batch}.tsv"
    wildcard_constraints:
        batch=r"\d+",
    conda:
        "../envs/salad.yaml"
    threads: threads_for("flow")
    resources:
        mem_mb=3000,
        runtime=lambda w: 10 + 5 * (FLOW["count"] + 2) * len(_batch_data(w)),  # minutes
    params:
        cfg=lambda w: _common_cfg(
            flow=FLOW_FIT,
            flow_count=FLOW["count"],
            template=FLOW["template"],
            classifier=config["classifier"],
            luminosity=PSEUDODATA["luminosity_ifb"],
        ),
        higgs=_pair_args("--higgs", HIGGS_SAMPLES),
        references=_reference_args,
    shell:
        "python -m salad cathode --embeddings {input.embeddings:q} --data {input.data:q}"
        " {params.higgs} {params.references} --evaluation-set {input.evaluation:q}"
        " --output-dir {output:q} --seed-key {wildcards.setup}/{wildcards.seed}"
        " --threads {threads} --config {params.cfg} > {log:q} 2>&1"


rule evaluate:
    input:
        runs=_evaluate_runs,
        data=lambda w: [
            f"results/pseudodata/{sig}/{s}/{i}.parquet"
            for g in PSEUDODATA["signals"]
            for sig, s, i in signal_sets(w.setup, g)
        ],
        evaluation=EVALUATION_SET,
    output:
        # {signal}/{sensitivity,sculpting_*}.parquet for each signal the setup is evaluated on
        directory(CATHODE_EVAL_SETUP),
    log:
        "results/logs/evaluate/{setup}.log",
    benchmark:
        "results/benchmarks/evaluate/{setup}.tsv"
    conda:
        "../envs/salad.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        command=_evaluate_command,
    shell:
        "({params.command}) > {log:q} 2>&1"


rule cathode_tables:
    input:
        [CATHODE_EVAL_SETUP.format(setup=s) for s in CATHODE_SETUPS],
    output:
        CATHODE_TABLES,
    log:
        "results/logs/cathode_tables.log",
    benchmark:
        "results/benchmarks/cathode_tables.tsv"
    conda:
        "../envs/salad.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        sensitivity=_quoted(_evals("sensitivity")),
        auc=_quoted(_evals("sculpting_auc")),
        mass=_quoted(_evals("sculpting_mass")),
        cfg=lambda w: _common_cfg(
            evaluate=config["evaluate"], min_background_passing=EVAL_SET_CFG["min_background_passing"]
        ),
    shell:
        "python -m salad evaluate tables --sensitivity {params.sensitivity}"
        " --sculpting-auc {params.auc} --sculpting-mass {params.mass}"
        " --output-dir results/tables --config {params.cfg} > {log:q} 2>&1"


# ------------------------------------------------------------------------ plots
# One job draws every setup's latent projections, t-SNE (the set of _show: first encoder seed,
# first signal at its largest strength, instance 0) and sculpting check; one more draws the
# SIC and required-injection summaries from the tables.


rule cathode_plots:
    input:
        _setup_plot_inputs(),
    output:
        [
            _plot_report("latent", "cathode_latent", REPORT_LATENT, "CATHODE latent projections", s)
            for s in LATENT_PLOT_SETUPS
        ]
        + [
            _plot_report("tsne", "cathode_tsne", REPORT_LATENT, "t-SNE by process", s)
            for s in LATENT_PLOT_SETUPS
        ]
        + [
            _plot_report("sculpting", "cathode_sculpting", REPORT_SCULPTING, "ROC and mγγ", s)
            for s in SCULPTING_SETUPS
        ]
        + [f"{CATHODE_PLOTS}/{k}_{s}.pdf" for s in LATENT_PLOT_SETUPS for k in ("latent", "tsne")]
        + [f"{CATHODE_PLOTS}/sculpting_{s}.pdf" for s in SCULPTING_SETUPS],
    log:
        "results/logs/cathode_plots.log",
    benchmark:
        "results/benchmarks/cathode_plots.tsv"
    conda:
        "../envs/salad.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10 + 3 * len(CATHODE_SETUPS),
    params:
        command=" && ".join(
            [c for s in LATENT_PLOT_SETUPS for c in _latent_plot_calls(s)]
            + [_sculpting_plot_call(s) for s in SCULPTING_SETUPS]
        ),
    shell:
        "({params.command}) > {log:q} 2>&1"


rule cathode_summary_plots:
    input:
        sensitivity="results/tables/cathode_sensitivity.parquet",
        required="results/tables/cathode_required_injection.parquet",
    output:
        [
            _plot_report("sic", "cathode_sic", REPORT_SENSITIVITY, "SIC vs injection", g)
            for g in PSEUDODATA["signals"]
        ]
        + [
            report(
                f"{CATHODE_PLOTS}/required_injection.png",
                caption="../workflow/report/cathode_required.rst",
                category=REPORT_SENSITIVITY,
                subcategory="required injection",
                labels={"signal": "all"},
            )
        ]
        + [f"{CATHODE_PLOTS}/sic_{g}.pdf" for g in PSEUDODATA["signals"]]
        + [f"{CATHODE_PLOTS}/required_injection.pdf"],
    log:
        "results/logs/cathode_summary_plots.log",
    benchmark:
        "results/benchmarks/cathode_summary_plots.tsv"
    conda:
        "../envs/salad.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        # the scan setups have their own figure (dimension_scan)
        command=" && ".join(
            [
                f"python -m salad evaluate plot sic --table results/tables/cathode_sensitivity.parquet"
                f" --signal {g} --setups {_quoted(CATHODE_MAIN_SETUPS)} --lumi {PSEUDODATA['luminosity_ifb']}"
                f" --output {CATHODE_PLOTS}/sic_{g}.png"
                for g in PSEUDODATA["signals"]
            ]
            + [
                f"python -m salad evaluate plot required --table results/tables/cathode_required_injection.parquet"
                f" --lumi {PSEUDODATA['luminosity_ifb']} --output {CATHODE_PLOTS}/required_injection.png"
            ]
        ),
    shell:
        "({params.command}) > {log:q} 2>&1"


register_targets("cathode", cathode_targets)
