"""preselect -> split -> pseudodata (salad.preselect, salad.split, salad.pseudodata)."""


rule preselect:
    input:
        root=delphes_files,
    output:
        parquet="results/preselected/{sample}.parquet",
        cutflow="results/preselected/{sample}.cutflow.json",
    log:
        "results/logs/preselect/{sample}.log",
    benchmark:
        "results/benchmarks/preselect/{sample}.tsv"
    conda:
        "../envs/salad.yaml"
    threads: threads_for("preselect")
    resources:
        mem_mb=lambda w: 1000 + config["preselect"]["chunk_size"] // 10,
        runtime=60,
    params:
        cfg=lambda w: cfg_arg("preselect"),
        spec=process_spec_arg,
    shell:
        "python -m salad preselect --sample {wildcards.sample} --input {input.root:q}"
        " --spec {params.spec} --output {output.parquet:q}"
        " --cutflow {output.cutflow:q} --config {params.cfg} > {log:q} 2>&1"


rule split:
    input:
        "results/preselected/{sample}.parquet",
    output:
        "results/split/{sample}.parquet",
    log:
        "results/logs/split/{sample}.log",
    benchmark:
        "results/benchmarks/split/{sample}.tsv"
    conda:
        "../envs/salad.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        cfg=lambda w: cfg_arg("split", evaluation=evaluation_share(w.sample)),
        code=lambda w: PROCESSES[w.sample]["code"],
        only=lambda w: "--evaluation-only" if w.sample in EVAL_ONLY_SAMPLES else "",
    shell:
        "python -m salad split --input {input:q} --code {params.code:q} --output {output:q}"
        " {params.only} --config {params.cfg} > {log:q} 2>&1"


rule pseudodata:
    input:
        background=[p for s in BACKGROUNDS for p in _pair(s)],
        signal=lambda w: _pair(w.signal),
    output:
        # every instance of one (signal, strength); the draw reads only luminosity_ifb and seed,
        # so adding a signal or strength re-runs nothing else
        parquet=expand(
            "results/pseudodata/{{signal}}/{{strength}}/{instance}.parquet", instance=INSTANCE_LABELS
        ),
        summary=expand("results/pseudodata/{{signal}}/{{strength}}/{instance}.json", instance=INSTANCE_LABELS),
    log:
        "results/logs/pseudodata/{signal}/{strength}.log",
    benchmark:
        "results/benchmarks/pseudodata/{signal}/{strength}.tsv"
    conda:
        "../envs/salad.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=lambda w: 5 + 2 * len(INSTANCE_LABELS),
    params:
        command=_pseudodata_command,
    shell:
        "({params.command}) > {log:q} 2>&1"


register_targets("split", lambda: [f"results/split/{s}.parquet" for s in ALL_SAMPLES])
register_targets("pseudodata", lambda: pseudodata_paths(".parquet") + pseudodata_paths(".json"))
