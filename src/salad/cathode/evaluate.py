"""evaluate: sensitivity and sculpting per (setup, signal), then the summary tables.

`evaluate sensitivity` (one setup, one signal, every injected strength x instance):
classifiers = encoder seeds x BDTs (one pooled flow template per encoder and dataset),
randomly grouped (seed from config + setup) into ensembles of `ensemble_size` across encoders
and BDTs (paper A), whose scores are averaged. Efficiencies come from the independent,
truth-labelled evaluation set (salad.evalset: simulated SR background by weight + the injected
signal), scored by each classifier with the mean of its fold models: per ensemble and working
point eps_B, eps_S, SIC = eps_S / sqrt(eps_B) with its bootstrap statistical error, the
unweighted background events behind eps_B, and the post-selection Asimov significance of
S = eps_S N_S over B = eps_B N_B (N_S, N_B: true signal / background events of the SR
pseudo-data; truth used only here). `significance_data` is the same on the pseudo-data's own
out-of-fold scores. Same for the references (`iad`, `supervised`: seeds x BDTs). Sculpting
(strength 0 datasets only): AUC of each classifier's out-of-fold scores, SR data (= true
background) vs template, with a bootstrap error, its ROC curve, and per ensemble and
efficiency (`sculpting_efficiency` and every working point) the m_yy spectrum of all data
before/after keeping that fraction of the most signal-like SR data (chi^2/ndf of a flat
selection efficiency and the JSD of the normalised spectra).

Outputs (Parquet): sensitivity (SENS_COLS), sculpting_auc (setup, signal, instance,
classifier, auc, auc_boot_std), sculpting_roc (setup, signal, instance, classifier, fpr, tpr),
sculpting_mass (setup, signal, instance, ensemble, efficiency, bin_lo, bin_hi, n_before,
n_after, chi2, ndf, jsd).

`evaluate tables`: the Parquet + Markdown tables under results/tables/ (see `tables`).
`evaluate plot ...`: figures (salad.cathode.plots).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts import atomic_output, provenance, read_parquet, write_parquet
from ..cli import setup_logging, stable_seed
from ..config import merge_defaults, parse_stage_config
from ..contracts import PSEUDODATA_COLUMNS, read_evaluation_set, region_masks
from ..errors import SaladError
from ..tables import render
from . import metrics
from .classify import read_scores, score_columns
from .data import LOG

DEFAULTS = {
    "working_points": [0.001, 0.005],
    "target_significance": 3.0,
    "ensemble_size": 2,
    "sculpting_efficiency": 0.2,
    "mass_bins": 22,
    "bootstrap": 50,
    "seed": 0,
    "tsne_events": 1500,
}
FPR_GRID = np.linspace(0.0, 1.0, 101)
# the pseudo-data set a row belongs to, first in every evaluation table
SET_KEYS = ["setup", "signal", "held_out", "strength", "instance"]
SENS_COLS = [
    *SET_KEYS,
    "method",
    "ensemble",
    "eps_b",
    "eps_s",
    "eps_s_err",
    "sic",
    "sic_err",
    "significance",
    "significance_data",
    "n_sig",
    "n_bkg",
    "n_bkg_eval",
    "n_bkg_pass",
]


def settings(cfg: Mapping | None) -> dict:
    """Evaluation settings: DEFAULTS <- config `evaluate` (unknown keys are an error)."""
    return merge_defaults("evaluate", cfg, DEFAULTS)


def dataset_key(path) -> tuple[float, int]:
    """(strength, instance) from an artifact path .../{strength}/{instance}.parquet."""
    parts = Path(path).parts
    try:
        return float(parts[-2]), int(Path(parts[-1]).stem)
    except (ValueError, IndexError):
        raise SaladError(f"{path}: cannot read strength/instance from the path") from None


def _aligned(frame: pd.DataFrame, ids: np.ndarray, prefix: str, path, roles=("sr", "sb")) -> np.ndarray:
    """Score matrix (len(ids), n) of the rows of `roles` of `frame`, in the order of `ids`."""
    cols = score_columns(frame, prefix)
    rows = frame[frame["role"].isin(list(roles))].set_index("event_id")
    missing = np.setdiff1d(ids, rows.index.to_numpy())
    if len(missing):
        raise SaladError(
            f"{path}: {len(missing)} {'/'.join(roles)} event(s) without a score "
            f"(e.g. event_id {int(missing[0])})"
        )
    return rows.loc[ids, cols].to_numpy(np.float64)


def working_point_rows(
    eval_score, eval_sig, eval_w, data_score, data_sig, wps, cfg, seed: int, base: dict
) -> list[dict]:
    """Sensitivity rows of one (ensemble-averaged) classifier: efficiencies on the evaluation
    set (scores, truth, weights), significance for the SR pseudo-data's true counts, and the
    data-side significance from its own out-of-fold scores."""
    n_sig, n_bkg = int(data_sig.sum()), int((~data_sig).sum())
    ev = metrics.working_points(eval_score, eval_sig, wps, eval_w, int(cfg["bootstrap"]), seed)
    rows = []
    for i, eps_b in enumerate(wps):
        eps_s = float(ev["eps_s"][i])
        eps_s_data = metrics.signal_efficiency(data_score, data_sig, eps_b) if n_sig and n_bkg else np.nan
        rows.append(
            {
                **base,
                "eps_b": eps_b,
                "eps_s": eps_s,
                "eps_s_err": float(ev["eps_s_err"][i]),
                "sic": float(ev["sic"][i]),
                "sic_err": float(ev["sic_err"][i]),
                "significance": metrics.significance(n_sig, n_bkg, eps_s, eps_b),
                "significance_data": (
                    metrics.significance(n_sig, n_bkg, eps_s_data, eps_b) if n_sig and n_bkg else np.nan
                ),
                "n_sig": n_sig,
                "n_bkg": n_bkg,
                "n_bkg_eval": int((~eval_sig).sum()),
                "n_bkg_pass": int(ev["n_bkg_pass"][i]),
            }
        )
    return rows


def sensitivity(
    setup: str,
    signal: str,
    datasets: Mapping,
    evaluation: pd.DataFrame,
    cfg: Mapping,
    signal_region,
    window,
    held_out: bool,
) -> dict[str, pd.DataFrame]:
    """All evaluation frames. datasets: {(strength, instance): {data, scores: [paths],
    references: [paths]}} (paths in a fixed encoder-seed order); evaluation: the evaluation
    set (salad.contracts.read_evaluation_set)."""
    cfg = settings(cfg)
    wps = list(cfg["working_points"])
    sens, aucs, rocs, masses = [], [], [], []
    ens_seed = stable_seed(cfg["seed"], setup)
    evaluation = evaluation[~evaluation["is_signal"] | (evaluation["sample"] == signal)]
    if not evaluation["is_signal"].any():
        raise SaladError(f"evaluation set: no events of signal {signal}")
    eval_ids = evaluation["event_id"].to_numpy()
    eval_sig = evaluation["is_signal"].to_numpy(bool)
    eval_w = evaluation["weight"].to_numpy(np.float64)
    for (strength, instance), files in sorted(datasets.items()):
        truth = read_parquet(files["data"], PSEUDODATA_COLUMNS)
        frames = [read_scores(p) for p in files["scores"]]
        base = {
            "setup": setup,
            "signal": signal,
            "held_out": held_out,
            "strength": strength,
            "instance": instance,
        }
        if strength == 0:
            a, r = _sculpting_auc(frames, files["scores"], cfg, base)
            aucs += a
            rocs += r
            masses += _sculpting_mass(
                frames, files["scores"], truth, signal_region, window, cfg, ens_seed, base
            )
            continue
        sr, _ = region_masks(truth["myy"].to_numpy(), signal_region, window)
        ids = truth.loc[sr, "event_id"].to_numpy()
        is_sig = truth.loc[sr, "is_signal"].to_numpy(bool)
        refs = [read_scores(p, ("iad", "sup")) for p in files["references"]]
        methods = {"cathode": (frames, files["scores"], "score")}
        if refs:
            methods["iad"] = (refs, files["references"], "iad")
            methods["supervised"] = (refs, files["references"], "sup")
        for method, (fr, paths, prefix) in methods.items():
            data_scores = np.hstack([_aligned(f, ids, prefix, p) for f, p in zip(fr, paths)])
            eval_scores = np.hstack([_aligned(f, eval_ids, prefix, p, ("eval",)) for f, p in zip(fr, paths)])
            groups = metrics.ensembles(eval_scores.shape[1], cfg["ensemble_size"], ens_seed)
            for e, members in enumerate(groups):
                sens += working_point_rows(
                    eval_scores[:, members].mean(1),
                    eval_sig,
                    eval_w,
                    data_scores[:, members].mean(1),
                    is_sig,
                    wps,
                    cfg,
                    stable_seed(cfg["seed"], setup, strength, instance, method, e),
                    {**base, "method": method, "ensemble": e},
                )
    return {
        "sensitivity": pd.DataFrame(sens, columns=SENS_COLS),
        "sculpting_auc": pd.DataFrame(aucs, columns=[*SET_KEYS, "classifier", "auc", "auc_boot_std"]),
        "sculpting_roc": pd.DataFrame(rocs, columns=[*SET_KEYS, "classifier", "fpr", "tpr"]),
        "sculpting_mass": pd.DataFrame(
            masses,
            columns=[
                *SET_KEYS,
                "ensemble",
                "efficiency",
                "bin_lo",
                "bin_hi",
                "n_before",
                "n_after",
                "chi2",
                "ndf",
                "jsd",
            ],
        ),
    }


def _sculpting_auc(frames, paths, cfg, base) -> tuple[list, list]:
    """Per classifier: AUC (SR data vs its own template, out-of-fold) and ROC on FPR_GRID."""
    aucs, rocs, c = [], [], 0
    for frame, path in zip(frames, paths):
        part = frame[frame["role"].isin(["sr", "template"])]
        label = (part["role"] == "sr").to_numpy()
        for col in score_columns(frame):
            s, w = part[col].to_numpy(), part["weight"].to_numpy()
            value = metrics.auc(s, label, w)
            err = metrics.bootstrap_auc(s, label, w, cfg["bootstrap"], stable_seed(cfg["seed"], path, col))
            aucs.append({**base, "classifier": c, "auc": value, "auc_boot_std": err})
            fpr, tpr = metrics.roc_curve(s, label, w)
            grid_tpr = metrics.tpr_at(fpr, tpr, FPR_GRID)
            rocs += [{**base, "classifier": c, "fpr": x, "tpr": y} for x, y in zip(FPR_GRID, grid_tpr)]
            c += 1
    return aucs, rocs


def _sculpting_mass(frames, paths, truth, signal_region, window, cfg, ens_seed, base) -> list:
    """Per ensemble and efficiency: m_yy histograms of all data before/after the cut keeping
    that fraction of SR data, chi^2, ndf, JSD."""
    ids = truth["event_id"].to_numpy()
    myy = truth["myy"].to_numpy(np.float64)
    inside = (myy >= window[0]) & (myy <= window[1])
    ids, myy = ids[inside], myy[inside]
    sr, _ = region_masks(myy, signal_region, window)
    scores = np.hstack([_aligned(f, ids, "score", p) for f, p in zip(frames, paths)])
    edges = np.linspace(window[0], window[1], int(cfg["mass_bins"]) + 1)
    before, _ = np.histogram(myy, edges)
    efficiencies = sorted(
        {float(cfg["sculpting_efficiency"]), *map(float, cfg["working_points"])}, reverse=True
    )
    rows = []
    for e, members in enumerate(metrics.ensembles(scores.shape[1], cfg["ensemble_size"], ens_seed)):
        s = scores[:, members].mean(1)
        for eff in efficiencies:
            cut = np.quantile(s[sr], 1 - eff)
            after, _ = np.histogram(myy[s >= cut], edges)
            chi2, ndf = metrics.selection_flatness(before, after)
            jsd = metrics.jensen_shannon(before, after) if after.sum() else np.nan
            rows += [
                {
                    **base,
                    "ensemble": e,
                    "efficiency": eff,
                    "bin_lo": lo,
                    "bin_hi": hi,
                    "n_before": int(b),
                    "n_after": int(a),
                    "chi2": chi2,
                    "ndf": ndf,
                    "jsd": jsd,
                }
                for lo, hi, b, a in zip(edges[:-1], edges[1:], before, after)
            ]
    return rows


# ---------------------------------------------------------------- summary tables


def summarise(sens: pd.DataFrame, target: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(sensitivity summary, required injection) from the per-ensemble sensitivity rows.

    Summary per (setup, signal, held_out, method, eps_b, strength): mean and standard
    deviation over data instances x ensembles (`*_mean`, `*_std`); `sic_err`, the statistical
    error of the SIC from the finite evaluation set (mean of the rows' bootstrap errors: every
    row uses the same evaluation events, so their errors are fully correlated); `sic_syst`,
    the training systematic of paper A (standard deviation over ensembles within a data
    instance, averaged over instances; NaN with one ensemble); `n_bkg_eval` and `n_bkg_pass`,
    the fewest unweighted evaluation background events in the SR and passing the cut.
    Required injection: strength where the mean significance reaches `target` (linear
    interpolation from (0, 0): no injection, no significance; `reached` False = not within the
    scan, value is the largest strength, a lower bound); lo/hi from the mean +/- std curves.
    """
    keys = ["setup", "signal", "held_out", "method", "eps_b", "strength"]
    syst = (
        sens.groupby(keys + ["instance"])["sic"]
        .std(ddof=1)
        .groupby(level=list(range(len(keys))))
        .mean()
        .rename("sic_syst")
    )
    summary = (
        sens.groupby(keys, as_index=False)
        .agg(
            sic_mean=("sic", "mean"),
            sic_std=("sic", "std"),
            sic_err=("sic_err", "mean"),
            eps_s_mean=("eps_s", "mean"),
            significance_mean=("significance", "mean"),
            significance_std=("significance", "std"),
            significance_data_mean=("significance_data", "mean"),
            n=("sic", "size"),
            n_bkg_eval=("n_bkg_eval", "min"),
            n_bkg_pass=("n_bkg_pass", "min"),
        )
        .fillna({"sic_std": 0.0, "significance_std": 0.0})
        .merge(syst.reset_index(), on=keys, how="left")
    )
    rows = []
    for key, g in summary.groupby(keys[:-1]):
        s, m, d = (np.r_[0.0, g[c].to_numpy()] for c in ("strength", "significance_mean", "significance_std"))
        value, reached = metrics.required_strength(s, m, target)
        lo, _ = metrics.required_strength(s, m + d, target)
        hi, hi_reached = metrics.required_strength(s, m - d, target)
        rows.append(
            {
                **dict(zip(keys[:-1], key)),
                "target_significance": target,
                "required_strength": value,
                "reached": reached,
                "required_lo": lo,
                "required_hi": hi if hi_reached else np.inf,
            }
        )
    return summary, pd.DataFrame(rows)


def per_instance(sens: pd.DataFrame) -> pd.DataFrame:
    """SIC per pseudo-data instance (setup, signal, held_out, method, eps_b, strength, instance):
    mean over ensembles (`sic_mean`), their bootstrap error (`sic_err`) and spread (`sic_syst`,
    NaN with one ensemble): to compare setups on the same data sets (salad.comparison)."""
    keys = ["setup", "signal", "held_out", "method", "eps_b", "strength", "instance"]
    return sens.groupby(keys, as_index=False).agg(
        sic_mean=("sic", "mean"), sic_err=("sic_err", "mean"), sic_syst=("sic", "std"), n=("sic", "size")
    )


def sculpting_summary(aucs: pd.DataFrame, mass: pd.DataFrame) -> pd.DataFrame:
    """Per setup and selection efficiency: AUC mean, spread over classifiers x no-injection
    datasets, bootstrap error (the same for every efficiency); chi^2/ndf and JSD of m_yy
    before/after the cut, averaged over ensembles x datasets.

    The no-injection datasets do not depend on the signal, so several signals usually share
    them (their evaluation rows are then identical); rows are de-duplicated on their content
    first, so every distinct (dataset, classifier) counts once. `datasets` = distinct
    no-injection instances pooled."""
    a = aucs.drop_duplicates(["setup", "instance", "classifier", "auc"])
    a = a.assign(dataset=a["signal"].astype(str) + "/" + a["instance"].astype(str))
    a = a.groupby("setup", as_index=False).agg(
        auc_mean=("auc", "mean"),
        auc_std=("auc", "std"),
        auc_boot_std=("auc_boot_std", "mean"),
        classifiers=("auc", "size"),
        datasets=("dataset", "nunique"),
    )
    per_ens = mass.drop_duplicates(["setup", "instance", "ensemble", "efficiency", "chi2", "jsd"])
    per_ens = per_ens.assign(chi2_ndf=per_ens["chi2"] / per_ens["ndf"].clip(lower=1))
    m = per_ens.groupby(["setup", "efficiency"], as_index=False).agg(
        chi2_ndf=("chi2_ndf", "mean"), ndf=("ndf", "first"), jsd=("jsd", "mean")
    )
    return a.merge(m, on="setup", how="outer").sort_values(["setup", "efficiency"], ascending=[True, False])


def write_table(frame: pd.DataFrame, stem: str, title: str, cfg) -> None:
    """Long-format Parquet (for machines) and the readable Markdown (salad.tables.render)."""
    write_parquet(frame, f"{stem}.parquet", provenance("evaluate", cfg))
    with atomic_output(f"{stem}.md") as tmp:
        tmp.write_text(render(Path(stem).name, frame, title))


def _concat(paths) -> pd.DataFrame:
    frames = [read_parquet(p) for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def tables(sens_paths, auc_paths, mass_paths, out_dir, cfg) -> None:
    """Write cathode_sensitivity, cathode_required_injection, cathode_sculpting (.parquet/.md)
    and cathode_sensitivity_instances.parquet (per_instance).
    cfg: the stage config (its `evaluate` section holds target_significance)."""
    out = Path(out_dir)
    target = settings((cfg or {}).get("evaluate"))["target_significance"]
    sens = _concat(sens_paths)
    summary, required = summarise(sens, target)
    minimum = int((cfg or {}).get("min_background_passing", 0))
    thin = summary[summary["n_bkg_pass"] < minimum]
    if len(thin):
        LOG.warning(
            "%d sensitivity row(s) rest on fewer than %d evaluation background events "
            "passing the cut (evaluation_set.min_background_passing), e.g. %s",
            len(thin),
            minimum,
            thin.iloc[0][["setup", "signal", "method", "eps_b", "n_bkg_pass"]].to_dict(),
        )
    write_table(
        summary,
        out / "cathode_sensitivity",
        "CATHODE sensitivity: SIC and post-selection significance vs injected S/sqrt(B)",
        cfg,
    )
    write_parquet(
        per_instance(sens), out / "cathode_sensitivity_instances.parquet", provenance("evaluate", cfg)
    )
    write_table(
        required,
        out / "cathode_required_injection",
        f"Injected S/sqrt(B) needed for {target:g} sigma after selection",
        cfg,
    )
    sculpt = sculpting_summary(_concat(auc_paths), _concat(mass_paths))
    write_table(
        sculpt,
        out / "cathode_sculpting",
        "Sculpting check (no injected signal): template vs true SR background",
        cfg,
    )


def cli(argv=None) -> None:
    parser = argparse.ArgumentParser(description="CATHODE evaluation: sensitivity, tables, plots.")
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("sensitivity")
    p.add_argument("--setup", required=True)
    p.add_argument("--signal", required=True)
    p.add_argument(
        "--data", nargs="+", required=True, help="pseudodata/{signal}/{strength}/{instance}.parquet"
    )
    p.add_argument(
        "--scores", nargs="+", required=True, help="cathode scores .../{strength}/{instance}.parquet"
    )
    p.add_argument("--references", nargs="*", default=[], help=".../{strength}/{instance}.parquet")
    p.add_argument("--evaluation-set", required=True, help="results/evaluation/set.parquet")
    p.add_argument(
        "--held-out",
        required=True,
        choices=["true", "false"],
        help="whether the signal was excluded from the encoder's training",
    )
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
        datasets.setdefault(dataset_key(path), {"scores": [], "references": []})["data"] = path
    for path in args.scores:
        _entry(datasets, dataset_key(path), path)["scores"].append(path)
    for path in args.references:
        _entry(datasets, dataset_key(path), path)["references"].append(path)
    LOG.info("evaluating %s / %s on %d datasets", args.setup, args.signal, len(datasets))
    frames = sensitivity(
        args.setup,
        args.signal,
        datasets,
        read_evaluation_set(args.evaluation_set),
        ecfg,
        cfg["regions"]["signal_region"],
        cfg["window"],
        held_out=args.held_out == "true",
    )
    for name, frame in frames.items():
        write_parquet(frame, Path(args.output_dir) / f"{name}.parquet", provenance("evaluate", cfg))


def _entry(datasets, key, path) -> dict:
    if key not in datasets:
        raise SaladError(f"{path}: no pseudo-data file given for strength {key[0]:g}, instance {key[1]}")
    return datasets[key]
