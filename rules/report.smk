"""The HTML report (`snakemake --report results/report.html`): numbered categories, and every
Markdown table of the run as an HTML page (table_html) so that the report holds every figure and
every table. Plot rules flag their PNGs with report(..., category=REPORT_*); the landing page is
workflow/report/workflow.rst (the `report:` directive in the Snakefile).
"""

_REPORT_HTML = report_targets()  # parsed last (Snakefile), so every stage's tables are known


if _REPORT_HTML:

    rule table_html:
        input:
            [report_table_md(h) for h in _REPORT_HTML],
        output:
            [
                report(
                    h,
                    caption="../workflow/report/table.rst",
                    category=_report_place(h)[0],
                    subcategory=_report_place(h)[1],
                    labels={"table": Path(h).stem},
                )
                for h in _REPORT_HTML
            ],
        log:
            "results/logs/table_html.log",
        benchmark:
            "results/benchmarks/table_html.tsv"
        conda:
            "../envs/salad.yaml"
        threads: 1
        resources:
            mem_mb=500,
            runtime=5,
        params:
            command=" && ".join(
                f"python -m salad tables --html {shlex.quote(report_table_md(h))} {shlex.quote(h)}"
                for h in _REPORT_HTML
            )
            or "true",
        shell:
            "({params.command}) > {log:q} 2>&1"


register_targets("report", report_targets)
