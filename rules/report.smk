"""The HTML report (`snakemake --report results/report.html`): numbered categories, and every
Markdown table of the run as an HTML page (table_html) so that the report holds every figure and
every table. Plot rules flag their PNGs with report(..., category=REPORT_*); the landing page is
workflow/report/workflow.rst (the `report:` directive in the Snakefile).
"""

REPORT_COMPARISON = "0. Paper comparison"   # first: the papers' claims vs this run
REPORT_SCULPTING = "1. Sculpting"
REPORT_SENSITIVITY = "2. Sensitivity"
REPORT_NPLM = "3. NPLM"
REPORT_LATENT = "4. Latent space"
REPORT_DIAGNOSTICS = "5. Diagnostics"
# table stem -> (category, subcategory); per-representation NPLM tables are nplm__{setup}__{seed}
_REPORT_TABLES = {
    "paper_comparison": (REPORT_COMPARISON, "claims vs this run"),
    "cathode_sculpting": (REPORT_SCULPTING, "tables"),
    "cathode_sensitivity": (REPORT_SENSITIVITY, "tables"),
    "cathode_required_injection": (REPORT_SENSITIVITY, "tables"),
    "nplm": (REPORT_NPLM, "tables"),
    "linear_eval": (REPORT_LATENT, "tables"),
    "information": (REPORT_LATENT, "tables"),
    "dimension_scan": (REPORT_LATENT, "tables"),
}


rule table_html:
    conda:
        "../envs/salad.yaml"
    input:
        report_table_md,
    output:
        report("results/report/tables/{table}.html", caption="../workflow/report/table.rst",
               category=lambda w: _report_place(w)[0], subcategory=lambda w: _report_place(w)[1],
               labels={"table": "{table}"}),
    wildcard_constraints:
        table="[A-Za-z0-9_]+",
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    log:
        "results/logs/table_html/{table}.log",
    benchmark:
        "results/benchmarks/table_html/{table}.tsv"
    shell:
        "python -m salad tables --html {input:q} {output:q} > {log:q} 2>&1"


register_targets("report", report_targets)
