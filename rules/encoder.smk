"""Contrastive encoders: train_encoder {setup}/{seed} -> embed {setup}/{seed}.

Each job gets only its own setup's resolved settings (salad.encoder.setups.resolve_setup),
so editing setup IP re-trains IP only, and adding a seed re-trains nothing.
"""


rule train_encoder:
    input:
        preselected=lambda w: [f"results/preselected/{s}.parquet" for s in _train_samples(w)],
        split=lambda w: [f"results/split/{s}.parquet" for s in _train_samples(w)],
    output:
        model=f"{ENCODER_DIR}/model.pt",
        history=f"{ENCODER_DIR}/history.parquet",
        plot=report(
            f"{ENCODER_DIR}/loss.png",
            caption="../workflow/report/loss.rst",
            category=REPORT_DIAGNOSTICS,
            subcategory="encoder loss curves",
            labels={"setup": "{setup}", "seed": "{seed}"},
        ),
        plot_pdf=f"{ENCODER_DIR}/loss.pdf",
    log:
        "results/logs/train_encoder/{setup}/{seed}.log",
    benchmark:
        "results/benchmarks/train_encoder/{setup}/{seed}.tsv"
    wildcard_constraints:
        setup=ENCODER_SETUP_RE,
    conda:
        "../envs/salad.yaml"
    threads: threads_for("train")
    resources:
        **_gpu_resources(),
        mem_mb=ENCODER_RESOURCES["mem_mb"],
        runtime=ENCODER_RESOURCES["runtime_min"],
    params:
        cfg=lambda w: cfg_arg(encoder=ENCODER_SETUPS[w.setup]),
    shell:
        "python -m salad train-encoder --preselected {input.preselected:q} --split {input.split:q}"
        " --model {output.model:q} --history {output.history:q} --plot {output.plot:q}"
        " --seed {wildcards.seed} --threads {threads} --log {log:q} --config {params.cfg}"


rule embed:
    input:
        model=f"{ENCODER_DIR}/model.pt",
        preselected=expand("results/preselected/{sample}.parquet", sample=SAMPLES),
        # evaluation-only samples: signal-region events, for the setups CATHODE evaluates
        region_only=lambda w: (
            [f"results/preselected/{s}.parquet" for s in EVAL_ONLY_SAMPLES]
            if w.setup in CATHODE_SETUPS
            else []
        ),
    output:
        "results/embeddings/{setup}/{seed}.parquet",
    log:
        "results/logs/embed/{setup}/{seed}.log",
    benchmark:
        "results/benchmarks/embed/{setup}/{seed}.tsv"
    wildcard_constraints:
        setup=ENCODER_SETUP_RE,
    conda:
        "../envs/salad.yaml"
    threads: threads_for("embed")
    resources:
        **_gpu_resources(),
        mem_mb=ENCODER_RESOURCES["mem_mb"],
        runtime=30,
    params:
        cfg=cfg_arg("regions", embed=ENCODER.get("embed", {})),
    shell:
        "python -m salad embed --model {input.model:q} --preselected {input.preselected:q}"
        " --region-only {input.region_only:q} --output {output:q} --threads {threads} --config {params.cfg} > {log:q} 2>&1"


register_targets("encoder", encoder_targets)
