"""preselect -> split -> pseudodata (salad.preselect, salad.split, salad.pseudodata)."""

_PSEUDO = config["pseudodata"]
_unknown_signals = [s for s in _PSEUDO["signals"] if s not in SIGNALS]
if _unknown_signals:
    raise ValueError(
        f"config key pseudodata.signals: {_unknown_signals} not among the BSM samples (group < 0) "
        f"of config key samples: {SIGNALS}"
    )


rule preselect:
    conda:
        "../envs/salad.yaml"
    input:
        root=delphes_files,
    output:
        parquet="results/preselected/{sample}.parquet",
        cutflow="results/preselected/{sample}.cutflow.json",
    params:
        cfg=lambda w: cfg_arg("preselect"),
        spec=process_spec_arg,
    threads: threads_for("preselect")
    resources:
        mem_mb=lambda w: 1000 + config["preselect"]["chunk_size"] // 10,
        runtime=60,
    log:
        "results/logs/preselect/{sample}.log",
    benchmark:
        "results/benchmarks/preselect/{sample}.tsv"
    shell:
        "python -m salad preselect --sample {wildcards.sample} --input {input.root:q}"
        " --spec {params.spec} --output {output.parquet:q}"
        " --cutflow {output.cutflow:q} --config {params.cfg} > {log:q} 2>&1"


rule split:
    conda:
        "../envs/salad.yaml"
    input:
        "results/preselected/{sample}.parquet",
    output:
        "results/split/{sample}.parquet",
    params:
        cfg=lambda w: cfg_arg("split", evaluation=evaluation_share(w.sample)),
        code=lambda w: PROCESSES[w.sample]["code"],
        only=lambda w: "--evaluation-only" if w.sample in EVAL_ONLY_SAMPLES else "",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "results/logs/split/{sample}.log",
    benchmark:
        "results/benchmarks/split/{sample}.tsv"
    shell:
        "python -m salad split --input {input:q} --code {params.code:q} --output {output:q}"
        " {params.only} --config {params.cfg} > {log:q} 2>&1"


rule pseudodata:
    conda:
        "../envs/salad.yaml"
    input:
        background=[p for s in BACKGROUNDS for p in _pair(s)],
        signal=lambda w: _pair(w.signal),
    output:
        parquet="results/pseudodata/{signal}/{strength}/{instance}.parquet",
        summary="results/pseudodata/{signal}/{strength}/{instance}.json",
    params:
        # only the keys the draw reads: adding a signal or strength re-runs nothing else
        cfg=lambda w: cfg_arg(
            "regions", pseudodata={k: _PSEUDO[k] for k in ("luminosity_ifb", "seed")}
        ),
        background=" ".join(shlex.quote(":".join(_pair(s))) for s in BACKGROUNDS),
        signal=lambda w: shlex.quote(":".join(_pair(w.signal))),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "results/logs/pseudodata/{signal}/{strength}/{instance}.log",
    benchmark:
        "results/benchmarks/pseudodata/{signal}/{strength}/{instance}.tsv"
    shell:
        "python -m salad pseudodata --background {params.background} --signal {params.signal}"
        " --strength {wildcards.strength} --instance {wildcards.instance}"
        " --output {output.parquet:q} --summary {output.summary:q}"
        " --config {params.cfg} > {log:q} 2>&1"


register_targets("split", lambda: [f"results/split/{s}.parquet" for s in ALL_SAMPLES])
register_targets("pseudodata", lambda: pseudodata_paths(".parquet") + pseudodata_paths(".json"))
