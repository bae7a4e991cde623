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
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .artifacts import provenance, read_parquet, write_parquet
from .cli import setup_logging, write_markdown
from .config import parse_stage_config
from .errors import SaladError

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
        raise SaladError(
            f"{path}: no {what} column (looked for {', '.join(names)}); "
            f"columns: {', '.join(map(str, frame.columns))}"
        )
    return None


def read_sic_table(
    path: str, eps_b: float | None = None, strength: float | None = None, method: str = "cathode"
) -> pd.DataFrame:
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
    out = pd.DataFrame(
        {
            "setup": frame[setup].astype(str),
            "signal": frame[signal].astype(str) if signal else "all",
            "sic": frame[sic].astype(float),
            "sic_err": frame[err].astype(float) if err else np.nan,
        }
    )
    return out.groupby(["setup", "signal"], as_index=False).mean()


def read_nplm(paths: Sequence[str], strength: float | None) -> pd.DataFrame:
    """NPLM median Z and power per (representation, signal) at `strength` (None: the largest),
    averaged over seeds (z_err: their standard error; 0 with one seed)."""
    # Z is -inf where every toy exceeds the observed t (p = 1): legitimate, e.g. at strength 0.
    frame = pd.concat(
        [
            read_parquet(
                p,
                {
                    "representation": "str",
                    "signal": "str",
                    "strength": "float",
                    "z_median": "float",
                    "power": "float",
                },
                finite=False,
            )
            for p in paths
        ],
        ignore_index=True,
    )
    target = frame["strength"].max() if strength is None else strength
    frame = frame[np.isclose(frame["strength"], target)]
    if frame["z_median"].isna().any():
        raise SaladError(f"{', '.join(map(str, paths))}: NaN NPLM Z at strength {target:g}")
    return frame.groupby(["representation", "signal"], as_index=False).agg(
        z_median=("z_median", "mean"),
        z_err=("z_median", lambda v: float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0),
        power=("power", "mean"),
    )


def scan_table(setups: Mapping, sic: pd.DataFrame, z: pd.DataFrame, family: str = "cathode") -> pd.DataFrame:
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
    from .tables import summarize_runs

    contract = {
        "representation": "str",
        "dim": "int",
        "accuracy": "float",
        "accuracy_sem": "float",
        "balanced_accuracy": "float",
        "balanced_accuracy_sem": "float",
    }
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


def label_signal_training(table: pd.DataFrame, aware: Sequence[str]) -> pd.DataFrame:
    """Every row's `trained_on_signals`: its setup is in `aware` (trained on BSM samples) or its
    linear-evaluation runs say so; CATHODE rows (no linear evaluation) included."""
    own = (
        table["trained_on_signals"] if "trained_on_signals" in table else pd.Series(False, index=table.index)
    )
    flag = table["setup"].isin(list(aware)) | own.astype("boolean").fillna(False).astype(bool)
    return table.assign(trained_on_signals=flag.astype(bool))


Z_FLOOR = float(stats.norm.isf(1e-300))  # Z of a p clipped at 1e-300: not a measurement


def plot(table: pd.DataFrame, path: str, title: str) -> None:
    """Panels sharing the latent size D: CATHODE SIC (rows with a SIC), NPLM median Z (rows with
    a Z; per family, line style) and linear accuracy (rows with one). A Z at or beyond the floor
    norm.isf(1e-300), or infinite, is a lower limit: drawn as an open up-triangle at the top of
    its panel, never as a value."""
    from . import plotstyle as ps

    plt = ps.pyplot()
    table = table if "family" in table else table.assign(family="scan")
    sic = table[table["sic"].notna()] if "sic" in table else table.iloc[:0]
    zs = table[table["z_median"].notna()] if "z_median" in table else table.iloc[:0]
    acc = (
        table[table["accuracy"].notna()].drop_duplicates(["family", "dim"])
        if "accuracy" in table
        else table.iloc[:0]
    )
    panels = [k for k, part in (("sic", sic), ("z", zs), ("acc", acc)) if len(part)]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(6.5 * max(len(panels), 1), 5.4), squeeze=False)
    axes = dict(zip(panels, axes[0]))
    styles = {f: s for f, s in zip(table["family"].unique(), ["-", "--", ":", "-."] * 4)}
    signals = sorted(table["signal"].dropna().unique())
    color = {sig: ps.PALETTE[i % len(ps.PALETTE)] for i, sig in enumerate(signals)}

    def series(ax, frame, value, error, **style):
        """One curve of `value` vs D with its error bars (sorted by D)."""
        frame = frame.sort_values("dim")
        ax.errorbar(frame["dim"], frame[value], yerr=frame.get(error), marker="o", **style)

    for signal, g in sic.groupby("signal"):
        series(axes["sic"], g, "sic", "sic_err", color=color[signal], label=ps.signal_label(signal))
    if len(zs):
        z_all = zs["z_median"].to_numpy(float)
        measured = np.isfinite(z_all) & (z_all < Z_FLOOR - 1e-6)
        top = (
            np.nanmax(np.where(measured, z_all + zs["z_err"].fillna(0).to_numpy(float), np.nan))
            if measured.any()
            else 5.0
        ) * 1.3 + 1
        for (signal, family), h in zs.groupby(["signal", "family"]):
            h = h.sort_values("dim")
            z = h["z_median"].to_numpy(float)
            ok = np.isfinite(z) & (z < Z_FLOOR - 1e-6)
            label = ps.signal_label(signal) + ("" if family == "scan" else f" ({family})")
            axes["z"].errorbar(
                h["dim"][ok],
                z[ok],
                yerr=h["z_err"].to_numpy(float)[ok],
                color=color[signal],
                marker="s",
                ls=styles[family],
                label=label,
            )
            if (~ok).any():
                axes["z"].plot(
                    h["dim"][~ok],
                    np.full(int((~ok).sum()), top * 0.93),
                    "^",
                    mfc="none",
                    color=color[signal],
                    ms=9,
                    label=f"{label}: beyond reach (lower limit)",
                )
        axes["z"].set_ylim(min(0.0, np.nanmin(np.where(measured, z_all, 0.0))) - 0.5, top)
    for family, h in acc.groupby("family"):
        series(axes["acc"], h, "accuracy", "accuracy_sem", ls=styles[family], color="k", label=family)
    labels = {
        "sic": r"CATHODE SIC = $\epsilon_S/\sqrt{\epsilon_B}$",
        "z": "NPLM median Z",
        "acc": "linear-evaluation accuracy",
    }
    for key, ax in axes.items():
        ax.set_xlabel("latent dimension D")
        ax.set_ylabel(labels[key])
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=10, loc="best")
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
    parser.add_argument(
        "--trained-on-signals",
        nargs="*",
        default=[],
        metavar="SETUP",
        help="setups whose training included BSM samples (their rows say so)",
    )
    args = parser.parse_args(argv)
    setup_logging()
    cfg = parse_stage_config(args.config)["dimension_scan"]
    families = cfg.get("families") or {}
    if not cfg["setups"] and not families:
        raise SaladError("dimension_scan: both setups and families are empty")
    parts = []
    if cfg["setups"]:
        if not args.sic:
            raise SaladError("dimension_scan.setups: --sic (CATHODE sensitivity table) is required")
        sic = read_sic_table(args.sic, cfg.get("eps_b"), cfg.get("strength"))
        parts.append(
            scan_table(
                cfg["setups"],
                sic,
                _empty(representation=str, signal=str, z_median=float, z_err=float, power=float),
            )
        )
    if families:
        if not args.nplm:
            raise SaladError("dimension_scan.families: --nplm power tables are required")
        linear = read_linear(args.linear) if args.linear else None
        parts.append(family_table(families, read_nplm(args.nplm, cfg.get("strength")), linear))
    table = label_signal_training(pd.concat(parts, ignore_index=True), args.trained_on_signals)
    write_parquet(table, args.table, provenance("dimension-scan", cfg))
    sections = {
        f"Latent dimension scan: {f}": g.drop(columns="family")
        for f, g in table.groupby("family", sort=False)
    }
    write_markdown(sections, args.markdown)
    plot(table, args.plot, f"εB = {cfg.get('eps_b')} (SIC); largest injection (Z)")
