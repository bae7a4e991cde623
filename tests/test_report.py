"""The HTML report of the test run holds every figure and every table, plus the landing page."""

from __future__ import annotations

import yaml

from conftest import REPO, run_snakemake


def test_report_holds_every_plot_and_table(pipeline_run):
    report = pipeline_run / "report.html"
    run_snakemake(pipeline_run, "--report", str(report))
    text = report.read_text()
    results = pipeline_run / "results"
    plots = sorted(results.rglob("*.png"))
    tables = sorted((results / "tables").rglob("*.md"))
    assert len(plots) >= 10 and len(tables) >= 7
    for png in plots:
        assert png.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-", png
    missing = [
        str(p.relative_to(pipeline_run)) for p in plots if f'"{p.relative_to(pipeline_run)}"' not in text
    ]
    assert not missing, f"figures not in the report: {missing}"
    pages = []
    for md in tables:
        stem = "__".join(md.relative_to(results / "tables").with_suffix("").parts)
        page = results / "report" / "tables" / f"{stem}.html"
        assert "<table>" in page.read_text(), page
        pages.append(f'"{page.relative_to(pipeline_run)}"')
    assert not [p for p in pages if p not in text], "tables not in the report"
    # landing page and numbered categories
    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    lumi = f"{config['pseudodata']['luminosity_ifb']:g} fb"  # the page is JSON-escaped: no ⁻¹
    for words in (
        "Glossary of setups",
        "What was run",
        lumi,
        "Samples: " + ", ".join(config["samples"]),
        "0. Paper comparison",
        "1. Sculpting",
        "2. Sensitivity",
        "3. NPLM",
        "4. Latent space",
        "5. Diagnostics",
        "Papers vs this run",
    ):
        assert words in text, words
