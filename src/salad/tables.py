"""Tables for people: the long-format Parquet tables as pivoted, documented Markdown (and HTML).

The Parquet tables stay long-format for machines; this module only formats them:
- setups as columns (fixed order of salad.plotstyle), "value ± stat ± syst" cells with the
  error rounded to two significant digits and the value to the same decimal place, εB in %,
  strength-0 rows dropped from sensitivity tables, process names instead of group codes;
- every table starts with a paragraph defining its columns and units.

Public API: `fmt`, `sensitivity_md`, `required_md`, `sculpting_md`, `nplm_md`,
`linear_eval_md`, `information_md`, `scan_md`, `render(name, frame)` (CATHODE table by its file
stem), `markdown_to_html`, `readme_tables(tables_dir)`.
CLI: `python -m salad tables --readme [--dir results/tables]` prints the README's findings
tables; `python -m salad tables --html IN.md OUT.html` converts one table for the report.
"""

from __future__ import annotations

import argparse
import html
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .artifacts import atomic_output, read_parquet
from .errors import SaladError
from .plotstyle import group_label, order_setups
from .plotstyle import signal_label as _signal_label

SHORT = {"bkg_only": "background-only", "ID_d2": "ID (d = 2)", "ID_d4": "ID (d = 4)"}
METHOD_NAMES = {
    "cathode": "CATHODE",
    "iad": "idealized AD (true background)",
    "supervised": "fully supervised",
}
Z_FLOOR = 37.0471  # norm.isf(1e-300): what a clipped p-value reads as (test-pinned)
SETUPS_DOC = (
    "Setups: ID = encoder trained with every signal, IP = one signal mass point held out "
    "of training, EP = a whole signal model held out, background-only = encoder trained on "
    "SM processes only; paper B's simclr_* (self-supervised SimCLR), supsimclr_* (supervised "
    "SimCLR, MLP or transformer with DINO head) and vicreg_* (supervised VICReg + CE) train on SM "
    "processes only; baseline: … = input features, leading objects or a VAE trained on SM processes."
)


def signal_label(name: str) -> str:
    """Process label of a sample for text (accents kept as Unicode)."""
    return _signal_label(name, math=False)


def short_setup(name: str) -> str:
    """Column header of a setup: ID, IP, EP, background-only, baseline: leading, …"""
    name = str(name)
    if name.startswith("baseline_"):
        return f"baseline: {name[len('baseline_') :]}"
    return SHORT.get(name, name)


# ---------------------------------------------------------------- numbers
def _decimals(x: float, sig: int) -> int:
    return max(0, sig - 1 - int(math.floor(math.log10(abs(x))))) if x and math.isfinite(x) else 0


def number(v, sig: int = 3) -> str:
    """A value with `sig` significant digits, fixed-point for 1e-3 <= |v| < 1e5."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    v = float(v)
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v != 0 and not 1e-3 <= abs(v) < 1e5:
        return f"{v:.{sig - 1}e}"
    return f"{v:.{_decimals(v, sig)}f}"


def fmt(value, stat=None, syst=None, sig: int = 3) -> str:
    """'value ± stat ± syst' at one decimal place: two significant digits of the largest error
    (one more if the other error needs it); missing/NaN errors are left out; no errors: `sig`
    significant digits."""
    if value is None or not np.isfinite(float(value)):
        return number(value)
    errs = [float(e) for e in (stat, syst) if e is not None and np.isfinite(float(e))]
    nonzero = [e for e in errs if e > 0]
    if not errs:
        return number(value, sig)
    decs = [_decimals(e, 2) for e in nonzero]
    dec = min(max(decs), min(decs) + 1) if decs else _decimals(float(value), sig)
    dec = min(dec, 6)
    return " ± ".join(f"{x:.{dec}f}" for x in [float(value), *errs])


def percent(eps: float) -> str:
    return f"{100 * float(eps):g} %"


# ---------------------------------------------------------------- Markdown
def md_table(frame: pd.DataFrame) -> str:
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def document(title: str, intro: str, sections: Mapping[str, pd.DataFrame]) -> str:
    """'# title', the defining paragraph, then '## section' + table per section."""
    out = [f"# {title}", "", intro.strip(), ""]
    for name, frame in sections.items():
        if name:
            out += [f"## {name}", ""]
        out += [md_table(frame) if len(frame) else "(no rows)", ""]
    return "\n".join(out)


def pivot_setups(
    frame: pd.DataFrame, index: Sequence[str], cell: Callable[[pd.Series], str], setup_col: str = "setup"
) -> pd.DataFrame:
    """One row per `index` combination, one column per setup (fixed order), cell(row) inside."""
    setups = order_setups(frame[setup_col].unique())
    rows = []
    for key, g in frame.groupby(list(index), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(index, key))
        by = {str(r[setup_col]): r for _, r in g.iterrows()}
        row.update({short_setup(s): cell(by[s]) if s in by else "–" for s in setups})
        rows.append(row)
    return pd.DataFrame(rows, columns=[*index, *map(short_setup, setups)])


def yes_no(flag) -> str:
    """'yes' / 'no' for a table cell (e.g. trained_on_signals)."""
    return "yes" if bool(flag) else "no"


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SaladError(f"{what}: missing column(s) {', '.join(missing)}")


# ---------------------------------------------------------------- CATHODE
def _stat_syst(row: pd.Series, value: str, std: str, err: str, syst: str):
    stat = row[err] if err in row.index and pd.notna(row[err]) else row.get(std)
    if "n" in row.index and row["n"] < 2 and err not in row.index:
        stat = None
    return stat, (row[syst] if syst in row.index else None)


def sensitivity_md(frame: pd.DataFrame) -> str:
    """SIC and post-selection significance vs injected S/√B, setups as columns (strength 0
    dropped). Uses sic_err / sic_syst / significance_err / held_out / n_bkg_eval when present."""
    _require(frame, ["setup", "signal", "method", "eps_b", "strength", "sic_mean"], "cathode_sensitivity")
    f = frame[frame["strength"] > 0].copy()
    f["signal"] = f["signal"].map(signal_label)
    f["εB"] = f["eps_b"].map(percent)
    f["S/√B"] = f["strength"].map(lambda s: f"{s:g}")
    f = f.sort_values(["signal", "eps_b", "strength"])

    def cell(value, std, err, syst):
        def inner(r):
            stat, sy = _stat_syst(r, value, std, err, syst)
            text = fmt(r[value], stat, sy)
            return text + (" †" if "held_out" in r.index and bool(r["held_out"]) else "")

        return inner

    sections = {}
    present = set(f["method"])
    for method in [m for m in METHOD_NAMES if m in present] + sorted(present - set(METHOD_NAMES)):
        g = f[f["method"] == method]
        sections[f"SIC = εS/√εB, {METHOD_NAMES.get(method, method)}"] = pivot_setups(
            g, ["signal", "εB", "S/√B"], cell("sic_mean", "sic_std", "sic_err", "sic_syst")
        )
    if "significance_mean" in f:
        g = f[f["method"] == "cathode"]
        sections["Post-selection significance Z (Asimov), CATHODE"] = pivot_setups(
            g,
            ["signal", "εB", "S/√B"],
            cell("significance_mean", "significance_std", "significance_err", "significance_syst"),
        )
    n = int(f["n"].max()) if "n" in f and len(f) else 0
    extra = []
    if "sic_err" in f:
        extra.append("The first ± is the statistical error of the evaluation sample (`sic_err`)")
    else:
        extra.append(
            f"The first ± is the standard deviation over the data instances × classifier "
            f"ensembles (up to n = {n}; a spread of 0 means they agree exactly; no ± when n = 1)"
        )
    if "sic_syst" in f:
        extra.append("the second ± the spread over classifier ensembles (`sic_syst`)")
    if "held_out" in f:
        extra.append("† marks a signal held out of that setup's encoder training")
    if "n_bkg_eval" in f and len(f):
        extra.append(
            f"background events in the evaluation sample: {int(f['n_bkg_eval'].min())}–"
            f"{int(f['n_bkg_eval'].max())}"
        )
    intro = (
        f"One row per signal, background-efficiency working point εB (in %) and injected signal "
        f"strength S/√B (signal region, before selection; strength 0 is in the sculpting table). "
        f"Columns: encoder setups. SIC = εS/√εB at the working point (dimensionless, > 1 improves "
        f"the significance, at most 1/√εB); Z = Asimov significance of the expected S and B after "
        f"the cut. {'; '.join(extra)}. {SETUPS_DOC}"
    )
    return document("CATHODE sensitivity", intro, sections)


def required_md(frame: pd.DataFrame, target: float | None = None) -> str:
    """Injected S/√B needed to reach the target significance, setups as columns."""
    _require(
        frame,
        ["setup", "signal", "method", "eps_b", "required_strength", "reached"],
        "cathode_required_injection",
    )
    f = frame.copy()
    f["signal"] = f["signal"].map(signal_label)
    names = [METHOD_NAMES.get(m, m) for m in f["method"]]
    order = [n for n in METHOD_NAMES.values() if n in names] + sorted(set(names) - set(METHOD_NAMES.values()))
    f["method"] = pd.Categorical(names, categories=order, ordered=True)
    f["εB"] = f["eps_b"].map(percent)

    def cell(r):
        v = float(r["required_strength"])
        if not np.isfinite(v):
            return "–"
        if not bool(r["reached"]):
            return f"> {number(v)}"
        lo = v - float(r.get("required_lo", np.nan))
        hi = float(r.get("required_hi", np.nan)) - v
        up = "∞" if np.isinf(hi) else number(hi, 2)
        if not np.isfinite(lo) or (lo == 0 and hi == 0):  # one curve only: no range
            return number(v)
        return f"{number(v)} (+{up} −{number(lo, 2)})"

    table = pivot_setups(f, ["signal", "method", "εB"], cell)
    if target is None and "target_significance" in frame and len(frame):
        target = float(frame["target_significance"].iloc[0])
    goal = f"{target:g}σ" if target else "the target significance (config evaluate.target_significance)"
    intro = (
        f"Injected signal strength S/√B (signal region, before selection) at which the mean "
        f"post-selection significance reaches {goal}, interpolated linearly between the scanned "
        f"strengths; lower is better. In brackets: the range from the mean ± standard deviation "
        f"significance curves (+∞: the lower curve never reaches it). '> x': not reached within the "
        f"scan (x = largest scanned strength, a lower limit). {SETUPS_DOC}"
    )
    return document("Required injection", intro, {"": table})


def sculpting_md(frame: pd.DataFrame) -> str:
    """Sculpting check per setup (setups as columns, quantities as rows)."""
    _require(frame, ["setup", "auc_mean"], "cathode_sculpting")
    setups = order_setups(frame["setup"])
    by = {str(r["setup"]): r for _, r in frame.iterrows()}
    quantities = [
        ("template vs true SR background AUC", lambda r: fmt(r["auc_mean"], r.get("auc_std"))),
        ("bootstrap error of one AUC", lambda r: number(r.get("auc_boot_std"), 2)),
        (
            "BDTs × datasets",
            lambda r: (
                f"{int(r['classifiers'])} / {int(r['datasets'])}"
                if "classifiers" in r.index and pd.notna(r["classifiers"])
                else "–"
            ),
        ),
        ("ndf", lambda r: f"{int(r['ndf'])}" if pd.notna(r.get("ndf")) else "–"),
    ]
    rows = [{"quantity": name, **{short_setup(s): fn(by[s]) for s in setups}} for name, fn in quantities]
    # mγγ before vs after the cut: one pair of rows per selection efficiency (if tabulated)
    effs = sorted(frame["efficiency"].dropna().unique(), reverse=True) if "efficiency" in frame else [None]
    for eff in effs:
        part = frame if eff is None else frame[frame["efficiency"] == eff]
        at = {str(r["setup"]): r for _, r in part.iterrows()}
        where = "" if eff is None else f", cut keeping {100 * eff:g} % of SR data"
        for name, col, digits in (
            ("mγγ χ²/ndf after vs before cut", "chi2_ndf", 3),
            ("Jensen–Shannon divergence", "jsd", 2),
        ):
            rows.append(
                {
                    "quantity": name + where,
                    **{short_setup(s): number(at[s].get(col), digits) if s in at else "–" for s in setups},
                }
            )
    intro = (
        "No injected signal. AUC of the CWoLa classifier separating the CATHODE template from the "
        "true signal-region background (0.5 = indistinguishable; ± = standard deviation over BDTs × "
        "no-injection datasets; the bootstrap row is the mean statistical error of one AUC). "
        "χ²/ndf and the Jensen–Shannon divergence compare the normalised mγγ spectra before and "
        "after keeping the most signal-like events (≈ 1 and ≈ 0: no sculpting). " + SETUPS_DOC
    )
    return document("Sculpting check", intro, {"": pd.DataFrame(rows)})


CATHODE_RENDERERS = {
    "cathode_sensitivity": sensitivity_md,
    "cathode_required_injection": required_md,
    "cathode_sculpting": sculpting_md,
}


def render(name: str, frame: pd.DataFrame, title: str = "") -> str:
    """Markdown of the CATHODE table with file stem `name`; unknown names: a plain table."""
    if name in CATHODE_RENDERERS:
        return CATHODE_RENDERERS[name](frame)
    return document(title or name, "", {"": frame.map(lambda v: number(v) if isinstance(v, float) else v)})


# ---------------------------------------------------------------- NPLM, linear evaluation, information
def z_text(z: float, n_toys: float | None = None) -> str:
    """A Z value; the clipping floor and ±∞ are written as limits, a Z beyond what the toys can
    measure (norm.isf(1/n_toys)) is marked ᵡ (χ²-extrapolated)."""
    if z is None or np.isnan(z):
        return "–"
    if np.isinf(z):
        return "> toy reach" if z > 0 else "−∞ (p = 1)"
    if z >= Z_FLOOR - 1e-3:
        return f"≥ {Z_FLOOR:.0f} (floor)"
    from statistics import NormalDist

    mark = "ᵡ" if n_toys and z > NormalDist().inv_cdf(1.0 - 1.0 / float(n_toys)) + 1e-9 else ""
    return f"{z:.2f}{mark}"


def nplm_md(power: pd.DataFrame, null: pd.DataFrame, per: pd.DataFrame | None = None) -> str:
    """Median Z and power per (signal, strength), representations as columns; null fits; with
    `per` (one row per pseudo-data instance: signal, strength, instance, t, p_empirical, z,
    z_from_chi2) also the observed test of every instance."""
    _require(power, ["representation", "signal", "strength", "z_median", "power"], "nplm power table")
    toys = {}
    if "n_toys" in null:
        toys = null.groupby("representation")["n_toys"].min().to_dict()
    p = power.copy()
    p["signal"] = p["signal"].map(signal_label)
    p["S/√B"] = p["strength"].map(lambda s: f"{s:g}")
    p = p.groupby(["representation", "signal", "S/√B"], as_index=False).agg(
        z_median=("z_median", "median"), power=("power", "mean"), strength=("strength", "first")
    )
    table = pivot_setups(
        p.sort_values("strength"),
        ["signal", "S/√B"],
        lambda r: f"{z_text(r['z_median'], toys.get(r['representation']))} ({100 * r['power']:.0f} %)",
        setup_col="representation",
    )
    thr = power["z_threshold"].iloc[0] if "z_threshold" in power and len(power) else 3.0
    sections = {"Median observed Z (power in %)": table}
    if len(null):
        nrow = []
        for rep in order_setups(null["representation"]):
            g = null[null["representation"] == rep]
            nrow.append(
                {
                    "representation": short_setup(rep),
                    "seeds": len(g),
                    "toys": int(g["n_toys"].sum()) if "n_toys" in g else "–",
                    "fitted χ² ndf": number(g["dof"].mean(), 3) if "dof" in g else "–",
                    "KS p-value": number(g["ks_pvalue"].mean(), 2) if "ks_pvalue" in g else "–",
                    "median t": number(g["t_median"].mean(), 3) if "t_median" in g else "–",
                    "s per toy": number(g["seconds_per_toy"].mean(), 2) if "seconds_per_toy" in g else "–",
                    "trained on signals": yes_no(g["trained_on_signals"].any())
                    if "trained_on_signals" in g
                    else "–",
                }
            )
        sections["Null distribution (background-only toys) vs fitted χ²"] = pd.DataFrame(nrow)
    if per is not None and len(per):
        rows = [
            {
                "signal": signal_label(r["signal"]),
                "S/√B": f"{r['strength']:g}",
                "instance": int(r["instance"]),
                "t": number(r["t"], 4),
                "p (toys)": number(r.get("p_empirical", np.nan), 2),
                "Z": z_text(r["z"], None) + ("ᵡ" if bool(r.get("z_from_chi2", False)) else ""),
            }
            for _, r in per.sort_values(["signal", "strength", "instance"]).iterrows()
        ]
        sections["Observed test per pseudo-data instance"] = pd.DataFrame(rows)
    intro = (
        f"Columns: representations (encoder setups and baselines). Cell: median over pseudo-data "
        f"instances of the observed significance Z = Φ⁻¹(1 − p) of the NPLM test statistic t, and in "
        f"brackets the power = fraction of instances with Z ≥ {thr:g}. p is the fraction of "
        f"background-only toys with t ≥ t_obs; where no toy reaches t_obs it is the tail of the "
        f"χ² fitted to the toys: such values (beyond the toys' reach Φ⁻¹(1 − 1/N_toys)) are marked ᵡ "
        f"(χ²-extrapolated); 'floor' marks a p-value clipped at 1e-300. The second table: the fitted "
        f"χ² degrees of freedom and the KS p-value of the toys against it (large = compatible)."
    )
    return document("NPLM goodness-of-fit test", intro, sections)


def _sem(values) -> float:
    values = np.asarray(values, float)
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


def summarize_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Per representation: accuracy and balanced accuracy, mean and SEM over encoder seeds.

    runs: one row per (representation, seed) (cli evaluate output). With one seed the SEM over
    seeds is undefined (NaN) and `accuracy_fold_sem` (the probe folds' SEM) is the only error.
    """
    if "trained_on_signals" not in runs:
        runs = runs.assign(trained_on_signals=False)
    rows = []
    for name, g in runs.groupby("representation", sort=False):
        rows.append(
            {
                "representation": name,
                "trained_on_signals": bool(g["trained_on_signals"].any()),
                "dim": int(g["dim"].iloc[0]),
                "seeds": len(g),
                "accuracy": float(g["accuracy"].mean()),
                "accuracy_sem": _sem(g["accuracy"]),
                "balanced_accuracy": float(g["balanced_accuracy"].mean()),
                "balanced_accuracy_sem": _sem(g["balanced_accuracy"]),
                "accuracy_fold_sem": float(g["accuracy_sem"].mean()),
            }
        )
    return pd.DataFrame(rows)


def linear_eval_md(table: pd.DataFrame) -> str:
    """Linear-probe accuracy per representation (columns), mean over seeds."""
    _require(table, ["representation", "accuracy", "accuracy_sem"], "linear_eval table")
    g = table.groupby("representation")
    reps = order_setups(table["representation"])

    def row(name, col, sem, scale=100.0):
        out = {"quantity": name}
        for r in reps:
            v = g.get_group(r)
            syst = v[col].std(ddof=1) * scale if len(v) > 1 else None
            out[short_setup(r)] = fmt(
                v[col].mean() * scale, v[sem].mean() * scale if sem in v else None, syst
            )
        return out

    rows = [row("accuracy [%]", "accuracy", "accuracy_sem")]
    if "balanced_accuracy" in table:
        rows.append(row("balanced accuracy [%]", "balanced_accuracy", "balanced_accuracy_sem"))
    for col, name in (("dim", "latent dimension"), ("n_events", "events"), ("n_classes", "classes")):
        if col in table:
            rows.append(
                {"quantity": name, **{short_setup(r): f"{int(g.get_group(r)[col].iloc[0])}" for r in reps}}
            )
    if "trained_on_signals" in table:
        rows.append(
            {
                "quantity": "trained on signals",
                **{short_setup(r): yes_no(g.get_group(r)["trained_on_signals"].any()) for r in reps},
            }
        )
    intro = (
        "A linear classifier trained on the frozen latent (k-fold) to tell the SM background "
        "processes apart; accuracy in %, ± = standard error over the folds, second ± = spread over "
        "encoder seeds (when more than one). Higher = the latent keeps more process information. "
        + SETUPS_DOC
    )
    return document("Linear evaluation", intro, {"": pd.DataFrame(rows)})


CLASSIFIERS = {
    "bdt_latent": "BDT on the latent",
    "bdt_raw": "BDT on input features",
    "supervised": "supervised network",
}


def information_md(summary: pd.DataFrame, confusion: pd.DataFrame) -> str:
    """Summary per classifier (columns) and confusion matrices with process names, in %."""
    _require(summary, ["classifier", "accuracy"], "information summary")
    _require(confusion, ["classifier", "true_group", "pred_group", "fraction"], "information confusion")
    names = list(summary["classifier"])
    quantities = [
        ("accuracy", "accuracy"),
        ("mean diagonal", "mean_diagonal"),
        ("background diagonal", "background_diagonal"),
        ("signal diagonal", "signal_diagonal"),
    ]
    rows = [
        {
            "quantity": f"{label} [%]",
            **{CLASSIFIERS.get(n, n): number(100 * v, 3) for n, v in zip(names, summary[col])},
        }
        for label, col in quantities
        if col in summary
    ]
    if "n_test" in summary:
        rows.append(
            {
                "quantity": "test events",
                **{CLASSIFIERS.get(n, n): f"{int(v)}" for n, v in zip(names, summary["n_test"])},
            }
        )
    sections = {"Summary": pd.DataFrame(rows)}
    for name in names:
        c = confusion[confusion["classifier"] == name]
        wide = c.pivot(index="true_group", columns="pred_group", values="fraction")
        wide = wide.loc[
            sorted(wide.index, key=lambda g: (g < 0, abs(g))),
            sorted(wide.columns, key=lambda g: (g < 0, abs(g))),
        ]
        out = pd.DataFrame({"true process": [group_label(g) for g in wide.index]})
        for col in wide.columns:
            out[group_label(col)] = [f"{100 * v:.1f}" for v in wide[col]]
        sections[f"{CLASSIFIERS.get(name, name)}: % of each true process (rows) predicted as (columns)"] = out
    intro = (
        "Information check (paper A appendix A): classifiers trained to identify the process group "
        "of each event, evaluated on the test split. Accuracy and the mean of the diagonal of the "
        "row-normalised confusion matrix (all groups, SM background groups, BSM signal groups) in %. "
        "If the BDT on the latent approaches the supervised network, the latent keeps the process "
        "information."
    )
    return document("Information check", intro, sections)


def scan_md(table: pd.DataFrame) -> str:
    """Latent-dimension scan: one row per latent size, SIC and NPLM Z per signal."""
    _require(table, ["dim", "signal"], "dimension_scan table")
    rows = []
    for dim, g in table.groupby("dim"):
        row = {"latent dimension": int(dim), "setup": short_setup(g["setup"].iloc[0]) if "setup" in g else ""}
        for _, r in g.sort_values("signal").iterrows():
            s = signal_label(r["signal"])
            row[f"SIC, {s}"] = fmt(r.get("sic"), r.get("sic_err"))
            row[f"NPLM Z, {s}"] = z_text(r.get("z_median", np.nan))
        if "trained_on_signals" in g:
            row["trained on signals"] = yes_no(g["trained_on_signals"].any())
        rows.append(row)
    intro = (
        "CATHODE SIC (± its spread) at the configured working point and the largest (or configured) "
        "injection, and NPLM median observed Z, versus the latent size of otherwise identical encoders. "
        "A Z at the floor or infinite is a limit, not a measurement."
    )
    return document("Latent-dimension scan", intro, {"": pd.DataFrame(rows)})


# ---------------------------------------------------------------- HTML and the README
def markdown_to_html(text: str, title: str = "") -> str:
    """The Markdown subset written here (#/## headings, paragraphs, pipe tables) as a standalone
    HTML page."""
    body, table = [], []

    def flush():
        if table:
            head, *rows = [r for r in table if not set(r.replace("|", "").strip()) <= {"-"}]
            cells = lambda r: [html.escape(c.strip()) for c in r.strip().strip("|").split("|")]  # noqa: E731
            body.append(
                "<table><thead><tr>"
                + "".join(f"<th>{c}</th>" for c in cells(head))
                + "</tr></thead><tbody>"
                + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in cells(r)) + "</tr>" for r in rows)
                + "</tbody></table>"
            )
            table.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("## "):
            body.append(f"<h3>{html.escape(line[3:])}</h3>")
        elif line.startswith("# "):
            body.append(f"<h2>{html.escape(line[2:])}</h2>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    flush()
    style = (
        "body{font-family:sans-serif;font-size:14px;margin:1em}table{border-collapse:collapse;"
        "margin-bottom:1.5em}th,td{border:1px solid #bbb;padding:3px 8px;text-align:right}"
        "th{background:#eee}td:first-child,th:first-child{text-align:left}p{max-width:60em}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )


def readme_tables(tables_dir: str | Path = "results/tables") -> str:
    """The README's findings tables (sculpting, CATHODE SIC, required injection) from the run's
    Parquet tables."""
    d = Path(tables_dir)
    parts = []
    for stem, fn in (
        ("cathode_sculpting", sculpting_md),
        ("cathode_sensitivity", sensitivity_md),
        ("cathode_required_injection", required_md),
    ):
        path = d / f"{stem}.parquet"
        if path.exists():
            frame = read_parquet(path, None, finite=False)
            if stem == "cathode_sensitivity":
                frame = frame[frame["method"] == "cathode"]
            parts.append(fn(frame))
    nplm = d / "nplm.parquet"
    if nplm.exists():
        parts.append(nplm_md(read_parquet(nplm, None, finite=False), pd.DataFrame()))
    if not parts:
        raise SaladError(f"{d}: no result tables (run the pipeline first)")
    # one level down: the README has its own top-level headings
    shifted = [
        "\n".join(("#" + line if line.startswith("#") else line) for line in p.strip().splitlines())
        for p in parts
    ]
    return "\n\n".join(shifted) + "\n"


def write(text: str, path) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def cli(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="salad tables", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readme", action="store_true", help="print the README's findings tables")
    parser.add_argument("--dir", default="results/tables", help="the run's tables folder")
    parser.add_argument("--html", nargs=2, metavar=("IN_MD", "OUT_HTML"), help="Markdown table -> HTML page")
    args = parser.parse_args(argv)
    if args.html:
        src = Path(args.html[0])
        if not src.exists():
            raise SaladError(f"{src}: no such table")
        write(markdown_to_html(src.read_text(), src.stem), args.html[1])
    elif args.readme:
        print(readme_tables(args.dir), end="")
    else:
        parser.error("give --readme or --html")
