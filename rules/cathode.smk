"""CATHODE on the latent space: fit_flow -> sample_sr -> classify -> evaluate (+ tables, plots).

Dataset wildcards {signal}/{strength}/{instance} name a pseudo-data set; {setup}/{seed} an
encoder; {flow} the index of a flow fitted to that (encoder, dataset) (config flow.count).
At paper scale, the slurm profile shows how to bundle fit_flow -> sample_sr -> classify chains
into group jobs (commented out there: a group asks for the summed CPUs of its chains).
"""

_ENC = config.get("encoder") or {}
_CATHODE = config.get("cathode") or {}
_SCAN = _CATHODE.get("scan") or {}
# Representations CATHODE runs on: config cathode.setups (encoder setups or baseline_*), else
# every encoder setup; plus cathode.scan.setups on a reduced list of pseudo-data sets.
CATHODE_MAIN_SETUPS = list(_CATHODE.get("setups") or _ENC.get("setups") or {})
CATHODE_SETUPS = CATHODE_MAIN_SETUPS + [s for s in _SCAN.get("setups", [])
                                        if s not in CATHODE_MAIN_SETUPS]


_FLOW = config["flow"]
_FLOW_FIT = {k: v for k, v in _FLOW.items() if k not in ("count", "template")}
_CPD = config["pseudodata"]
_WINDOW = config["preselect"]["myy_range"]
HIGGS_SAMPLES = [s for s in BACKGROUNDS if 1 <= PROCESSES[s]["group"] <= 4]
_strength = globals().get("strength_label") or (lambda s: f"{float(s):g}")
_STRENGTHS = [_strength(s) for s in _CPD["strengths"]]
_INSTANCES = [str(i) for i in range(_CPD["instances"])]
_FLOWS = [str(i) for i in range(_FLOW["count"])]

_DS = "{setup}/{seed}/{signal}/{strength}/{instance}"
CATHODE_FLOW = f"results/cathode/flows/{_DS}/{{flow}}.pt"
CATHODE_TEMPLATE = f"results/cathode/templates/{_DS}/{{flow}}.parquet"
CATHODE_SCORES = f"results/cathode/scores/{_DS}/{{flow}}.parquet"
CATHODE_REFERENCE = f"results/cathode/reference/{_DS}.parquet"
CATHODE_EVAL = "results/cathode/evaluation/{setup}/{signal}/{name}.parquet"
_EVAL_NAMES = ["sensitivity", "sculpting_auc", "sculpting_roc", "sculpting_mass"]
_PLOTS = "results/plots/cathode"


rule fit_flow:
    conda:
        "../envs/salad.yaml"
    input:
        embeddings="results/embeddings/{setup}/{seed}.parquet",
        data="results/pseudodata/{signal}/{strength}/{instance}.parquet",
    output:
        CATHODE_FLOW,
    wildcard_constraints:
        flow=r"\d+",
    params:
        cfg=lambda w: _common_cfg(flow=_FLOW_FIT),
        key=lambda w: _seed_key(w),
    threads: threads_for("flow")
    resources:
        mem_mb=2000,
        runtime=60,
    log:
        f"results/logs/fit_flow/{_DS}/{{flow}}.log",
    benchmark:
        f"results/benchmarks/fit_flow/{_DS}/{{flow}}.tsv"
    shell:
        "python -m salad fit-flow --embeddings {input.embeddings:q} --data {input.data:q}"
        " --output {output:q} --seed-key {params.key} --threads {threads}"
        " --config {params.cfg} > {log:q} 2>&1"


rule sample_sr:
    conda:
        "../envs/salad.yaml"
    input:
        flow=CATHODE_FLOW,
        embeddings="results/embeddings/{setup}/{seed}.parquet",
        data="results/pseudodata/{signal}/{strength}/{instance}.parquet",
        higgs=_sim_pairs(HIGGS_SAMPLES),
    output:
        CATHODE_TEMPLATE,
    wildcard_constraints:
        flow=r"\d+",
    params:
        cfg=lambda w: _common_cfg(template=_FLOW["template"], seed=_FLOW["seed"],
                                  luminosity=_CPD["luminosity_ifb"]),
        higgs=_pair_args("--higgs", HIGGS_SAMPLES),
        key=lambda w: _seed_key(w),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    log:
        f"results/logs/sample_sr/{_DS}/{{flow}}.log",
    benchmark:
        f"results/benchmarks/sample_sr/{_DS}/{{flow}}.tsv"
    shell:
        "python -m salad sample-sr --flow {input.flow:q} --embeddings {input.embeddings:q}"
        " --data {input.data:q} {params.higgs} --output {output:q} --seed-key {params.key}"
        " --threads {threads} --config {params.cfg} > {log:q} 2>&1"


rule classify:
    conda:
        "../envs/salad.yaml"
    input:
        template=CATHODE_TEMPLATE,
        embeddings="results/embeddings/{setup}/{seed}.parquet",
        data="results/pseudodata/{signal}/{strength}/{instance}.parquet",
    output:
        CATHODE_SCORES,
    wildcard_constraints:
        flow=r"\d+",
    params:
        cfg=lambda w: _common_cfg(classifier=config["classifier"]),
        key=lambda w: _seed_key(w),
    threads: threads_for("classify")
    resources:
        mem_mb=2000,
        runtime=30,
    log:
        f"results/logs/classify/{_DS}/{{flow}}.log",
    benchmark:
        f"results/benchmarks/classify/{_DS}/{{flow}}.tsv"
    shell:
        "python -m salad classify cwola --template {input.template:q} --embeddings {input.embeddings:q}"
        " --data {input.data:q} --output {output:q} --seed-key {params.key}"
        " --threads {threads} --config {params.cfg} > {log:q} 2>&1"


rule classify_reference:
    conda:
        "../envs/salad.yaml"
    input:
        embeddings="results/embeddings/{setup}/{seed}.parquet",
        data="results/pseudodata/{signal}/{strength}/{instance}.parquet",
        simulation=lambda w: _sim_pairs(BACKGROUNDS + [w.signal]),
    output:
        CATHODE_REFERENCE,
    params:
        cfg=lambda w: _common_cfg(classifier=config["classifier"]),
        background=_pair_args("--background", BACKGROUNDS),
        signal=lambda w: _pair_args("--signal", [w.signal]),
        key=lambda w: _seed_key(w, flow=False),
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
        " {params.background} {params.signal} --output {output:q} --seed-key {params.key}"
        " --threads {threads} --config {params.cfg} > {log:q} 2>&1"


rule evaluate:
    conda:
        "../envs/salad.yaml"
    input:
        data=_pseudo,
        scores=lambda w: _datasets(CATHODE_SCORES, w),
        references=lambda w: _datasets(CATHODE_REFERENCE, w, flows=False),
    output:
        **{n: CATHODE_EVAL.replace("{name}", n) for n in _EVAL_NAMES},
    params:
        cfg=lambda w: _common_cfg(evaluate=config["evaluate"]),
        outdir=lambda w: f"results/cathode/evaluation/{w.setup}/{w.signal}",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    log:
        "results/logs/evaluate/{setup}/{signal}.log",
    benchmark:
        "results/benchmarks/evaluate/{setup}/{signal}.tsv"
    shell:
        "python -m salad evaluate sensitivity --setup {wildcards.setup} --signal {wildcards.signal}"
        " --data {input.data:q} --scores {input.scores:q} --references {input.references:q}"
        " --output-dir {params.outdir:q} --config {params.cfg} > {log:q} 2>&1"


CATHODE_TABLES = [f"results/tables/cathode_{t}.{ext}"
                  for t in ("sensitivity", "required_injection", "sculpting")
                  for ext in ("parquet", "md")]


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
        cfg=lambda w: _common_cfg(evaluate=config["evaluate"]),
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
        report(f"{_PLOTS}/latent_{{setup}}.png", caption="../workflow/report/cathode_latent.rst",
               category="CATHODE", subcategory="latent space", labels={"setup": "{setup}", "figure": "latent projections"}),
    params:
        cfg=lambda w: _common_cfg(),
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
        " --output {output:q} --config {params.cfg} > {log:q} 2>&1"


rule cathode_plot_tsne:
    conda:
        "../envs/salad.yaml"
    input:
        embeddings=lambda w: "results/embeddings/{setup}/{seed}.parquet".format(**_show(w)),
        data=lambda w: "results/pseudodata/{signal}/{strength}/{instance}.parquet".format(**_show(w)),
    output:
        report(f"{_PLOTS}/tsne_{{setup}}.png", caption="../workflow/report/cathode_tsne.rst",
               category="CATHODE", subcategory="latent space", labels={"setup": "{setup}", "figure": "t-SNE"}),
    params:
        cfg=lambda w: _common_cfg(evaluate=config["evaluate"]),
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
        " --output {output:q} --config {params.cfg} > {log:q} 2>&1"


rule cathode_plot_sculpting:
    conda:
        "../envs/salad.yaml"
    input:
        roc=lambda w: _evals("sculpting_roc", [w.setup]),
        mass=lambda w: _evals("sculpting_mass", [w.setup]),
    output:
        report(f"{_PLOTS}/sculpting_{{setup}}.png", caption="../workflow/report/cathode_sculpting.rst",
               category="CATHODE", subcategory="sculpting check", labels={"setup": "{setup}", "figure": "sculpting"}),
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
        " --output {output:q} > {log:q} 2>&1"


rule cathode_plot_sic:
    conda:
        "../envs/salad.yaml"
    input:
        "results/tables/cathode_sensitivity.parquet",
    output:
        report(f"{_PLOTS}/sic_{{signal}}.png", caption="../workflow/report/cathode_sic.rst",
               category="CATHODE", subcategory="sensitivity", labels={"signal": "{signal}", "figure": "SIC"}),
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
    shell:
        "python -m salad evaluate plot sic --table {input:q} --signal {wildcards.signal}"
        " --setups {params.setups} --output {output:q} > {log:q} 2>&1"


rule cathode_plot_required:
    conda:
        "../envs/salad.yaml"
    input:
        "results/tables/cathode_required_injection.parquet",
    output:
        report(f"{_PLOTS}/required_injection.png", caption="../workflow/report/cathode_required.rst",
               category="CATHODE", subcategory="sensitivity", labels={"figure": "required injection"}),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "results/logs/cathode_plots/required_injection.log",
    benchmark:
        "results/benchmarks/cathode_plots/required_injection.tsv"
    shell:
        "python -m salad evaluate plot required --table {input:q} --output {output:q} > {log:q} 2>&1"


register_targets("cathode", cathode_targets)
