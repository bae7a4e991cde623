# generate: Pythia 8 + parametric detector -> results/generated/{sample}.root (Delphes layout).
# Samples listed in config `delphes_inputs` are not generated (preselect reads the user's files).


def process_spec_arg(wildcards):
    """The process-table entry of one sample (so editing one process re-runs only its sample)."""
    return shlex.quote(json.dumps(PROCESSES[wildcards.sample], sort_keys=True, default=str))


def generated_samples():
    return [s for s in SAMPLES if s not in config.get("delphes_inputs", {})]


rule generate:
    output:
        "results/generated/{sample}.root",
    params:
        cfg=lambda w: cfg_arg("generate"),
        spec=process_spec_arg,
        processes=lambda w: repo_path(config["processes"]),
    threads: threads_for("generate")
    resources:
        mem_mb=2000,
        runtime=lambda w: 10 + config["generate"].get("events_per_sample", {}).get(
            w.sample, config["generate"]["events"]) // 2000,
    log:
        "results/logs/generate/{sample}.log",
    benchmark:
        "results/benchmarks/generate/{sample}.tsv"
    shell:
        "{PYTHON} generate --sample {wildcards.sample} --processes {params.processes}"
        " --output {output} --config {params.cfg} --threads {threads} > {log} 2>&1"


register_targets("generate", lambda: expand("results/generated/{sample}.root", sample=generated_samples()))
