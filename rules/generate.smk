# generate: Pythia 8 + parametric detector -> results/generated/{sample}.root (Delphes layout).
# Samples listed in config `delphes_inputs` are not generated (preselect reads the user's files).


rule generate:
    output:
        "results/generated/{sample}.root",
    log:
        "results/logs/generate/{sample}.log",
    benchmark:
        "results/benchmarks/generate/{sample}.tsv"
    # first: the largest sample (the 600k-event yy_sr, ~20 CPU-min) heads the critical path to
    # every CATHODE job; started late, it leaves the other core idle at the end
    priority: 50
    conda:
        "../envs/salad.yaml"
    threads: threads_for("generate")
    resources:
        mem_mb=2000,
        runtime=lambda w: 10
        + config["generate"].get("events_per_sample", {}).get(w.sample, config["generate"]["events"]) // 2000,
    params:
        cfg=lambda w: cfg_arg("generate"),
        spec=process_spec_arg,
    shell:
        "python -m salad generate --sample {wildcards.sample} --spec {params.spec}"
        " --output {output:q} --config {params.cfg} --threads {threads} > {log:q} 2>&1"


register_targets("generate", lambda: expand("results/generated/{sample}.root", sample=generated_samples()))
