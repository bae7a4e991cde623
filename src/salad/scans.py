"""Latent-dimension scans: CATHODE SIC (paper A) and paper B's NPLM Z and linear accuracy vs D.

`dimension_scan.setups` {D: setup}: CATHODE SIC per latent size from the sensitivity table
(results/tables/cathode_sensitivity.parquet, read by `read_sic_table`, tolerant of its exact
column names); family "cathode". `dimension_scan.families` {family: {D: setup}}: paper B's
scans (self-supervised SimCLR D = 4..64, supervised VICReg D = 2..32), background-only
embeddings, with NPLM median Z / power (results/tables/nplm/{setup}/{seed}_power.parquet) and
linear-evaluation accuracy, mean +- SEM over encoder seeds (results/tables/linear_eval/
{setup}/{seed}.parquet). Output: one table (family, dim, setup, signal, sic, sic_err,
z_median, z_err, power, accuracy, accuracy_sem, trained_on_signals) and one figure.
"""
from __future__ import annotations

import argparse
import logging
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .artifacts import provenance, read_parquet, write_parquet
from .config import parse_stage_config
from .errors import SaladError
from .nplm import write_markdown

log = logging.getLogger("salad.scans")

SETUP_NAMES = ("setup", "encoder", "representation")
SIC_NAMES = ("sic_mean", "sic", "SIC", "sic_median")
SIC_ERR_NAMES = ("sic_std", "sic_err", "sic_error", "sic_sem")
EPS_NAMES = ("eps_b", "epsilon_b", "working_point", "wp")


def _first(frame: pd.DataFrame, names: Sequence[str], what: str, path, required: bool = True):
    lower = {c.lower(): c for c in frame.columns}
    for name in names:
        if name.lower() in lower:
            return lower[name.lower()]
    if required:
        raise SaladError(f"{path}: no {what} column (looked for {', '.join(names)}); "
                         f"columns: {', '.join(map(str, frame.columns))}")
    return None


def read_sic_table(path: str, eps_b: float | None = None, strength: float | None = None,
                   method: str = "cathode") -> pd.DataFrame:
    """CATHODE SIC per (setup, signal) from its summary table, whatever its final column names.

    Recognised: setup column (setup|encoder|representation), SIC (sic_mean|sic|sic_median),
    optional error (sic_std|sic_err|sic_sem), optional signal, strength, method and working
    point (eps_b|working_point) columns. Rows are filtered to `method`, the working point
    closest to `eps_b` and `strength` (None: the largest), then averaged per (setup, signal).
    Returns columns setup, signal, sic, sic_err.
    """
    frame = read_parquet(path, None)
    setup = _first(frame, SETUP_NAMES, "setup", path)
    sic = _first(frame, SIC_NAMES, "SIC", path)
    err = _first(frame, SIC_ERR_NAMES, "SIC error", path, required=False)
    signal = _first(frame, ("signal",), "signal", path, required=False)
    meth = _first(frame, ("method",), "method", path, required=False)
    eps = _first(frame, EPS_NAMES, "working point", path, required=False)
    stren = _first(frame, ("strength", "injection"), "strength", path, required=False)
    if meth is not None and (frame[meth] == method).any():
        frame = frame[frame[meth] == method]
    if eps is not None and eps_b is not None and len(frame):
        values = frame[eps].astype(float)
        frame = frame[np.isclose(values, values.iloc[(values - eps_b).abs().argmin()])]
    if stren is not None and len(frame):
        target = frame[stren].astype(float).max() if strength is None else strength
        frame = frame[np.isclose(frame[stren].astype(float), target)]
    out = pd.DataFrame({"setup": frame[setup].astype(str),
                        "signal": frame[signal].astype(str) if signal else "all",
                        "sic": frame[sic].astype(float),
                        "sic_err": frame[err].astype(float) if err else np.nan})
    return out.groupby(["setup", "signal"], as_index=False).mean()


def read_nplm(paths: Sequence[str], strength: float | None) -> pd.DataFrame:
    """NPLM median Z and power per (representation, signal) at `strength` (None: the largest),
    averaged over seeds (z_err: their standard error; 0 with one seed)."""
    # Z is -inf where every toy exceeds the observed t (p = 1): legitimate, e.g. at strength 0.
    frame = pd.concat([read_parquet(p, {"representation": "str", "signal": "str", "strength": "float",
                                        "z_median": "float", "power": "float"}, finite=False)
                       for p in paths], ignore_index=True)
    target = frame["strength"].max() if strength is None else strength
    frame = frame[np.isclose(frame["strength"], target)]
    if frame["z_median"].isna().any():
        raise SaladError(f"{', '.join(map(str, paths))}: NaN NPLM Z at strength {target:g}")
    return frame.groupby(["representation", "signal"], as_index=False).agg(
        z_median=("z_median", "mean"), z_err=("z_median", lambda v: float(np.std(v, ddof=1) / np.sqrt(len(v)))
                                            if len(v) > 1 else 0.0),
        power=("power", "mean"))


def scan_table(setups: Mapping, sic: pd.DataFrame, z: pd.DataFrame,
               family: str = "cathode") -> pd.DataFrame:
    """One row per (dim, signal) of one family: sic, sic_err, z_median, z_err, power (NaN where missing)."""
    dims = pd.DataFrame({"dim": [int(d) for d in setups], "setup": list(setups.values())})
    a = dims.merge(sic, on="setup", how="left")
    b = dims.merge(z.rename(columns={"representation": "setup"}), on="setup", how="left")
    out = a.merge(b, on=["dim", "setup", "signal"], how="outer").sort_values(["signal", "dim"])
    out.insert(0, "family", family)
    return out.dropna(subset=["signal"]).reset_index(drop=True)


def _empty(**dtypes) -> pd.DataFrame:
    return pd.DataFrame({k: pd.Series(dtype=object if v is str else v) for k, v in dtypes.items()})


def read_linear(paths: Sequence[str]) -> pd.DataFrame:
    """Linear-evaluation accuracy per representation: mean and SEM over encoder seeds."""
    from .linear_eval import summarize_runs
    contract = {"representation": "str", "dim": "int", "accuracy": "float", "accuracy_sem": "float",
                "balanced_accuracy": "float", "balanced_accuracy_sem": "float"}
    for p in paths:
        read_parquet(p, contract, finite=False)
    runs = pd.concat([read_parquet(p, None, finite=False) for p in paths], ignore_index=True)
    return summarize_runs(runs)[["representation", "accuracy", "accuracy_sem", "trained_on_signals"]]


def family_table(families: Mapping, z: pd.DataFrame, linear: pd.DataFrame | None) -> pd.DataFrame:
    """Paper B scans: per (family, dim, signal) NPLM Z / power and the setup's linear accuracy."""
    empty_sic = _empty(setup=str, signal=str, sic=float, sic_err=float)
    parts = []
    for family, setups in families.items():
        part = scan_table(setups, empty_sic, z, family)
        if linear is not None:
            part = part.merge(linear.rename(columns={"representation": "setup"}), on="setup", how="left")
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def plot(table: pd.DataFrame, path: str, title: str) -> None:
    """CATHODE SIC (family cathode), NPLM median Z and linear accuracy versus latent size."""
    from . import plotstyle as ps
    plt = ps.pyplot()
    sic = table[table["family"] == "cathode"]
    fam = table[table["family"] != "cathode"]
    panels = (["sic"] if len(sic) else []) + (["z", "acc"] if len(fam) else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    axes = dict(zip(panels, axes[0]))
    styles = {f: s for f, s in zip(fam["family"].unique(), ["-", "--", ":", "-."] * 4)}
    for i, (signal, g) in enumerate(sic.groupby("signal")):
        axes["sic"].errorbar(g["dim"], g["sic"], yerr=g["sic_err"], color=f"C{i % 10}", marker="o",
                             label=signal)
    for i, (signal, g) in enumerate(fam.groupby("signal")):
        for family, h in g.groupby("family"):
            axes["z"].errorbar(h["dim"], h["z_median"], yerr=h["z_err"], color=f"C{i % 10}", marker="s",
                               ls=styles[family], label=f"{family}: {signal}")
    if len(fam):
        acc = fam.drop_duplicates(["family", "dim"])
        for family, h in acc.groupby("family"):
            axes["acc"].errorbar(h["dim"], h["accuracy"], yerr=h["accuracy_sem"], marker="o",
                                 ls=styles[family], label=family)
    labels = {"sic": "CATHODE SIC", "z": "NPLM median Z", "acc": "linear-evaluation accuracy"}
    for key, ax in axes.items():
        ax.set_xlabel("latent dimension D")
        ax.set_ylabel(labels[key])
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=9)
        ps.exp_label(ax)
    fig.suptitle(title)
    fig.tight_layout()
    ps.save(fig, path)


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="salad dimension-scan", description=__doc__)
    parser.add_argument("--sic", help="CATHODE sensitivity table (with dimension_scan.setups)")
    parser.add_argument("--nplm", nargs="*", default=[], help="NPLM power tables of the family setups")
    parser.add_argument("--linear", nargs="*", default=[], help="per-seed linear-evaluation tables")
    parser.add_argument("--table", required=True)
    parser.add_argument("--markdown", required=True)
    parser.add_argument("--plot", required=True)
    parser.add_argument("--config", help="JSON: {dimension_scan: {...}}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = parse_stage_config(args.config)["dimension_scan"]
    families = cfg.get("families") or {}
    if not cfg["setups"] and not families:
        raise SaladError("dimension_scan: both setups and families are empty")
    parts = []
    if cfg["setups"]:
        if not args.sic:
            raise SaladError("dimension_scan.setups: --sic (CATHODE sensitivity table) is required")
        sic = read_sic_table(args.sic, cfg.get("eps_b"), cfg.get("strength"))
        parts.append(scan_table(cfg["setups"], sic, _empty(representation=str, signal=str, z_median=float,
                                                           z_err=float, power=float)))
    if families:
        if not args.nplm:
            raise SaladError("dimension_scan.families: --nplm power tables are required")
        linear = read_linear(args.linear) if args.linear else None
        parts.append(family_table(families, read_nplm(args.nplm, cfg.get("strength")), linear))
    table = pd.concat(parts, ignore_index=True)
    write_parquet(table, args.table, provenance("dimension-scan", cfg))
    sections = {f"Latent dimension scan: {f}": g.drop(columns="family")
                for f, g in table.groupby("family", sort=False)}
    write_markdown(sections, args.markdown)
    plot(table, args.plot, f"εB = {cfg.get('eps_b')} (SIC); largest injection (Z)")
