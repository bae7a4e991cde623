"""Latent-dimension scan (paper B fig. III, paper A's SIC): SIC and NPLM Z versus latent size.

Inputs: the CATHODE sensitivity table (results/tables/cathode_sensitivity.parquet, read by
`read_sic_table`, tolerant of its exact column names) and the NPLM power tables of the scanned
setups (results/tables/nplm/{setup}/{seed}_power.parquet). Output: a table (dim, setup,
signal, sic, sic_err, z_median, z_err, power) and one figure with SIC (left axis) and NPLM
median Z (right axis) versus latent size, one colour per signal.
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
from .tables import scan_md, write

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


def scan_table(setups: Mapping, sic: pd.DataFrame, z: pd.DataFrame) -> pd.DataFrame:
    """One row per (dim, signal): sic, sic_err, z_median, z_err, power (NaN where missing)."""
    dims = pd.DataFrame({"dim": [int(d) for d in setups], "setup": list(setups.values())})
    a = dims.merge(sic, on="setup", how="left")
    b = dims.merge(z.rename(columns={"representation": "setup"}), on="setup", how="left")
    out = a.merge(b, on=["dim", "setup", "signal"], how="outer").sort_values(["signal", "dim"])
    return out.dropna(subset=["signal"]).reset_index(drop=True)


def plot(table: pd.DataFrame, path: str, title: str) -> None:
    """Two panels sharing the latent size: CATHODE SIC (left) and NPLM median Z (right), one
    colour per signal. A Z at or beyond the floor norm.isf(1e-300) (or infinite) is not a
    measurement: drawn as an open up-triangle at the top of the panel (a lower limit)."""
    from . import plotstyle as ps
    from scipy import stats
    plt = ps.pyplot()
    floor = float(stats.norm.isf(1e-300)) - 1e-6
    fig, (ax, zax) = plt.subplots(1, 2, figsize=(13, 5.4), sharex=True)
    signals = sorted(table["signal"].unique())
    z_all = table["z_median"].to_numpy(float)
    measured = np.isfinite(z_all) & (z_all < floor)
    top = (np.nanmax(np.where(measured, z_all + table["z_err"].fillna(0).to_numpy(float), np.nan))
           if measured.any() else 5.0) * 1.3 + 1
    for i, signal in enumerate(signals):
        g = table[table["signal"] == signal].sort_values("dim")
        c = ps.PALETTE[i % len(ps.PALETTE)]
        label = ps.signal_label(signal)
        ax.errorbar(g["dim"], g["sic"], yerr=g["sic_err"], color=c, marker="o", ls="-", label=label)
        z = g["z_median"].to_numpy(float)
        ok = np.isfinite(z) & (z < floor)
        zax.errorbar(g["dim"][ok], z[ok], yerr=g["z_err"].to_numpy(float)[ok], color=c, marker="s",
                     ls="-", label=label)
        if (~ok & ~np.isnan(z)).any():
            zax.plot(g["dim"][~ok & ~np.isnan(z)], np.full((~ok & ~np.isnan(z)).sum(), top * 0.93),
                     "^", mfc="none", color=c, ms=9, label=f"{label}: beyond reach (limit)")
    ax.set_xlabel("latent dimension $d$")
    ax.set_ylabel(r"CATHODE SIC = $\epsilon_S/\sqrt{\epsilon_B}$")
    zax.set_xlabel("latent dimension $d$")
    zax.set_ylabel("NPLM median Z")
    zax.set_ylim(min(0.0, np.nanmin(np.where(measured, z_all, 0.0))) - 0.5, top)
    ax.set_xticks(sorted(table["dim"].unique()))
    for a in (ax, zax):
        ps.exp_label(a)
        a.legend(fontsize=11, loc="best")
    ax.text(0.03, 0.95, title, transform=ax.transAxes, va="top", fontsize=12)
    fig.tight_layout()
    ps.save(fig, path)


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="salad dimension-scan", description=__doc__)
    parser.add_argument("--sic", required=True, help="CATHODE sensitivity table")
    parser.add_argument("--nplm", nargs="+", required=True, help="NPLM power tables")
    parser.add_argument("--table", required=True)
    parser.add_argument("--markdown", required=True)
    parser.add_argument("--plot", required=True)
    parser.add_argument("--config", help="JSON: {dimension_scan: {...}}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = parse_stage_config(args.config)["dimension_scan"]
    if not cfg["setups"]:
        raise SaladError("dimension_scan.setups: empty")
    sic = read_sic_table(args.sic, cfg.get("eps_b"), cfg.get("strength"))
    table = scan_table(cfg["setups"], sic, read_nplm(args.nplm, cfg.get("strength")))
    write_parquet(table, args.table, provenance("dimension-scan", cfg))
    write(scan_md(table), args.markdown)
    plot(table, args.plot, f"$\\epsilon_B$ = {100 * float(cfg.get('eps_b') or 0):g} %")
