"""CATHODE on the latent space: evaluation_set; cathode (flows -> pooled template -> CWoLa
BDTs) and classify_reference per (encoder, dataset); evaluate per (setup, signal); tables, plots.

Dataset wildcards {signal}/{strength}/{instance} name a pseudo-data set; {setup}/{seed} an
encoder. One `cathode` job per (encoder, dataset) fits all `flow.count` flows, pools their
samples into one template and trains all `classifier.bdts` BDTs (paper A's ensemble; a job is
worth its start-up cost, and the paper-scale DAG stays small).
"""

_ENC = config.get("encoder") or {}
_CATHODE = config.get("cathode") or {}
_SCAN = _CATHODE.get("scan") or {}
_CPD = config["pseudodata"]
# Representations CATHODE runs on: config cathode.setups (encoder setups or baseline_*), else
# every encoder setup; plus cathode.scan.setups on a reduced list of pseudo-data sets.
# Leave-one-model-out setups (FAMILY_SETUPS) join the main grid when a signal of their group is injected.
CATHODE_MAIN_SETUPS = [s for s in (_CATHODE.get("setups") or _ENC.get("setups") or {}) if s not in FAMILY_SETUPS]
CATHODE_MAIN_SETUPS += [s for s in FAMILY_SETUPS if cathode_signals(s)]
CATHODE_SETUPS = CATHODE_MAIN_SETUPS + [s for s in _SCAN.get("setups", [])
                                        if s not in CATHODE_MAIN_SETUPS]


_FLOW = config["flow"]
_FLOW_FIT = {k: v for k, v in _FLOW.items() if k not in ("count", "template")}
_WINDOW = config["preselect"]["myy_range"]
HIGGS_SAMPLES = [s for s in BACKGROUNDS if 1 <= PROCESSES[s]["group"] <= 4]
_strength = globals().get("strength_label") or (lambda s: f"{float(s):g}")
_STRENGTHS = [_strength(s) for s in _CPD["strengths"]]
_INSTANCES = [str(i) for i in range(_CPD["instances"])]
_FLOWS = [str(i) for i in range(_FLOW["count"])]

_DS = "{setup}/{seed}/{signal}/{strength}/{instance}"
CATHODE_FLOWS = [f"results/cathode/flows/{_DS}/{i}.pt" for i in _FLOWS]
CATHODE_TEMPLATE = f"results/cathode/templates/{_DS}.parquet"
CATHODE_SCORES = f"results/cathode/scores/{_DS}.parquet"
CATHODE_REFERENCE = f"results/cathode/reference/{_DS}.parquet"
CATHODE_EVAL = "results/cathode/evaluation/{setup}/{signal}/{name}.parquet"
EVALUATION_SET = "results/evaluation/set.parquet"
_EVAL_NAMES = ["sensitivity", "sculpting_auc", "sculpting_roc", "sculpting_mass"]
_PLOTS = "results/plots/cathode"


rule evaluation_set:
    conda:
        "../envs/salad.yaml"
    input:
        _sim_pairs(truth_background_samples() + _CPD["signals"] + _replaced_samples()),
    output:
        parquet=EVALUATION_SET,
        summary="results/evaluation/set.json",
    params:
        cfg=lambda w: _common_cfg(evaluation_set={"samples": EVAL_ONLY_SAMPLES}),
        background=_triples("--background", truth_background_samples()),
        signal=_triples("--signal", _CPD["signals"]),
        replaced=_triples("--replaced", _replaced_samples()),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "results/logs/evaluation_set.log",
    benchmark:
        "results/benchmarks/evaluation_set.tsv"
    shell:
        "python -m salad evaluation-set {params.background} {params.signal} {params.replaced}"
        " --output {output.parquet:q} --summary {output.summary:q} --config {params.cfg}"
        " > {log:q} 2>&1"


rule cathode:
    conda:
        "../envs/salad.yaml"
    input:
        embeddings="results/embeddings/{setup}/{seed}.parquet",
        data="results/pseudodata/{signal}/{strength}/{instance}.parquet",
        higgs=_sim_pairs(HIGGS_SAMPLES),
        evaluation=EVALUATION_SET,
    output:
        flows=CATHODE_FLOWS,
        template=CATHODE_TEMPLATE,
        scores=CATHODE_SCORES,
    params:
        cfg=lambda w: _common_cfg(flow=_FLOW_FIT, template=_FLOW["template"],
                                  classifier=config["classifier"],
                                  luminosity=_CPD["luminosity_ifb"]),
        higgs=_pair_args("--higgs", HIGGS_SAMPLES),
        key=lambda w: _seed_key(w),
    threads: threads_for("flow")
    resources:
        mem_mb=3000,
        runtime=lambda w: 20 + 20 * len(_FLOWS),
    log:
        f"results/logs/cathode/{_DS}.log",
    benchmark:
        f"results/benchmarks/cathode/{_DS}.tsv"
    shell:
        "python -m salad cathode --embeddings {input.embeddings:q} --data {input.data:q}"
        " {params.higgs} --evaluation-set {input.evaluation:q} --flows {output.flows:q}"
        " --template {output.template:q} --scores {output.scores:q} --seed-key {params.key}"
        " --threads {threads} --config {params.cfg} > {log:q} 2>&1"


rule classify_reference:
    conda:
        "../envs/salad.yaml"
    input:
        embeddings="results/embeddings/{setup}/{seed}.parquet",
        data="results/pseudodata/{signal}/{strength}/{instance}.parquet",
        simulation=lambda w: _sim_pairs(truth_background_samples() + [w.signal]),
        evaluation=EVALUATION_SET,
    output:
        CATHODE_REFERENCE,
    params:
        cfg=lambda w: _common_cfg(classifier=config["classifier"]),
        background=_pair_args("--background", truth_background_samples()),
        signal=lambda w: _pair_args("--signal", [w.signal]),
        key=lambda w: _seed_key(w),
    threads: threads_for("classify")
    resources:
        mem_mb=2000,
        runtime=30,
    log:
        f"results/logs/classify_reference/{_DS}.log",
    benchmark:
        f"results/benchmarks/classify_reference/{_DS}.tsv"
    shell:
        "python -m salad classify reference --embeddings {input.embeddings:q} --data {input.data:q}"
        " {params.background} {params.signal} --evaluation-set {input.evaluation:q}"
        " --output {output:q} --seed-key {params.key} --threads {threads}"
        " --config {params.cfg} > {log:q} 2>&1"


rule evaluate:
    conda:
        "../envs/salad.yaml"
    input:
        data=_pseudo,
        scores=lambda w: _datasets(CATHODE_SCORES, w),
        references=lambda w: _datasets(CATHODE_REFERENCE, w, injected_only=True),
        evaluation=EVALUATION_SET,
    output:
        **{n: CATHODE_EVAL.replace("{name}", n) for n in _EVAL_NAMES},
    params:
        cfg=lambda w: _common_cfg(evaluate=config["evaluate"]),
        outdir=lambda w: f"results/cathode/evaluation/{w.setup}/{w.signal}",
        held_out=lambda w: str(held_out(ENCODER_SETUPS.get(w.setup), w.signal)).lower(),
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    log:
        "results/logs/evaluate/{setup}/{signal}.log",
    benchmark:
        "results/benchmarks/evaluate/{setup}/{signal}.tsv"
    shell:
        "python -m salad evaluate sensitivity --setup {wildcards.setup} --signal {wildcards.signal}"
        " --data {input.data:q} --scores {input.scores:q} --references {input.references:q}"
        " --evaluation-set {input.evaluation:q} --held-out {params.held_out}"
        " --output-dir {params.outdir:q} --config {params.cfg} > {log:q} 2>&1"


CATHODE_TABLES = [f"results/tables/cathode_{t}.{ext}"
                  for t in ("sensitivity", "required_injection", "sculpting")
                  for ext in ("parquet", "md")] + ["results/tables/cathode_sensitivity_instances.parquet"]


rule cathode_tables:
    conda:
        "../envs/salad.yaml"
    input:
        sensitivity=_evals("sensitivity"),
        auc=_evals("sculpting_auc"),
        mass=_evals("sculpting_mass"),
    output:
        CATHODE_TABLES,
    params:
        cfg=lambda w: _common_cfg(evaluate=config["evaluate"],
                                  min_background_passing=EVAL_SET_CFG["min_background_passing"]),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "results/logs/cathode_tables.log",
    benchmark:
        "results/benchmarks/cathode_tables.tsv"
    shell:
        "python -m salad evaluate tables --sensitivity {input.sensitivity:q}"
        " --sculpting-auc {input.auc:q} --sculpting-mass {input.mass:q}"
        " --output-dir results/tables --config {params.cfg} > {log:q} 2>&1"


# ------------------------------------------------------------------------ plots
# Latent projections and t-SNE use the first encoder seed, the first injected signal at its
# largest strength, instance 0 and flow 0.
rule cathode_plot_latent:
    conda:
        "../envs/salad.yaml"
    input:
        embeddings=lambda w: "results/embeddings/{setup}/{seed}.parquet".format(**_show(w)),
        data=lambda w: "results/pseudodata/{signal}/{strength}/{instance}.parquet".format(**_show(w)),
        template=lambda w: CATHODE_TEMPLATE.format(**_show(w)),
    output:
        png=report(f"{_PLOTS}/latent_{{setup}}.png", caption="../workflow/report/cathode_latent.rst",
                   category=REPORT_LATENT, subcategory="CATHODE latent projections", labels={"setup": "{setup}"}),
        pdf=f"{_PLOTS}/latent_{{setup}}.pdf",
    params:
        cfg=lambda w: _common_cfg(),
        lumi=_CPD["luminosity_ifb"],
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    log:
        "results/logs/cathode_plots/latent_{setup}.log",
    benchmark:
        "results/benchmarks/cathode_plots/latent_{setup}.tsv"
    shell:
        "python -m salad evaluate plot latent --data {input.data:q} --embeddings {input.embeddings:q}"
        " --template {input.template:q} --title 'SR latent projections, setup {wildcards.setup}'"
        " --output {output.png:q} --lumi {params.lumi} --config {params.cfg} > {log:q} 2>&1"


rule cathode_plot_tsne:
    conda:
        "../envs/salad.yaml"
    input:
        embeddings=lambda w: "results/embeddings/{setup}/{seed}.parquet".format(**_show(w)),
        data=lambda w: "results/pseudodata/{signal}/{strength}/{instance}.parquet".format(**_show(w)),
    output:
        png=report(f"{_PLOTS}/tsne_{{setup}}.png", caption="../workflow/report/cathode_tsne.rst",
                   category=REPORT_LATENT, subcategory="t-SNE by process", labels={"setup": "{setup}"}),
        pdf=f"{_PLOTS}/tsne_{{setup}}.pdf",
    params:
        cfg=lambda w: _common_cfg(evaluate=config["evaluate"]),
        lumi=_CPD["luminosity_ifb"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    log:
        "results/logs/cathode_plots/tsne_{setup}.log",
    benchmark:
        "results/benchmarks/cathode_plots/tsne_{setup}.tsv"
    shell:
        "python -m salad evaluate plot tsne --data {input.data:q} --embeddings {input.embeddings:q}"
        " --title 't-SNE of the SR latent space, setup {wildcards.setup}'"
        " --output {output.png:q} --lumi {params.lumi} --config {params.cfg} > {log:q} 2>&1"


rule cathode_plot_sculpting:
    conda:
        "../envs/salad.yaml"
    input:
        roc=lambda w: _evals("sculpting_roc", [w.setup]),
        mass=lambda w: _evals("sculpting_mass", [w.setup]),
    output:
        png=report(f"{_PLOTS}/sculpting_{{setup}}.png", caption="../workflow/report/cathode_sculpting.rst",
                   category=REPORT_SCULPTING, subcategory="ROC and mγγ", labels={"setup": "{setup}"}),
        pdf=f"{_PLOTS}/sculpting_{{setup}}.pdf",
    params:
        cfg=lambda w: _common_cfg(),
        lumi=_CPD["luminosity_ifb"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "results/logs/cathode_plots/sculpting_{setup}.log",
    benchmark:
        "results/benchmarks/cathode_plots/sculpting_{setup}.tsv"
    shell:
        "python -m salad evaluate plot sculpting --roc {input.roc:q} --mass {input.mass:q}"
        " --title 'Sculpting check (no injection), setup {wildcards.setup}'"
        " --output {output.png:q} --lumi {params.lumi} --config {params.cfg} > {log:q} 2>&1"


rule cathode_plot_sic:
    conda:
        "../envs/salad.yaml"
    input:
        "results/tables/cathode_sensitivity.parquet",
    output:
        png=report(f"{_PLOTS}/sic_{{signal}}.png", caption="../workflow/report/cathode_sic.rst",
                   category=REPORT_SENSITIVITY, subcategory="SIC vs injection", labels={"signal": "{signal}"}),
        pdf=f"{_PLOTS}/sic_{{signal}}.pdf",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "results/logs/cathode_plots/sic_{signal}.log",
    benchmark:
        "results/benchmarks/cathode_plots/sic_{signal}.tsv"
    params:
        setups=" ".join(map(shlex.quote, CATHODE_MAIN_SETUPS)),   # the scan setups have their own figure
        lumi=_CPD["luminosity_ifb"],
    shell:
        "python -m salad evaluate plot sic --table {input:q} --signal {wildcards.signal}"
        " --setups {params.setups} --lumi {params.lumi} --output {output.png:q} > {log:q} 2>&1"


rule cathode_plot_required:
    conda:
        "../envs/salad.yaml"
    input:
        "results/tables/cathode_required_injection.parquet",
    output:
        png=report(f"{_PLOTS}/required_injection.png", caption="../workflow/report/cathode_required.rst",
                   category=REPORT_SENSITIVITY, subcategory="required injection", labels={"signal": "all"}),
        pdf=f"{_PLOTS}/required_injection.pdf",
    params:
        lumi=_CPD["luminosity_ifb"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "results/logs/cathode_plots/required_injection.log",
    benchmark:
        "results/benchmarks/cathode_plots/required_injection.tsv"
    shell:
        "python -m salad evaluate plot required --table {input:q} --lumi {params.lumi}"
        " --output {output.png:q} > {log:q} 2>&1"


register_targets("cathode", cathode_targets)
