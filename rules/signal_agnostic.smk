"""Signal-agnostic side (paper B; paper A appendix A).

embed_baseline  baseline_{source,leading,ref22,vae}/{seed} -> results/embeddings/ (same contract as
                encoder latents, so CATHODE, NPLM and linear evaluation read them alike)
nplm_fit        {setup}/{seed} x batch of nplm.datasets_per_job pseudo-data sets -> observed t
                and per-event scores f(x)
nplm_toys       {setup}/{seed} x toy batch -> background-only t values (seeded by batch index)
nplm_summary    {setup}/{seed} -> p-values, Z, power, chi2 comparison (table, plot) and the
                2-D map (UMAP / t-SNE) of one data set coloured by f(x)
nplm_table      all representations -> results/tables/nplm.{parquet,md}
linear_eval(_table), information, dimension_scan
A representation ({setup}) is an encoder setup of config `encoder.setups` or baseline_<name>;
every NPLM and linear-evaluation table row says whether it was trained on signal samples
(`trained_on_signals`: an encoder setup with `signals: true` and a BSM group among its
training samples; baselines never are).
"""


ruleorder: embed_baseline > embed


rule embed_baseline:
    input:
        # + evaluation-only samples (subsets ref/eval: never in standardisation or VAE training)
        # when CATHODE runs on this baseline and scores the evaluation set
        preselected=lambda w: [f"results/preselected/{s}.parquet" for s in _baseline_samples(w)],
        split=lambda w: [f"results/split/{s}.parquet" for s in _baseline_samples(w)],
    output:
        "results/embeddings/baseline_{name}/{seed}.parquet",
    log:
        "results/logs/embed_baseline/{name}/{seed}.log",
    benchmark:
        "results/benchmarks/embed_baseline/{name}/{seed}.tsv"
    wildcard_constraints:
        name="|".join(BASELINE_NAMES),
    conda:
        "../envs/salad.yaml"
    threads: lambda w: threads_for("train") if w.name == "vae" else 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        cfg=lambda w: cfg_arg(baselines=_baseline_cfg(w.name)),
    shell:
        "python -m salad embed-baseline --name {wildcards.name} --seed {wildcards.seed}"
        " --preselected {input.preselected:q} --split {input.split:q} --output {output:q}"
        " --threads {threads} --config {params.cfg} > {log:q} 2>&1"


rule nplm_fit:
    input:
        embedding="results/embeddings/{setup}/{seed}.parquet",
        preselected=BACKGROUND_PRESELECTED_FILES,
        split=BACKGROUND_SPLIT_FILES,
        data=lambda w: [
            f"results/pseudodata/{sig}/{s}/{i}.parquet" for sig, s, i in _nplm_fit_batches()[int(w.batch)]
        ],
    output:
        directory(NPLM_FIT_BATCH),
    log:
        "results/logs/nplm_fit/{setup}/{seed}/{batch}.log",
    benchmark:
        "results/benchmarks/nplm_fit/{setup}/{seed}/{batch}.tsv"
    wildcard_constraints:
        batch=r"\d+",
    conda:
        "../envs/salad.yaml"
    threads: threads_for("nplm")
    resources:
        mem_mb=4000,
        runtime=lambda w: 10 + 5 * len(_nplm_fit_batches()[int(w.batch)]),
    params:
        cfg=lambda w: _nplm_cfg(NPLM_FIT_CFG, w.setup),
    shell:
        "python -m salad nplm fit --embedding {input.embedding:q} --preselected {input.preselected:q}"
        " --split {input.split:q} --data {input.data:q} --output-dir {output:q} --threads {threads}"
        " --representation {wildcards.setup}"
        " --config {params.cfg} > {log:q} 2>&1"


rule nplm_toys:
    input:
        embedding="results/embeddings/{setup}/{seed}.parquet",
        preselected=BACKGROUND_PRESELECTED_FILES,
        split=BACKGROUND_SPLIT_FILES,
    output:
        f"{NPLM_DIR}/toys/{{batch}}.parquet",
    log:
        "results/logs/nplm_toys/{setup}/{seed}/{batch}.log",
    benchmark:
        "results/benchmarks/nplm_toys/{setup}/{seed}/{batch}.tsv"
    wildcard_constraints:
        batch=r"\d+",
    conda:
        "../envs/salad.yaml"
    threads: threads_for("nplm")
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        cfg=lambda w: _nplm_cfg(NPLM_TOY_CFG, w.setup),
    shell:
        "python -m salad nplm toys --embedding {input.embedding:q} --preselected {input.preselected:q}"
        " --split {input.split:q} --batch {wildcards.batch} --output {output:q}"
        " --representation {wildcards.setup}"
        " --threads {threads} --config {params.cfg} > {log:q} 2>&1"


rule nplm_summary:
    input:
        fits=[NPLM_FIT_BATCH.replace("{batch}", str(b)) for b in range(len(_nplm_fit_batches()))],
        toys=[f"{NPLM_DIR}/toys/{b}.parquet" for b in _nplm_batches()],
    output:
        table=f"{NPLM_TABLE}.parquet",
        power=f"{NPLM_TABLE}_power.parquet",
        null=f"{NPLM_TABLE}_null.parquet",
        markdown=f"{NPLM_TABLE}.md",
        plot=report(
            "results/plots/nplm/null_{setup}_{seed}.png",
            caption="../workflow/report/nplm_null.rst",
            category=REPORT_NPLM,
            subcategory="null distribution and observed Z",
            labels={"representation": "{setup}", "seed": "{seed}"},
        ),
        pdf="results/plots/nplm/null_{setup}_{seed}.pdf",
        map=report(
            "results/plots/nplm/tsne_{setup}_{seed}.png",
            caption="../workflow/report/nplm_tsne.rst",
            category=REPORT_NPLM,
            subcategory="2-D map by NPLM score",
            labels={"representation": "{setup}", "seed": "{seed}"},
        ),
        map_pdf="results/plots/nplm/tsne_{setup}_{seed}.pdf",
    log:
        "results/logs/nplm_summary/{setup}/{seed}.log",
    benchmark:
        "results/benchmarks/nplm_summary/{setup}/{seed}.tsv"
    conda:
        "../envs/salad.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        cfg=lambda w: cfg_arg(nplm={"z_threshold": NPLM.get("z_threshold")}),
        map_cfg=lambda w: cfg_arg(nplm={"seed": NPLM.get("seed"), "tsne": NPLM.get("tsne", {})}),
        fits=lambda w: _quoted(_nplm_fit_files(w, "fit")),
        map_scores=lambda w: _nplm_map_scores(w),
        title=lambda w: "{setup} (seed {seed}): {signal} at S/sqrt(B) = {strength}, instance {instance}".format(
            **_tsne_show(w)
        ),
        lumi=PSEUDODATA["luminosity_ifb"],
        aware=lambda w: _signal_flag(w.setup),
    shell:
        "(python -m salad nplm summary --fits {params.fits} --toys {input.toys:q}"
        " --name {wildcards.setup} --seed {wildcards.seed} --table {output.table:q} --power {output.power:q}"
        " --null {output.null:q} --markdown {output.markdown:q} --plot {output.plot:q}"
        " --lumi {params.lumi}{params.aware} --config {params.cfg}"
        " && python -m salad nplm tsne --embedding results/embeddings/{wildcards.setup}/{wildcards.seed}.parquet"
        " --scores {params.map_scores:q} --output {output.map:q} --title {params.title:q} --lumi {params.lumi}"
        " --config {params.map_cfg}) > {log:q} 2>&1"


rule nplm_table:
    input:
        power=[f"results/tables/nplm/{r}/{s}_power.parquet" for r, s in _nplm_reps()],
        null=[f"results/tables/nplm/{r}/{s}_null.parquet" for r, s in _nplm_reps()],
    output:
        table="results/tables/nplm.parquet",
        markdown="results/tables/nplm.md",
    log:
        "results/logs/nplm_table.log",
    benchmark:
        "results/benchmarks/nplm_table.tsv"
    conda:
        "../envs/salad.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m salad nplm collect --power {input.power:q} --null {input.null:q}"
        " --output {output.table:q} --markdown {output.markdown:q} > {log:q} 2>&1"


rule linear_eval:
    input:
        embedding="results/embeddings/{setup}/{seed}.parquet",
        preselected=BACKGROUND_PRESELECTED_FILES,
        split=BACKGROUND_SPLIT_FILES,
    output:
        "results/tables/linear_eval/{setup}/{seed}.parquet",
    log:
        "results/logs/linear_eval/{setup}/{seed}.log",
    benchmark:
        "results/benchmarks/linear_eval/{setup}/{seed}.tsv"
    conda:
        "../envs/salad.yaml"
    threads: threads_for("train")
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        cfg=lambda w: cfg_arg(linear_eval={k: v for k, v in LINEAR_EVAL.items() if k != "representations"}),
        aware=lambda w: _signal_flag(w.setup),
    shell:
        "python -m salad linear-eval --embedding {input.embedding:q} --preselected {input.preselected:q}"
        " --split {input.split:q} --name {wildcards.setup} --seed {wildcards.seed}"
        " --output {output:q} --threads {threads}{params.aware} --config {params.cfg} > {log:q} 2>&1"


rule linear_eval_table:
    input:
        [
            f"results/tables/linear_eval/{r}/{s}.parquet"
            for r in LINEAR_EVAL.get("representations", [])
            for s in representation_seeds(r)
        ],
    output:
        table="results/tables/linear_eval.parquet",
        markdown="results/tables/linear_eval.md",
    log:
        "results/logs/linear_eval_table.log",
    benchmark:
        "results/benchmarks/linear_eval_table.tsv"
    conda:
        "../envs/salad.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        cfg=lambda w: cfg_arg(linear_eval={}),
    shell:
        "python -m salad linear-eval --collect {input:q} --output {output.table:q}"
        " --markdown {output.markdown:q} --config {params.cfg} > {log:q} 2>&1"


rule information:
    input:
        embedding=lambda w: _info_embedding(),
        preselected=PRESELECTED_FILES,
        split=SPLIT_FILES,
    output:
        confusion="results/tables/information_confusion.parquet",
        summary="results/tables/information_summary.parquet",
        markdown="results/tables/information.md",
        plot=report(
            "results/plots/information_confusion.png",
            caption="../workflow/report/information.rst",
            category=REPORT_LATENT,
            subcategory="information check",
            labels={"setup": str(INFORMATION.get("setup", ""))},
        ),
        plot_pdf="results/plots/information_confusion.pdf",
    log:
        "results/logs/information.log",
    benchmark:
        "results/benchmarks/information.tsv"
    conda:
        "../envs/salad.yaml"
    threads: threads_for("train")
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        cfg=lambda w: cfg_arg("information", encoder={"defaults": ENCODER.get("defaults", {})}),
    shell:
        "python -m salad information --embedding {input.embedding:q} --preselected {input.preselected:q}"
        " --split {input.split:q} --confusion {output.confusion:q} --summary {output.summary:q}"
        " --markdown {output.markdown:q} --plot {output.plot:q} --threads {threads}"
        " --config {params.cfg} > {log:q} 2>&1"


rule dimension_scan:
    input:
        sic=_scan_inputs("sic"),
        nplm=_scan_inputs("nplm"),
        linear=_scan_inputs("linear"),
    output:
        table="results/tables/dimension_scan.parquet",
        markdown="results/tables/dimension_scan.md",
        plot=report(
            "results/plots/dimension_scan.png",
            caption="../workflow/report/dimension_scan.rst",
            category=REPORT_LATENT,
            subcategory="latent-dimension scan",
            labels={"setup": "scan"},
        ),
        plot_pdf="results/plots/dimension_scan.pdf",
    log:
        "results/logs/dimension_scan.log",
    benchmark:
        "results/benchmarks/dimension_scan.tsv"
    conda:
        "../envs/salad.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        cfg=lambda w: cfg_arg("dimension_scan"),
        sic=lambda w, input: _scan_arg("--sic", input.sic),
        nplm=lambda w, input: _scan_arg("--nplm", input.nplm),
        linear=lambda w, input: _scan_arg("--linear", input.linear),
        aware=lambda w: _scan_arg("--trained-on-signals", [s for s in SCAN_ALL_SETUPS if _signal_flag(s)]),
    shell:
        "python -m salad dimension-scan{params.sic}{params.nplm}{params.linear}{params.aware}"
        " --table {output.table:q}"
        " --markdown {output.markdown:q} --plot {output.plot:q} --config {params.cfg} > {log:q} 2>&1"


register_targets("signal_agnostic", signal_agnostic_targets)
