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

import math
import shlex

BASELINE_NAMES = ["source", "leading", "ref22", "vae"]
_SA_BASE = config.get("baselines") or {"seeds": [1]}
_SA_NPLM = config.get("nplm") or {}
_SA_LIN = config.get("linear_eval") or {}
_SA_INFO = config.get("information") or {}
_SA_SCAN = config.get("dimension_scan") or {"setups": {}}
_SA_PSEUDO = config["pseudodata"]
_SA_label = globals().get("strength_label") or (lambda s: f"{float(s):g}")
_SA_PRE = [f"results/preselected/{s}.parquet" for s in SAMPLES]
_SA_SPLIT = [f"results/split/{s}.parquet" for s in SAMPLES]
_SA_BKG_PRE = [f"results/preselected/{s}.parquet" for s in BACKGROUNDS]
_SA_BKG_SPLIT = [f"results/split/{s}.parquet" for s in BACKGROUNDS]
_SA_ENC = config.get("encoder") or {"setups": {}}
_SA_ENC_SETUPS = list(_SA_ENC.get("setups") or {})


ruleorder: embed_baseline > embed


_check_representations("nplm.representations", _SA_NPLM.get("representations", []))
_check_representations("linear_eval.representations", _SA_LIN.get("representations", []))
if _SA_INFO:
    _check_representations("information.setup", [_SA_INFO["setup"]])
_SA_SCAN_SETUPS = {int(d): s for d, s in (_SA_SCAN.get("setups") or {}).items()}
_SA_SCAN_FAMILIES = {
    f: {int(d): s for d, s in m.items()} for f, m in (_SA_SCAN.get("families") or {}).items()
}
_SA_SCAN_FAMILY_SETUPS = list(dict.fromkeys(s for m in _SA_SCAN_FAMILIES.values() for s in m.values()))
_SA_SCAN_ALL = list(_SA_SCAN_SETUPS.values()) + _SA_SCAN_FAMILY_SETUPS
_SA_SCAN_ON = bool(_SA_SCAN_ALL) and all(s in _SA_ENC_SETUPS for s in _SA_SCAN_ALL)
if _SA_SCAN_ALL and _SA_ENC_SETUPS and not _SA_SCAN_ON:
    raise ValueError(
        "config key dimension_scan.setups/families: "
        f"{sorted(set(_SA_SCAN_ALL) - set(_SA_ENC_SETUPS))} not in encoder.setups"
    )


# NPLM settings that change a fit / a toy (the list of representations, plots and thresholds do not)
_NPLM_FIT = {
    k: v
    for k, v in _SA_NPLM.items()
    if k not in ("representations", "toys", "toys_per_batch", "z_threshold", "tsne", "kernel_widths")
}
_NPLM_TOY = {**_NPLM_FIT, "toys_per_batch": _SA_NPLM.get("toys_per_batch")}
_NPLM_WIDTHS = _SA_NPLM.get("kernel_widths") or {}
_check_representations("nplm.kernel_widths", list(_NPLM_WIDTHS))
_NPLM_LUMI = {"luminosity_ifb": _SA_PSEUDO["luminosity_ifb"]}
_NPLM_DIR = "results/nplm/{setup}/{seed}"
_NPLM_TABLES = "results/tables/nplm/{setup}/{seed}"
_NPLM_FIT_BATCH = f"{_NPLM_DIR}/fits/{{batch}}"
_SA_DATASETS = pseudodata_sets()


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
        preselected=_SA_BKG_PRE,
        split=_SA_BKG_SPLIT,
        data=lambda w: [
            f"results/pseudodata/{sig}/{s}/{i}.parquet" for sig, s, i in _nplm_fit_batches()[int(w.batch)]
        ],
    output:
        directory(_NPLM_FIT_BATCH),
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
        cfg=lambda w: _nplm_cfg(_NPLM_FIT, w.setup),
    shell:
        "python -m salad nplm fit --embedding {input.embedding:q} --preselected {input.preselected:q}"
        " --split {input.split:q} --data {input.data:q} --output-dir {output:q} --threads {threads}"
        " --representation {wildcards.setup}"
        " --config {params.cfg} > {log:q} 2>&1"


rule nplm_toys:
    input:
        embedding="results/embeddings/{setup}/{seed}.parquet",
        preselected=_SA_BKG_PRE,
        split=_SA_BKG_SPLIT,
    output:
        f"{_NPLM_DIR}/toys/{{batch}}.parquet",
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
        cfg=lambda w: _nplm_cfg(_NPLM_TOY, w.setup),
    shell:
        "python -m salad nplm toys --embedding {input.embedding:q} --preselected {input.preselected:q}"
        " --split {input.split:q} --batch {wildcards.batch} --output {output:q}"
        " --representation {wildcards.setup}"
        " --threads {threads} --config {params.cfg} > {log:q} 2>&1"


rule nplm_summary:
    input:
        fits=[_NPLM_FIT_BATCH.replace("{batch}", str(b)) for b in range(len(_nplm_fit_batches()))],
        toys=[f"{_NPLM_DIR}/toys/{b}.parquet" for b in _nplm_batches()],
    output:
        table=f"{_NPLM_TABLES}.parquet",
        power=f"{_NPLM_TABLES}_power.parquet",
        null=f"{_NPLM_TABLES}_null.parquet",
        markdown=f"{_NPLM_TABLES}.md",
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
        cfg=lambda w: cfg_arg(nplm={"z_threshold": _SA_NPLM.get("z_threshold")}),
        map_cfg=lambda w: cfg_arg(nplm={"seed": _SA_NPLM.get("seed"), "tsne": _SA_NPLM.get("tsne", {})}),
        fits=lambda w: _quoted(_nplm_fit_files(w, "fit")),
        map_scores=lambda w: _nplm_map_scores(w),
        title=lambda w: "{setup} (seed {seed}): {signal} at S/sqrt(B) = {strength}, instance {instance}".format(
            **_tsne_show(w)
        ),
        lumi=_SA_PSEUDO["luminosity_ifb"],
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
        preselected=_SA_BKG_PRE,
        split=_SA_BKG_SPLIT,
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
        cfg=lambda w: cfg_arg(linear_eval={k: v for k, v in _SA_LIN.items() if k != "representations"}),
        aware=lambda w: _signal_flag(w.setup),
    shell:
        "python -m salad linear-eval --embedding {input.embedding:q} --preselected {input.preselected:q}"
        " --split {input.split:q} --name {wildcards.setup} --seed {wildcards.seed}"
        " --output {output:q} --threads {threads}{params.aware} --config {params.cfg} > {log:q} 2>&1"


rule linear_eval_table:
    input:
        [
            f"results/tables/linear_eval/{r}/{s}.parquet"
            for r in _SA_LIN.get("representations", [])
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
        preselected=_SA_PRE,
        split=_SA_SPLIT,
    output:
        confusion="results/tables/information_confusion.parquet",
        summary="results/tables/information_summary.parquet",
        markdown="results/tables/information.md",
        plot=report(
            "results/plots/information_confusion.png",
            caption="../workflow/report/information.rst",
            category=REPORT_LATENT,
            subcategory="information check",
            labels={"setup": str(_SA_INFO.get("setup", ""))},
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
        cfg=lambda w: cfg_arg("information", encoder={"defaults": _SA_ENC.get("defaults", {})}),
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
        aware=lambda w: _scan_arg("--trained-on-signals", [s for s in _SA_SCAN_ALL if _signal_flag(s)]),
    shell:
        "python -m salad dimension-scan{params.sic}{params.nplm}{params.linear}{params.aware}"
        " --table {output.table:q}"
        " --markdown {output.markdown:q} --plot {output.plot:q} --config {params.cfg} > {log:q} 2>&1"


register_targets("signal_agnostic", signal_agnostic_targets)
