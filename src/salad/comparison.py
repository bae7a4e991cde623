"""paper-comparison: this run's tables against the headline claims of papers A and B.

A claims file (config/paper_claims.yaml) lists each claim with the paper's value, where the
paper states it, and how this run's value is computed (`kind` + selection). `compare(claims,
tables)` evaluates every claim on the run's tables {name: DataFrame} (a claim whose table or
rows are absent is "not covered by this config") and returns one row per claim:
paper, claim, source, paper_value, run_value, stat, syst, pull, conditions, verdict.

Kinds (n = claim `n_sigma`, default 2):
  value     run = a metric (SIC of CATHODE at (setup, signal, eps_b, strength) or the sculpting
            AUC of a setup); agrees if |run - paper| <= n * sqrt(stat^2 + syst^2 + paper_err^2)
  ratio     run = SIC(numerator) / SIC(denominator) on matched pseudo-data sets (the instances
            both setups ran on; per-instance table), per signal with relative errors added in
            quadrature (stat and syst separately), combined over the signals by the
            inverse-variance weighted mean (every signal's ratio listed); agrees as `value`
  ordering  SIC chain, e.g. ID >= IP >= EP > bkg_only, per signal on which the middle setups
            were held out (table column held_out); consecutive present setups compared:
            '>=' holds unless b - a > n * sigma_diff, '>' holds if a - b > 0;
            run = fraction of comparisons that hold; agrees if all hold
  greater   every setup of `better` above every setup of `worse` on a metric (linear accuracy,
            NPLM median Z per signal at the largest strength); '>' as in ordering
  majority  fraction of signals where the first held-out setup matching `setups` needs less
            injection for the target significance than `reference` (reached vs not reached
            counts as less); stat = binomial sqrt(f(1-f)/N); agrees if f > 1/2
  trend     metric at the largest minus at the smallest D of a dimension-scan family; agrees
            if > 0 (rising)

Outputs: results/tables/paper_comparison.{parquet,md}.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .artifacts import atomic_output, provenance, read_parquet, write_parquet
from .config import load_yaml
from .errors import SaladError
from .tables import fmt, md_table, number, percent, signal_label

AGREES, DIFFERS, NOT_COVERED = "agrees", "differs", "not covered by this config"
COLUMNS = [
    "paper",
    "claim",
    "source",
    "paper_value",
    "run_value",
    "stat",
    "syst",
    "pull",
    "conditions",
    "verdict",
]
KINDS = ("value", "ratio", "ordering", "greater", "majority", "trend")
HEADER = (
    "Our detector simulation (Delphes) and generator (Pythia 8, LO) differ from the papers', "
    "and the laptop configurations are far smaller: absolute SIC, AUC and Z values are not "
    "expected to match; ratios and orderings are the comparable quantities. Errors: "
    "stat (finite evaluation set, pseudo-data instances, NPLM/linear-probe seeds) and "
    "syst (training of the ML models: spread over classifier ensembles)."
)


class _NotCovered(Exception):
    """The run's tables do not hold what a claim needs (message: what is missing)."""


# ---------------------------------------------------------------- claims file
def load_claims(path, doc: Mapping | None = None) -> tuple[str, list[dict]]:
    """(header, claims) of a claims YAML file (or of its already parsed content `doc`, named
    `path` in errors); every claim needs id, paper, claim, source, paper_value and a known kind.
    Raises SaladError naming the file and claim."""
    doc = (load_yaml(path) if doc is None else doc) or {}
    claims = doc.get("claims")
    if not isinstance(claims, list) or not claims:
        raise SaladError(f"{path}: expected a non-empty list 'claims'")
    for i, claim in enumerate(claims):
        where = f"{path}: claims[{i}] ({claim.get('id', '?') if isinstance(claim, dict) else claim})"
        if not isinstance(claim, dict):
            raise SaladError(f"{where}: expected a mapping")
        missing = [k for k in ("id", "paper", "claim", "source", "paper_value", "kind") if k not in claim]
        if missing:
            raise SaladError(f"{where}: missing key(s) {', '.join(missing)}")
        if claim["kind"] not in KINDS:
            raise SaladError(f"{where}: kind {claim['kind']!r} is not one of {', '.join(KINDS)}")
    return str(doc.get("header", HEADER)), claims


# ---------------------------------------------------------------- table access
def _table(tables: Mapping[str, pd.DataFrame], name: str) -> pd.DataFrame:
    frame = tables.get(name)
    if frame is None or not len(frame):
        raise _NotCovered(f"no {name} table")
    return frame


def _near(frame: pd.DataFrame, column: str, value) -> pd.DataFrame:
    """Rows at `value` of a float column ('max': its largest value)."""
    if not len(frame):
        return frame
    target = frame[column].astype(float).max() if value == "max" else float(value)
    return frame[np.isclose(frame[column].astype(float), target)]


def _q(*errors) -> float:
    """Quadrature sum, NaN counted as 0."""
    return float(math.sqrt(sum(float(e) ** 2 for e in errors if e is not None and np.isfinite(e))))


def _sic_rows(tables, claim, setup=None, signal=None) -> pd.DataFrame:
    """cathode_sensitivity rows of CATHODE at the claim's eps_b and strength."""
    frame = _table(tables, "cathode_sensitivity")
    frame = frame[frame["method"] == "cathode"]
    frame = _near(frame, "eps_b", claim.get("eps_b", 0.005))
    frame = _near(frame, "strength", claim.get("strength", "max"))
    if setup is not None:
        frame = frame[frame["setup"] == setup]
    if signal is not None:
        frame = frame[frame["signal"] == signal]
    return frame


def _sic_point(row: pd.Series) -> tuple[float, float, float]:
    """(SIC, stat, syst): stat = evaluation-set error (+) instance x ensemble spread / sqrt(n)."""
    n = max(int(row.get("n", 1)), 1)
    return (
        float(row["sic_mean"]),
        _q(row.get("sic_err"), row.get("sic_std", 0.0) / math.sqrt(n)),
        _q(row.get("sic_syst")),
    )


def _where(claim, frame: pd.DataFrame | None = None) -> str:
    """Strength and working point of a SIC claim (the resolved strength when rows are given)."""
    strength = claim.get("strength", "max")
    if frame is not None and len(frame):
        strength = f"{float(frame['strength'].max()):g}"
    return f"S/√B = {strength}, εB = {percent(claim.get('eps_b', 0.005))}"


# ---------------------------------------------------------------- kinds
def _value(claim, tables) -> dict:
    sel = claim.get("select", {})
    if claim.get("metric", "sic") == "auc":
        frame = _table(tables, "cathode_sculpting")
        frame = frame[frame["setup"] == sel.get("setup", "ID")]
        if not len(frame):
            raise _NotCovered(f"no sculpting rows of {sel.get('setup', 'ID')}")
        row = frame.iloc[0]
        return {
            "run_value": float(row["auc_mean"]),
            "stat": _q(row.get("auc_boot_std")),
            "syst": _q(row.get("auc_std")),
            "conditions": f"{sel.get('setup', 'ID')}, no injection, {int(row.get('datasets', 0))} "
            f"data set(s) x {int(row.get('classifiers', 0) or 0)} classifiers",
        }
    frame = _sic_rows(tables, claim, sel.get("setup"), sel.get("signal"))
    if not len(frame):
        raise _NotCovered(f"no SIC of {sel.get('setup')} on {sel.get('signal')} at {_where(claim)}")
    value, stat, syst = _sic_point(frame.iloc[0])
    return {
        "run_value": value,
        "stat": stat,
        "syst": syst,
        "conditions": f"{sel.get('setup')}, {signal_label(sel.get('signal'))}, {_where(claim)}",
    }


def _matched_sic(frame: pd.DataFrame, instances) -> tuple[float, float, float]:
    """Mean SIC over the given instances of per-instance rows, with stat and syst errors."""
    g = frame[frame["instance"].isin(instances)]
    spread = float(g["sic_mean"].std(ddof=1) / math.sqrt(len(g))) if len(g) > 1 else 0.0
    return (
        float(g["sic_mean"].mean()),
        _q(float(g["sic_err"].mean()), spread),
        _q(float(g["sic_syst"].mean())) if g["sic_syst"].notna().any() else 0.0,
    )


def _ratio(claim, tables) -> dict:
    num, den = claim["numerator"], claim["denominator"]
    frame = _table(tables, "cathode_sensitivity_instances")
    frame = _near(frame[frame["method"] == "cathode"], "eps_b", claim.get("eps_b", 0.005))
    common = set(frame.loc[frame["setup"] == num, "strength"]) & set(
        frame.loc[frame["setup"] == den, "strength"]
    )
    common = {s for s in common if s > 0}
    if not common:
        raise _NotCovered(f"no injected pseudo-data set with both {num} and {den}")
    strength = max(common) if claim.get("strength", "max") == "max" else float(claim["strength"])
    frame = _near(frame, "strength", strength)
    ratios, parts = [], []
    for signal in sorted(set(frame["signal"])):
        a, b = (frame[(frame["signal"] == signal) & (frame["setup"] == s)] for s in (num, den))
        instances = sorted(set(a["instance"]) & set(b["instance"]))
        if not instances:
            continue
        (va, sa, ya), (vb, sb, yb) = _matched_sic(a, instances), _matched_sic(b, instances)
        if vb <= 0:
            continue
        r = va / vb
        ratios.append((r, r * _q(sa / va if va else 0, sb / vb), r * _q(ya / va if va else 0, yb / vb)))
        parts.append(
            f"{signal_label(signal)} {r:.3g} ± {_q(ratios[-1][1], ratios[-1][2]):.2g}"
            f" (instances {', '.join(map(str, instances))})"
        )
    if not ratios:
        raise _NotCovered(f"no matched pseudo-data set with a positive SIC of {den}")
    r = np.array(ratios)
    # inverse-variance weighted mean over signals: a signal on which the denominator finds almost
    # nothing (SIC ~ 0, ratio with a huge error) must not dominate the combination
    w = 1.0 / np.maximum(r[:, 1] ** 2 + r[:, 2] ** 2, 1e-24)
    return {
        "run_value": float((w * r[:, 0]).sum() / w.sum()),
        "stat": float(math.sqrt((w**2 * r[:, 1] ** 2).sum()) / w.sum()),
        "syst": float(math.sqrt((w**2 * r[:, 2] ** 2).sum()) / w.sum()),
        "conditions": f"SIC {num} / {den}, S/√B = {strength:g}, εB = {percent(claim.get('eps_b', 0.005))}, "
        f"same data, per signal (inverse-variance weighted mean): {'; '.join(parts)}",
    }


def _holds(a: float, sa: float, b: float, sb: float, relation: str, n_sigma: float) -> bool:
    """a `relation` b: '>' if a - b > 0; '>=' unless b - a > n_sigma * sqrt(sa^2 + sb^2)."""
    if relation == ">":
        return a - b > 0
    if relation == ">=":
        return b - a <= n_sigma * _q(sa, sb)
    raise SaladError(f"unknown relation {relation!r} (use '>' or '>=')")


def _ordering(claim, tables) -> dict:
    chain, relations = list(claim["chain"]), list(claim["relations"])
    if len(relations) != len(chain) - 1:
        raise SaladError(f"claim {claim['id']}: {len(chain)} setups need {len(chain) - 1} relations")
    frame = _sic_rows(tables, claim)
    n_sigma = float(claim.get("n_sigma", 2.0))
    checks, parts = [], []
    for signal in sorted(set(frame["signal"])):
        rows = {r["setup"]: r for _, r in frame[frame["signal"] == signal].iterrows()}
        present = [
            i
            for i, s in enumerate(chain)
            if s in rows and (i in (0, len(chain) - 1) or bool(rows[s]["held_out"]))
        ]
        if len(present) < 3 or present[0] != 0 or present[-1] != len(chain) - 1:
            continue
        text = []
        for i, j in zip(present, present[1:]):
            rel = ">" if ">" in relations[i:j] else ">="
            (a, sa, ya), (b, sb, yb) = _sic_point(rows[chain[i]]), _sic_point(rows[chain[j]])
            ok = _holds(a, _q(sa, ya), b, _q(sb, yb), rel, n_sigma)
            checks.append(ok)
            text.append(f"{chain[i]} {number(a)} {rel if ok else 'NOT ' + rel} {chain[j]} {number(b)}")
        parts.append(f"{signal_label(signal)}: " + ", ".join(text))
    if not checks:
        raise _NotCovered(
            f"no signal held out by any of {', '.join(chain[1:-1])} with rows of {chain[0]} and {chain[-1]}"
        )
    return {
        "run_value": float(np.mean(checks)),
        "conditions": f"{_where(claim, frame)}; " + "; ".join(parts),
        "verdict": AGREES if all(checks) else DIFFERS,
    }


def _metric_points(claim, tables) -> dict[tuple, tuple[float, float]]:
    """{(representation, signal): (value, error)} of a `greater` claim's metric."""
    metric = claim.get("metric", "accuracy")
    if metric == "accuracy":
        frame = _table(tables, "linear_eval")
        out = {}
        for _, r in frame.iterrows():
            err = r.get("accuracy_sem")
            if err is None or not np.isfinite(err):
                err = r.get("accuracy_fold_sem", 0.0)
            out[(r["representation"], "")] = (float(r["accuracy"]), float(err))
        return out
    if metric == "z":
        frame = _table(tables, "nplm")
        frame = frame[np.isfinite(frame["z_median"].astype(float))]
        parts = [_near(g, "strength", claim.get("strength", "max")) for _, g in frame.groupby("signal")]
        frame = pd.concat(parts) if parts else frame
        out = {}
        for (rep, sig), g in frame.groupby(["representation", "signal"]):
            z = g["z_median"].astype(float)
            out[(rep, sig)] = (
                float(z.mean()),
                float(z.std(ddof=1) / math.sqrt(len(z))) if len(z) > 1 else 0.0,
            )
        return out
    raise SaladError(f"claim {claim['id']}: unknown metric {metric!r} (accuracy, z)")


def _greater(claim, tables) -> dict:
    points = _metric_points(claim, tables)
    n_sigma = float(claim.get("n_sigma", 2.0))
    checks, parts = [], []
    for signal in sorted({s for _, s in points}):
        for a in claim["better"]:
            for b in claim["worse"]:
                if (a, signal) in points and (b, signal) in points:
                    (va, sa), (vb, sb) = points[(a, signal)], points[(b, signal)]
                    ok = _holds(va, sa, vb, sb, ">", n_sigma)
                    checks.append(ok)
                    where = f"{signal_label(signal)}: " if signal else ""
                    parts.append(f"{where}{a} {fmt(va, sa)} {'>' if ok else 'NOT >'} {b} {fmt(vb, sb)}")
    if not checks:
        raise _NotCovered(f"no pair of ({', '.join(claim['better'])}) and ({', '.join(claim['worse'])})")
    return {
        "run_value": float(np.mean(checks)),
        "conditions": "; ".join(parts),
        "verdict": AGREES if all(checks) else DIFFERS,
    }


def _majority(claim, tables) -> dict:
    frame = _table(tables, "cathode_required_injection")
    frame = frame[frame["method"] == "cathode"]
    frame = _near(
        frame,
        "eps_b",
        claim.get("eps_b", "min")
        if claim.get("eps_b", "min") != "min"
        else frame["eps_b"].astype(float).min(),
    )
    ref = claim["reference"]
    wins, parts = [], []
    for signal in sorted(set(frame["signal"])):
        rows = frame[frame["signal"] == signal]
        held = rows[rows["held_out"].astype(bool)]
        cand = next(
            (
                s
                for pat in claim["setups"]
                for s in sorted(held["setup"])
                if fnmatch.fnmatchcase(s, pat) and s != ref
            ),
            None,
        )
        base = rows[rows["setup"] == ref]
        if cand is None or not len(base):
            continue
        c, b = held[held["setup"] == cand].iloc[0], base.iloc[0]
        better = bool(c["reached"]) and (
            not bool(b["reached"]) or float(c["required_strength"]) < float(b["required_strength"])
        )
        wins.append(better)
        show = lambda r: number(r["required_strength"]) + ("" if r["reached"] else "↑")  # noqa: E731
        parts.append(f"{signal_label(signal)}: {cand} {show(c)} vs {ref} {show(b)}")
    if len(wins) < int(claim.get("min_signals", 2)):
        raise _NotCovered(
            f"{len(wins)} signal(s) with a held-out setup and {ref} (needs {claim.get('min_signals', 2)})"
        )
    f = float(np.mean(wins))
    return {
        "run_value": f,
        "stat": math.sqrt(f * (1 - f) / len(wins)),
        "conditions": f"{sum(wins)}/{len(wins)} signals; " + "; ".join(parts),
        "verdict": AGREES if f > 0.5 else DIFFERS,
    }


def _trend(claim, tables) -> dict:
    frame = _table(tables, "dimension_scan")
    metric, err = claim.get("metric", "accuracy"), claim.get("error", "accuracy_sem")
    g = frame[frame["family"] == claim["family"]].dropna(subset=[metric])
    g = g.drop_duplicates("dim").sort_values("dim")
    if len(g) < 2:
        raise _NotCovered(f"fewer than two latent sizes with {metric} in family {claim['family']}")
    lo, hi = g.iloc[0], g.iloc[-1]
    errs = [float(r[err]) if err in r and np.isfinite(r[err]) else 0.0 for r in (lo, hi)]
    diff = float(hi[metric] - lo[metric])
    return {
        "run_value": diff,
        "stat": _q(*errs),
        "conditions": f"{claim['family']}: {metric} "
        + ", ".join(f"D={int(r['dim'])}: {number(r[metric])}" for _, r in g.iterrows()),
        "verdict": AGREES if diff > 0 else DIFFERS,
    }


_KIND = {
    "value": _value,
    "ratio": _ratio,
    "ordering": _ordering,
    "greater": _greater,
    "majority": _majority,
    "trend": _trend,
}


def verdict(
    run: float, stat: float, syst: float, paper: float, paper_err: float = 0.0, n_sigma: float = 2.0
) -> tuple[str, float]:
    """(verdict, pull) of a value: pull = (run - paper) / sqrt(stat^2 + syst^2 + paper_err^2);
    agrees if |pull| <= n_sigma (no error at all: agrees only if equal)."""
    sigma = _q(stat, syst, paper_err)
    if sigma == 0:
        return (AGREES if run == paper else DIFFERS), (
            0.0 if run == paper else math.copysign(math.inf, run - paper)
        )
    pull = (run - paper) / sigma
    return (AGREES if abs(pull) <= n_sigma else DIFFERS), pull


def evaluate_claim(claim: Mapping, tables: Mapping[str, pd.DataFrame]) -> dict:
    """One output row (COLUMNS) for one claim."""
    paper_value = str(claim["paper_value"])
    if claim.get("paper_err"):
        paper_value += f" ± {claim['paper_err']}"
    row = {
        "paper": str(claim["paper"]),
        "claim": claim["claim"],
        "source": claim["source"],
        "paper_value": paper_value,
        "run_value": math.nan,
        "stat": math.nan,
        "syst": math.nan,
        "pull": math.nan,
        "conditions": "",
        "verdict": NOT_COVERED,
    }
    try:
        result = _KIND[claim["kind"]](claim, tables)
    except _NotCovered as exc:
        row["conditions"] = str(exc)
        return row
    row.update(result)
    if "verdict" not in result:
        paper = float(claim["paper_value"])
        row["verdict"], row["pull"] = verdict(
            row["run_value"],
            row["stat"],
            row["syst"],
            paper,
            float(claim.get("paper_err", 0.0)),
            float(claim.get("n_sigma", 2.0)),
        )
    return row


def compare(claims: Sequence[Mapping], tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per claim (COLUMNS), in the claims' order."""
    return pd.DataFrame([evaluate_claim(c, tables) for c in claims], columns=COLUMNS)


# ---------------------------------------------------------------- output
def markdown(frame: pd.DataFrame, header: str = HEADER) -> str:
    """The paper-vs-run table: header paragraph, counts per verdict, one row per claim."""
    show = pd.DataFrame(
        {
            "paper": frame["paper"],
            "claim": frame["claim"],
            "where": frame["source"],
            "paper value": frame["paper_value"],
            "this run ± stat ± syst": [
                fmt(v, s, y) if np.isfinite(v) else "–"
                for v, s, y in zip(frame["run_value"], frame["stat"], frame["syst"])
            ],
            "verdict": frame["verdict"],
            "conditions": frame["conditions"],
        }
    )
    counts = frame["verdict"].value_counts()
    summary = ", ".join(f"{int(counts.get(v, 0))} {v}" for v in (AGREES, DIFFERS, NOT_COVERED))
    return "\n".join(
        [
            "# Papers A and B: claims vs this run",
            "",
            header.strip(),
            "",
            f"Claims: {summary}.",
            "",
            md_table(show),
            "",
        ]
    )


def write_outputs(frame: pd.DataFrame, parquet: str, md: str, header: str = HEADER, cfg=None) -> None:
    write_parquet(frame, parquet, provenance("paper-comparison", cfg))
    with atomic_output(md) as tmp:
        tmp.write_text(markdown(frame, header))


def cli(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="salad paper-comparison",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--claims", required=True, help="claims YAML (config/paper_claims.yaml)")
    parser.add_argument(
        "--claims-json",
        help="the claims file's content as JSON (the workflow passes it as a parameter, so a moved "
        "checkout re-runs nothing); --claims then only names it",
    )
    parser.add_argument(
        "--table",
        nargs="*",
        default=[],
        metavar="NAME=PATH",
        help="run tables, e.g. cathode_sensitivity=results/tables/cathode_sensitivity.parquet",
    )
    parser.add_argument("--output", required=True, help="Parquet output")
    parser.add_argument("--markdown", required=True, help="Markdown output")
    args = parser.parse_args(argv)
    tables = {}
    for item in args.table:
        name, sep, path = item.partition("=")
        if not sep:
            raise SaladError(f"--table {item!r}: expected NAME=PATH")
        tables[name] = read_parquet(path, None, finite=False)
    doc = None
    if args.claims_json is not None:
        try:
            doc = json.loads(args.claims_json)
        except json.JSONDecodeError as exc:
            raise SaladError(f"--claims-json: not JSON ({exc})") from None
    header, claims = load_claims(args.claims, doc)
    write_outputs(
        compare(claims, tables), args.output, args.markdown, header, {"claims": str(Path(args.claims).name)}
    )
