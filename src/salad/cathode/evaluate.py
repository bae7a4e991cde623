"""evaluate: sensitivity and sculpting per (setup, signal), then the summary tables.

`evaluate sensitivity` (one setup, one signal, every strength x instance): classifiers =
encoder seeds x flows x BDTs, randomly grouped (seed from config + setup) into ensembles of
`ensemble_size` whose scores are averaged; per ensemble and working point eps_B: SIC =
eps_S / sqrt(eps_B) and post-selection Asimov significance of S = eps_S N_S over
B = eps_B N_B (N_S, N_B: true signal / background events of the SR pseudo-data; truth used
only here). Same for the references (`iad`, `supervised`: seeds x BDTs). Sculpting (strength
0 datasets only): AUC of each classifier's out-of-fold scores, SR data (= true background)
vs template, with a bootstrap error, its ROC curve, and per ensemble the m_yy spectrum of
all data before/after keeping the most signal-like `sculpting_efficiency` of SR data
(chi^2/ndf of a flat selection efficiency and the JSD of the normalised spectra).

Outputs (Parquet): sensitivity (setup, signal, strength, instance, method, ensemble, eps_b,
eps_s, sic, significance, n_sig, n_bkg), sculpting_auc (setup, signal, instance, classifier,
auc, auc_boot_std), sculpting_roc (setup, signal, instance, classifier, fpr, tpr),
sculpting_mass (setup, signal, instance, ensemble, bin_lo, bin_hi, n_before, n_after, chi2,
ndf, jsd).

`evaluate tables`: the Parquet + Markdown tables under results/tables/ (see `tables`).
`evaluate plot ...`: figures (salad.cathode.plots).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..artifacts import atomic_output, provenance, read_parquet, write_parquet
from ..config import parse_stage_config
from ..errors import SaladError
from . import PSEUDODATA_COLUMNS, LOG, region_masks, setup_logging, stable_seed
from . import metrics
from ..tables import render
from .classify import read_scores, score_columns

DEFAULTS = {"working_points": [0.001, 0.005], "target_significance": 3.0, "ensemble_size": 2,
            "sculpting_efficiency": 0.2, "mass_bins": 22, "bootstrap": 50, "seed": 0,
            "tsne_events": 1500}
FPR_GRID = np.linspace(0.0, 1.0, 101)
SENS_COLS = ["setup", "signal", "strength", "instance", "method", "ensemble", "eps_b", "eps_s",
             "sic", "significance", "n_sig", "n_bkg"]


def settings(cfg: Mapping | None) -> dict:
    return {**DEFAULTS, **{k: v for k, v in (cfg or {}).items() if k in DEFAULTS}}


def dataset_key(path, depth: int) -> tuple[float, int]:
    """(strength, instance) from an artifact path: `depth` = position of the instance
    component from the end (1 for pseudodata/.../{strength}/{instance}.parquet and for
    reference files, 2 for score files .../{strength}/{instance}/{flow}.parquet)."""
    parts = Path(path).parts
    inst = Path(parts[-depth]).stem
    try:
        return float(parts[-depth - 1]), int(inst)
    except (ValueError, IndexError):
        raise SaladError(f"{path}: cannot read strength/instance from the path") from None


def _aligned(frame: pd.DataFrame, ids: np.ndarray, prefix: str, path) -> np.ndarray:
    """Score matrix (len(ids), n) of the `sr`/`sb` rows of `frame`, in the order of `ids`."""
    cols = score_columns(frame, prefix)
    rows = frame[frame["role"].isin(["sr", "sb"])].set_index("event_id")
    missing = np.setdiff1d(ids, rows.index.to_numpy())
    if len(missing):
        raise SaladError(f"{path}: {len(missing)} data event(s) without a score "
                         f"(e.g. event_id {int(missing[0])})")
    return rows.loc[ids, cols].to_numpy(np.float64)


def working_point_rows(score, is_sig, wps, base: dict) -> list[dict]:
    """Rows of the sensitivity table for one averaged score over SR data."""
    n_sig, n_bkg = int(is_sig.sum()), int((~is_sig).sum())
    rows = []
    for eps_b in wps:
        if n_sig and n_bkg:
            eps_s = metrics.signal_efficiency(score, is_sig, eps_b)
            sic = eps_s / np.sqrt(eps_b)
            sig = metrics.significance(n_sig, n_bkg, eps_s, eps_b)
        else:
            eps_s, sic, sig = np.nan, np.nan, 0.0
        rows.append({**base, "eps_b": eps_b, "eps_s": eps_s, "sic": sic, "significance": sig,
                     "n_sig": n_sig, "n_bkg": n_bkg})
    return rows


def sensitivity(setup: str, signal: str, datasets: Mapping, cfg: Mapping, signal_region,
                window) -> dict[str, pd.DataFrame]:
    """All evaluation frames. datasets: {(strength, instance): {data, scores: [paths],
    references: [paths]}} (score/reference paths in a fixed classifier order)."""
    cfg = settings(cfg)
    wps = list(cfg["working_points"])
    sens, aucs, rocs, masses = [], [], [], []
    ens_seed = stable_seed(cfg["seed"], setup)
    for (strength, instance), files in sorted(datasets.items()):
        truth = read_parquet(files["data"], PSEUDODATA_COLUMNS)
        sr, _ = region_masks(truth["myy"].to_numpy(), signal_region, window)
        ids = truth.loc[sr, "event_id"].to_numpy()
        is_sig = truth.loc[sr, "is_signal"].to_numpy(bool)
        frames = [read_scores(p) for p in files["scores"]]
        cathode = np.hstack([_aligned(f, ids, "score", p) for f, p in zip(frames, files["scores"])])
        methods = {"cathode": cathode}
        refs = [read_scores(p, ("iad", "sup")) for p in files["references"]]
        if refs:
            methods["iad"] = np.hstack([_aligned(f, ids, "iad", p)
                                        for f, p in zip(refs, files["references"])])
            methods["supervised"] = np.hstack([_aligned(f, ids, "sup", p)
                                               for f, p in zip(refs, files["references"])])
        base = {"setup": setup, "signal": signal, "strength": strength, "instance": instance}
        for method, scores in methods.items():
            groups = metrics.ensembles(scores.shape[1], cfg["ensemble_size"], ens_seed)
            for e, members in enumerate(groups):
                sens += working_point_rows(scores[:, members].mean(1), is_sig, wps,
                                           {**base, "method": method, "ensemble": e})
        if strength == 0:
            a, r = _sculpting_auc(frames, files["scores"], cfg, base)
            aucs += a
            rocs += r
            masses += _sculpting_mass(frames, files["scores"], truth, signal_region, window,
                                      cfg, ens_seed, base)
    return {"sensitivity": pd.DataFrame(sens, columns=SENS_COLS),
            "sculpting_auc": pd.DataFrame(aucs, columns=["setup", "signal", "strength", "instance",
                                                         "classifier", "auc", "auc_boot_std"]),
            "sculpting_roc": pd.DataFrame(rocs, columns=["setup", "signal", "strength", "instance",
                                                         "classifier", "fpr", "tpr"]),
            "sculpting_mass": pd.DataFrame(masses, columns=[
                "setup", "signal", "strength", "instance", "ensemble", "bin_lo", "bin_hi",
                "n_before", "n_after", "chi2", "ndf", "jsd"])}


def _sculpting_auc(frames, paths, cfg, base) -> tuple[list, list]:
    """Per classifier: AUC (SR data vs its own template, out-of-fold) and ROC on FPR_GRID."""
    aucs, rocs, c = [], [], 0
    for frame, path in zip(frames, paths):
        part = frame[frame["role"].isin(["sr", "template"])]
        label = (part["role"] == "sr").to_numpy()
        for col in score_columns(frame):
            s, w = part[col].to_numpy(), part["weight"].to_numpy()
            value = metrics.auc(s, label, w)
            err = metrics.bootstrap_auc(s, label, w, cfg["bootstrap"],
                                        stable_seed(cfg["seed"], path, col))
            aucs.append({**base, "classifier": c, "auc": value, "auc_boot_std": err})
            fpr, tpr = metrics.roc_curve(s, label, w)
            grid_tpr = metrics.tpr_at(fpr, tpr, FPR_GRID)
            rocs += [{**base, "classifier": c, "fpr": x, "tpr": y}
                     for x, y in zip(FPR_GRID, grid_tpr)]
            c += 1
    return aucs, rocs


def _sculpting_mass(frames, paths, truth, signal_region, window, cfg, ens_seed, base) -> list:
    """Per ensemble: m_yy histograms of all data before/after the cut, chi^2, ndf, JSD."""
    ids = truth["event_id"].to_numpy()
    myy = truth["myy"].to_numpy(np.float64)
    inside = (myy >= window[0]) & (myy <= window[1])
    ids, myy = ids[inside], myy[inside]
    sr, _ = region_masks(myy, signal_region, window)
    scores = np.hstack([_aligned(f, ids, "score", p) for f, p in zip(frames, paths)])
    edges = np.linspace(window[0], window[1], int(cfg["mass_bins"]) + 1)
    before, _ = np.histogram(myy, edges)
    rows = []
    for e, members in enumerate(metrics.ensembles(scores.shape[1], cfg["ensemble_size"], ens_seed)):
        s = scores[:, members].mean(1)
        cut = np.quantile(s[sr], 1 - cfg["sculpting_efficiency"])
        after, _ = np.histogram(myy[s >= cut], edges)
        chi2, ndf = metrics.selection_flatness(before, after)
        jsd = metrics.jensen_shannon(before, after) if after.sum() else np.nan
        rows += [{**base, "ensemble": e, "bin_lo": lo, "bin_hi": hi, "n_before": int(b),
                  "n_after": int(a), "chi2": chi2, "ndf": ndf, "jsd": jsd}
                 for lo, hi, b, a in zip(edges[:-1], edges[1:], before, after)]
    return rows


# ---------------------------------------------------------------- summary tables

def summarise(sens: pd.DataFrame, target: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(sensitivity summary, required injection) from the per-ensemble sensitivity rows.

    Summary: mean and standard deviation over data instances x ensembles per (setup, signal,
    method, eps_b, strength). Required injection: strength where the mean significance
    reaches `target` (linear interpolation; `reached` False = not within the scan, value is
    the largest strength, a lower bound); lo/hi from the mean +/- std curves.
    """
    keys = ["setup", "signal", "method", "eps_b", "strength"]
    summary = (sens.groupby(keys, as_index=False)
               .agg(sic_mean=("sic", "mean"), sic_std=("sic", "std"),
                    significance_mean=("significance", "mean"),
                    significance_std=("significance", "std"), n=("sic", "size"))
               .fillna({"sic_std": 0.0, "significance_std": 0.0}))
    rows = []
    for key, g in summary.groupby(keys[:-1]):
        s, m, d = (g[c].to_numpy() for c in ("strength", "significance_mean", "significance_std"))
        value, reached = metrics.required_strength(s, m, target)
        lo, _ = metrics.required_strength(s, m + d, target)
        hi, hi_reached = metrics.required_strength(s, m - d, target)
        rows.append({**dict(zip(keys[:-1], key)), "required_strength": value, "reached": reached,
                     "required_lo": lo, "required_hi": hi if hi_reached else np.inf})
    return summary, pd.DataFrame(rows)


def sculpting_summary(aucs: pd.DataFrame, mass: pd.DataFrame) -> pd.DataFrame:
    """Per setup: AUC mean, spread over classifiers x no-injection datasets, bootstrap error;
    chi^2/ndf and JSD averaged over ensembles x datasets.

    The no-injection datasets do not depend on the signal, so several signals usually share
    them (their evaluation rows are then identical); rows are de-duplicated on their content
    first, so every distinct (dataset, classifier) counts once. `datasets` = distinct
    no-injection instances pooled."""
    a = aucs.drop_duplicates(["setup", "instance", "classifier", "auc"])
    a = a.assign(dataset=a["signal"].astype(str) + "/" + a["instance"].astype(str))
    a = a.groupby("setup", as_index=False).agg(
        auc_mean=("auc", "mean"), auc_std=("auc", "std"), auc_boot_std=("auc_boot_std", "mean"),
        classifiers=("auc", "size"), datasets=("dataset", "nunique"))
    per_ens = mass.drop_duplicates(["setup", "instance", "ensemble", "chi2", "jsd"])
    per_ens = per_ens.assign(chi2_ndf=per_ens["chi2"] / per_ens["ndf"].clip(lower=1))
    m = per_ens.groupby("setup", as_index=False).agg(
        chi2_ndf=("chi2_ndf", "mean"), ndf=("ndf", "first"), jsd=("jsd", "mean"))
    return a.merge(m, on="setup", how="outer")


def markdown(frame: pd.DataFrame, title: str, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table (floats rounded to `digits` significant digits)."""
    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return "nan" if np.isnan(v) else ("inf" if np.isinf(v) else f"{v:.{digits}g}")
        return str(v)
    lines = [f"# {title}", "", "| " + " | ".join(frame.columns) + " |",
             "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_table(frame: pd.DataFrame, stem: str, title: str, cfg) -> None:
    write_parquet(frame, f"{stem}.parquet", provenance("evaluate", cfg))
    with atomic_output(f"{stem}.md") as tmp:
        tmp.write_text(render(Path(stem).name, frame, title))


def _concat(paths) -> pd.DataFrame:
    frames = [read_parquet(p) for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def tables(sens_paths, auc_paths, mass_paths, out_dir, cfg) -> None:
    """Write cathode_sensitivity, cathode_required_injection, cathode_sculpting (.parquet/.md)."""
    out = Path(out_dir)
    summary, required = summarise(_concat(sens_paths), settings(cfg)["target_significance"])
    write_table(summary, out / "cathode_sensitivity",
                "CATHODE sensitivity: SIC and post-selection significance vs injected S/sqrt(B)", cfg)
    write_table(required, out / "cathode_required_injection",
                f"Injected S/sqrt(B) needed for {settings(cfg)['target_significance']:g} sigma "
                "after selection", cfg)
    sculpt = sculpting_summary(_concat(auc_paths), _concat(mass_paths))
    write_table(sculpt, out / "cathode_sculpting",
                "Sculpting check (no injected signal): template vs true SR background", cfg)


def cli(argv=None) -> None:
    parser = argparse.ArgumentParser(description="CATHODE evaluation: sensitivity, tables, plots.")
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("sensitivity")
    p.add_argument("--setup", required=True)
    p.add_argument("--signal", required=True)
    p.add_argument("--data", nargs="+", required=True, help="pseudodata/{signal}/{strength}/{instance}.parquet")
    p.add_argument("--scores", nargs="+", required=True, help=".../{strength}/{instance}/{flow}.parquet")
    p.add_argument("--references", nargs="*", default=[], help=".../{strength}/{instance}.parquet")
    p.add_argument("--output-dir", required=True)
    t = sub.add_parser("tables")
    t.add_argument("--sensitivity", nargs="+", required=True)
    t.add_argument("--sculpting-auc", nargs="*", default=[])
    t.add_argument("--sculpting-mass", nargs="*", default=[])
    t.add_argument("--output-dir", required=True)
    for q in (p, t):
        q.add_argument("--config", default="")
        q.add_argument("--log", default=None)
        q.add_argument("--threads", type=int, default=1)
    pl = sub.add_parser("plot", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.mode == "plot":
        from . import plots
        plots.cli(rest)
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    del pl
    setup_logging(args.log)
    cfg = parse_stage_config(args.config)
    ecfg = cfg.get("evaluate", {})
    if args.mode == "tables":
        tables(args.sensitivity, args.sculpting_auc, args.sculpting_mass, args.output_dir, cfg)
        return
    datasets: dict = {}
    for path in args.data:
        datasets.setdefault(dataset_key(path, 1), {"scores": [], "references": []})["data"] = path
    for path in args.scores:
        _entry(datasets, dataset_key(path, 2), path)["scores"].append(path)
    for path in args.references:
        _entry(datasets, dataset_key(path, 1), path)["references"].append(path)
    LOG.info("evaluating %s / %s on %d datasets", args.setup, args.signal, len(datasets))
    frames = sensitivity(args.setup, args.signal, datasets, ecfg,
                         cfg["regions"]["signal_region"], cfg["window"])
    for name, frame in frames.items():
        write_parquet(frame, Path(args.output_dir) / f"{name}.parquet", provenance("evaluate", cfg))


def _entry(datasets, key, path) -> dict:
    if key not in datasets:
        raise SaladError(f"{path}: no pseudo-data file given for strength {key[0]:g}, "
                         f"instance {key[1]}")
    return datasets[key]
