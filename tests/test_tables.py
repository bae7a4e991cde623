"""Tables for people: number formatting pinned on hand cases, pivots, and the Markdown/HTML."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from salad import tables
from salad.artifacts import provenance, write_parquet
from test_plots import sensitivity_table


@pytest.mark.parametrize(
    "args, text",
    [
        ((25.734, 1.234, 0.0456), "25.73 ± 1.23 ± 0.05"),  # one decimal more for the small error
        ((25.734, 1.234), "25.7 ± 1.2"),
        ((0.000333,), "3.33e-04"),
        ((0.00333,), "0.00333"),
        ((25.7,), "25.7"),
        ((0.5133, 0.0061), "0.5133 ± 0.0061"),
        ((2.0, 0.0), "2.00 ± 0.00"),  # an exact zero spread stays visible
        ((np.nan, 1.0), "–"),
        ((3.0, np.nan), "3.00"),
    ],
)
def test_fmt(args, text):
    assert tables.fmt(*args) == text


def test_z_floor_constant_is_the_clipped_p_value():
    assert tables.Z_FLOOR == pytest.approx(stats.norm.isf(1e-300), abs=1e-4)


def test_number_switches_to_scientific_outside_range():
    assert tables.number(1.5e-5) == "1.50e-05"
    assert tables.number(123456.0) == "1.23e+05"
    assert tables.number(np.inf) == "∞"


def test_sensitivity_pivot_drops_strength_zero_and_uses_new_columns():
    old = sensitivity_table_frame(extra=False)
    text = tables.sensitivity_md(old)
    assert "| signal | εB | S/√B | ID | EP |" in text  # setups as columns, fixed order
    assert "| Y400 → Hγ | 0.1 % | 1 | 2.00 ± 0.50 | 2.00 ± 0.50 |" in text
    assert "| Y400 → Hγ | 0.1 % | 0 |" not in text
    assert "standard deviation over the data instances" in text
    new = tables.sensitivity_md(sensitivity_table_frame(extra=True))
    assert "| Y400 → Hγ | 0.1 % | 1 | 2.00 ± 0.20 ± 0.10 | 2.00 ± 0.20 ± 0.10 † |" in new
    assert "† marks a signal held out" in new and "background events in the evaluation sample: 1000" in new


def sensitivity_table_frame(extra):
    rows = []
    for setup in ("EP", "ID"):
        for method in ("cathode", "iad"):
            for s in (0.0, 1.0):
                row = {
                    "setup": setup,
                    "signal": "Y400",
                    "method": method,
                    "eps_b": 0.001,
                    "strength": s,
                    "sic_mean": 2.0,
                    "sic_std": 0.5,
                    "significance_mean": 1.0,
                    "significance_std": 0.25,
                    "n": 2,
                }
                if extra:
                    row.update(held_out=setup == "EP", n_bkg_eval=1000, sic_err=0.2, sic_syst=0.1)
                rows.append(row)
    return pd.DataFrame(rows)


def test_required_marks_limits():
    frame = pd.DataFrame(
        [
            {
                "setup": "ID",
                "signal": "Y400",
                "method": "cathode",
                "eps_b": 0.001,
                "required_strength": 1.89,
                "reached": True,
                "required_lo": 1.6,
                "required_hi": 2.3,
            },
            {
                "setup": "IP",
                "signal": "Y400",
                "method": "cathode",
                "eps_b": 0.001,
                "required_strength": 2.44,
                "reached": True,
                "required_lo": 2.0,
                "required_hi": np.inf,
            },
            {
                "setup": "bkg_only",
                "signal": "Y400",
                "method": "cathode",
                "eps_b": 0.001,
                "required_strength": 5.0,
                "reached": False,
                "required_lo": 5.0,
                "required_hi": np.inf,
            },
        ]
    )
    frame = pd.concat([frame, frame.iloc[[0]].assign(method="iad", required_lo=1.89, required_hi=1.89)])
    text = tables.required_md(frame)
    assert "| Y400 → Hγ | idealized AD (true background) | 0.1 % | 1.89 | – | – |" in text  # no ±0 range
    assert text.index("| CATHODE |") < text.index("| idealized AD")
    assert "| Y400 → Hγ | CATHODE | 0.1 % | 1.89 (+0.41 −0.29) | 2.44 (+∞ −0.44) | > 5.00 |" in text
    assert "| signal | method | εB | ID | IP | background-only |" in text


def test_sculpting_setups_as_columns():
    frame = pd.DataFrame(
        {
            "setup": ["IP", "ID"],
            "auc_mean": [0.525, 0.513],
            "auc_std": [0.001, 0.006],
            "auc_boot_std": [0.006, 0.007],
            "classifiers": [2, 4],
            "datasets": [1, 2],
            "chi2_ndf": [1.06, 0.98],
            "ndf": [21, 21],
            "jsd": [0.01, 0.02],
        }
    )
    text = tables.sculpting_md(frame)
    assert "| quantity | ID | IP |" in text
    assert "| template vs true SR background AUC | 0.5130 ± 0.0060 | 0.5250 ± 0.0010 |" in text


def test_nplm_marks_extrapolated_and_floor():
    floor = float(stats.norm.isf(1e-300))
    power = pd.DataFrame(
        {
            "representation": ["ID"] * 3,
            "seed": 1,
            "signal": "Y400",
            "strength": [0.0, 3.0, 5.0],
            "t_median": 1.0,
            "z_median": [0.3, 4.0, floor],
            "instances": 2,
            "power": [0.0, 1.0, 1.0],
            "z_threshold": 3.0,
        }
    )
    null = pd.DataFrame(
        [
            {
                "representation": "ID",
                "seed": 1,
                "dof": 8.0,
                "ks_pvalue": 0.4,
                "n_toys": 100,
                "t_median": 7.5,
                "t_mean": 8.0,
                "trained_on_signals": True,
            }
        ]
    )
    text = tables.nplm_md(power, null)
    assert "| trained on signals |" in text and text.rstrip().count("| yes |") >= 1
    # 100 toys reach Z = norm.isf(0.01) = 2.33: 4.0 is beyond, so it is chi2-extrapolated
    assert "| Y400 → Hγ | 3 | 4.00ᵡ (100 %) |" in text
    assert "| Y400 → Hγ | 0 | 0.30 (0 %) |" in text
    assert "≥ 37 (floor)" in text and "37.05" not in text
    per = pd.DataFrame(
        {
            "representation": "ID",
            "seed": 1,
            "signal": "Y400",
            "strength": [3.0, 3.0],
            "instance": [0, 1],
            "t": [12.5, 900.0],
            "p_empirical": [0.04, 0.0],
            "z": [1.75, 25.3],
            "z_from_chi2": [False, True],
        }
    )
    text = tables.nplm_md(power, null, per)
    assert "| Y400 → Hγ | 3 | 1 | 900.0 | 0 | 25.30ᵡ |" in text
    assert "| Y400 → Hγ | 3 | 0 | 12.50 | 0.040 | 1.75 |" in text


def test_information_uses_process_names():
    conf = pd.DataFrame(
        {
            "classifier": "bdt_latent",
            "true_group": [0, 0, -6, -6],
            "pred_group": [0, -6, 0, -6],
            "count": [9, 1, 2, 8],
            "fraction": [0.9, 0.1, 0.2, 0.8],
        }
    )
    summ = pd.DataFrame(
        [
            {
                "classifier": "bdt_latent",
                "accuracy": 0.85,
                "mean_diagonal": 0.85,
                "background_diagonal": 0.9,
                "signal_diagonal": 0.8,
                "n_test": 20,
            }
        ]
    )
    text = tables.information_md(summ, conf)
    assert "| true process | γγ + jets | Y → Hγ |" in text
    assert "| Y → Hγ | 20.0 | 80.0 |" in text
    assert "| accuracy [%] | 85.0 |" in text


def test_linear_eval_and_scan():
    lin = pd.DataFrame(
        {
            "representation": ["baseline_leading", "ID", "ID"],
            "seed": [1, 1, 2],
            "dim": 6,
            "n_events": 100,
            "n_classes": 5,
            "folds": 3,
            "accuracy": [0.5, 0.6, 0.7],
            "accuracy_sem": [0.01, 0.02, 0.02],
            "balanced_accuracy": 0.4,
            "balanced_accuracy_sem": 0.01,
            "trained_on_signals": [False, True, True],
        }
    )
    text = tables.linear_eval_md(lin)
    assert "| trained on signals | yes | no |" in text
    assert "| quantity | ID | baseline: leading |" in text
    assert "| accuracy [%] | 65.0 ± 2.0 ± 7.1 | 50.0 ± 1.0 |" in text
    scan = pd.DataFrame(
        {
            "dim": [2, 4],
            "setup": ["ID_d2", "ID_d4"],
            "signal": "Y400",
            "sic": [1.0, 2.0],
            "sic_err": [0.1, 0.2],
            "z_median": [1.0, np.inf],
            "z_err": 0.0,
            "power": 0.0,
            "trained_on_signals": True,
        }
    )
    text = tables.scan_md(scan)
    assert "| 2 | ID (d = 2) | 1.00 ± 0.10 | 1.00 | yes |" in text
    assert "| 4 | ID (d = 4) | 2.00 ± 0.20 | > toy reach |" in text


def test_html_and_readme_cli(tmp_path, capsys):
    sensitivity_table(tmp_path / "cathode_sensitivity.parquet")
    from salad.__main__ import main

    assert main(["tables", "--readme", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## CATHODE sensitivity") and "| Y400 → Hγ | 0.1 % | 1 |" in out
    md = tmp_path / "t.md"
    md.write_text(tables.sensitivity_md(pd.read_parquet(tmp_path / "cathode_sensitivity.parquet")))
    assert main(["tables", "--html", str(md), str(tmp_path / "t.html")]) == 0
    page = (tmp_path / "t.html").read_text()
    assert page.count("<table>") == 4 and "<th>εB</th>" in page and "<td>0.1 %</td>" in page
    assert main(["tables", "--readme", "--dir", str(tmp_path / "none")]) == 1


def test_cathode_tables_write_the_readable_markdown(tmp_path):
    from salad.cathode.evaluate import write_table

    frame = sensitivity_table_frame(extra=True)
    write_table(frame, tmp_path / "cathode_sensitivity", "t", {})
    assert "| signal | εB | S/√B | ID | EP |" in (tmp_path / "cathode_sensitivity.md").read_text()
    back = pd.read_parquet(tmp_path / "cathode_sensitivity.parquet")
    assert len(back) == len(frame)  # Parquet stays long-format
    write_parquet(frame, tmp_path / "x.parquet", provenance("t"))
