"""Figures of the CATHODE stage (salad.plotstyle: mplhep style, PNG at 200 dpi + PDF).

`python -m salad evaluate plot <kind> ...` with kind one of
- latent:     1-d projections of each latent dimension in the SR: true background, template,
              signal, with a template/true-background ratio panel
- tsne:       t-SNE of the SR latent, coloured by process class (subsampled)
- sculpting:  ROC (template vs true SR background, AUC in the legend) and m_yy before/after the
              cut with the SR band and an after/before ratio panel
- sic:        SIC vs injected S/sqrt(B), band = spread over instances x ensembles, per setup,
              with the 1/sqrt(eps_B) ceiling
- required:   injected S/sqrt(B) needed for 3 sigma per signal and setup (arrows: limits)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from .. import plotstyle as ps
from ..artifacts import read_parquet
from ..cli import stable_seed
from ..config import parse_stage_config
from ..contracts import latent_columns, read_embeddings, read_template, region_masks
from .data import read_dataset


def latent(
    data_path, emb_path, template_path, output, signal_region, window, title="", lumi=None, injected=""
) -> None:
    """Per latent dimension: true SR background, weighted template, injected signal (unit
    area, stat. bands, overflow in the edge bins) over a template/true-background ratio."""
    data = read_dataset(data_path, read_embeddings(emb_path))
    cols = latent_columns(data)
    tmpl = read_template(template_path, cols)
    sr, _ = region_masks(data["myy"].to_numpy(), signal_region, window)
    bkg, sig = data[sr & ~data["is_signal"]], data[sr & data["is_signal"]]
    n = len(cols)
    ncol = min(3, n)
    nrow = int(np.ceil(n / ncol))
    plt = ps.pyplot()
    fig = plt.figure(figsize=(6.0 * ncol, 6.0 * nrow))
    outer = fig.add_gridspec(nrow, ncol, hspace=0.32, wspace=0.3)
    first = None
    for k, c in enumerate(cols):
        inner = outer[divmod(k, ncol)].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.06)
        ax = fig.add_subplot(inner[0])
        rax = fig.add_subplot(inner[1], sharex=ax)
        values = np.concatenate([bkg[c], tmpl[c], sig[c]])
        edges = np.linspace(*np.percentile(values, [0.5, 99.5]), 31)
        t, te = ps.step_hist(
            ax,
            tmpl[c],
            edges,
            weights=tmpl["weight"],
            fill=True,
            color=ps.PALETTE[0],
            label="template (flow + SM H)",
        )
        b, be = ps.step_hist(ax, bkg[c], edges, color="k", label="true SR background")
        if len(sig):
            ps.step_hist(ax, sig[c], edges, color=ps.PALETTE[5], label=f"injected {injected or 'signal'}")
        ax.set_ylabel("normalised entries")
        ax.tick_params(labelbottom=False)
        ps.ratio(rax, edges, t, te, b, be, ylabel="tmpl./true")
        rax.set_xlabel(f"latent $z_{{{c[1:]}}}$ (a.u.)")
        ps.exp_label(ax, lumi)
        first = first or ax
    first.legend(loc="upper right", fontsize=11)
    fig.suptitle(title or "Latent projections in the signal region", y=0.94 + 0.02 * nrow)
    ps.save(fig, output)


def tsne(
    data_path, emb_path, output, signal_region, window, n_events=1500, seed=0, title="", lumi=None
) -> None:
    from sklearn.manifold import TSNE

    data = read_dataset(data_path, read_embeddings(emb_path))
    cols = latent_columns(data)
    sr, _ = region_masks(data["myy"].to_numpy(), signal_region, window)
    sel = data[sr]
    rng = np.random.default_rng(seed)
    if len(sel) > n_events:
        sel = sel.iloc[np.sort(rng.choice(len(sel), n_events, replace=False))]
    emb = TSNE(
        n_components=2, init="pca", random_state=seed, perplexity=min(30.0, max(2.0, (len(sel) - 1) / 3))
    ).fit_transform(sel[cols].to_numpy())
    group = sel["group"].to_numpy()
    classes = {
        "γγ continuum": (group == 0, ps.PALETTE[0]),
        "SM Higgs (ggF, VBF, VH, ttH)": ((group >= 1) & (group <= 4), ps.PALETTE[2]),
        "BSM signal": (group < 0, ps.PALETTE[5]),
    }
    plt = ps.pyplot()
    fig, ax = plt.subplots(figsize=(7, 6.5))
    for label, (mask, color) in classes.items():
        if mask.any():
            ax.scatter(
                emb[mask, 0], emb[mask, 1], s=5, alpha=0.6, color=color, label=f"{label} ({mask.sum()})"
            )
    ax.set_xlabel("t-SNE axis 1 (a.u.)")
    ax.set_ylabel("t-SNE axis 2 (a.u.)")
    ax.legend(markerscale=3, loc="best")
    ps.exp_label(ax, lumi)
    ax.set_title(title or "t-SNE of the SR latent space", pad=28)
    ps.save(fig, output)


def roc_auc(fpr, tpr) -> float:
    """Area under a ROC curve given as (fpr, tpr) points (trapezoids, sorted by fpr)."""
    order = np.argsort(fpr)
    return float(np.trapezoid(np.asarray(tpr, float)[order], np.asarray(fpr, float)[order]))


def sculpting(roc_paths, mass_paths, output, title="", signal_region=None, lumi=None) -> None:
    """Left: ROC of template vs true SR background (AUC mean ± std over BDTs in the legend).
    Right: m_yy before/after the cut (unit area, SR band) with an after/before ratio panel."""
    roc = pd.concat([read_parquet(p) for p in roc_paths], ignore_index=True)
    mass = pd.concat([read_parquet(p) for p in mass_paths], ignore_index=True)
    plt = ps.pyplot()
    fig = plt.figure(figsize=(13, 6))
    grid = fig.add_gridspec(2, 2, height_ratios=[3, 1], hspace=0.06, wspace=0.28)
    a1 = fig.add_subplot(grid[:, 0])
    a2 = fig.add_subplot(grid[0, 1])
    r2 = fig.add_subplot(grid[1, 1], sharex=a2)
    if len(roc):
        curves = roc.pivot_table(index="fpr", columns=["signal", "instance", "classifier"], values="tpr")
        curves = curves.T.drop_duplicates().T  # signals share their no-injection datasets
        aucs = [roc_auc(curves.index, curves[c].interpolate().to_numpy()) for c in curves]
        m, s = curves.mean(axis=1), curves.std(axis=1).fillna(0)
        a1.plot(
            m.index,
            m,
            color="k",
            label=f"template vs true bkg.\nAUC = {np.mean(aucs):.3f} ± {np.std(aucs):.3f}"
            f" ({curves.shape[1]} BDTs)",
        )
        a1.fill_between(m.index, m - s, m + s, color="grey", alpha=0.4, label="±1 std over BDTs")
    a1.plot([0, 1], [0, 1], ls="--", color=ps.PALETTE[5], label="random (AUC = 0.5)")
    a1.set_xlabel("template efficiency")
    a1.set_ylabel("true SR background efficiency")
    a1.legend(loc="upper left", fontsize=11)
    ps.exp_label(a1, lumi)
    if len(mass):
        if "efficiency" not in mass:
            mass = mass.assign(efficiency=np.nan)
        mass = mass.drop_duplicates(["instance", "ensemble", "efficiency", "bin_lo", "n_before", "n_after"])
        ps.sr_band(a2, signal_region)
        for k, (eff, part) in enumerate(
            sorted(mass.groupby("efficiency", dropna=False), key=lambda x: -np.nan_to_num(x[0]))
        ):
            h = part.groupby(["bin_lo", "bin_hi"], as_index=False).agg(
                before=("n_before", "mean"), after_m=("n_after", "mean"), after_s=("n_after", "std")
            )
            edges = np.append(h["bin_lo"].to_numpy(), h["bin_hi"].iloc[-1])
            width = np.diff(edges)
            nb, na = max(h["before"].sum(), 1), max(h["after_m"].sum(), 1)
            before, be = h["before"] / nb / width, np.sqrt(h["before"]) / nb / width
            err = np.sqrt(h["after_m"] + h["after_s"].fillna(0) ** 2)
            after, ae = h["after_m"] / na / width, err / na / width
            if k == 0:
                a2.stairs(before, edges, color=ps.PALETTE[0], lw=1.8, label="before cut")
                a2.stairs(
                    before + be, edges, baseline=before - be, fill=True, color=ps.PALETTE[0], alpha=0.25, lw=0
                )
            label = (
                "after cut" if np.isnan(eff) else f"after cut keeping {100 * eff:g} % of SR data"
            ) + " (mean over ensembles)"
            color = "k" if k == 0 else ps.PALETTE[(k + 1) % len(ps.PALETTE)]
            centers = (edges[1:] + edges[:-1]) / 2 + (k - 1) * 0.15 * width
            a2.errorbar(
                centers, after, yerr=ae, xerr=width / 2, fmt="os^dv"[k % 5], ms=4, color=color, label=label
            )
            ps.ratio(
                r2,
                edges,
                after.to_numpy(),
                ae.to_numpy(),
                before.to_numpy(),
                be.to_numpy(),
                color=color,
                ylabel="after/before",
                ylim=(0.0, 2.0),
            )
    a2.set_ylabel("normalised entries / GeV")
    a2.tick_params(labelbottom=False)
    a2.legend(loc="upper right", fontsize=11)
    r2.set_xlabel(r"$m_{\gamma\gamma}$ [GeV]")
    ps.exp_label(a2, lumi)
    fig.suptitle(title or "Sculpting check without injected signal", y=1.02)
    ps.save(fig, output)


def sic(table_path, signal, output, method="cathode", setups=None, lumi=None, working_points=None) -> None:
    """SIC vs injected strength for one signal, a panel per working point: a fixed colour per
    setup (`setups`, default all in the table), a line style per method; band = CATHODE error
    (sic_err ⊕ sic_syst when present, else sic_std); markers only at the measured strengths;
    dotted grey: the 1/sqrt(eps_B) ceiling."""
    from matplotlib.lines import Line2D

    tab = read_parquet(table_path)
    tab = tab[(tab["signal"] == signal) & (tab["strength"] > 0)]
    if setups:
        tab = tab[tab["setup"].isin(list(setups))]
    if working_points:
        tab = tab[np.isclose(tab["eps_b"].to_numpy(float)[:, None], list(working_points)).any(axis=1)]
    err = "sic_err" if "sic_err" in tab else "sic_std"
    wps = sorted(tab["eps_b"].unique())
    names = ps.order_setups(n for n in (setups or tab["setup"].unique()) if n in set(tab["setup"]))
    plt = ps.pyplot()
    nw = max(1, len(wps))
    fig, axes = plt.subplots(1, nw, figsize=(6.2 * nw + 3.2, 5.6), squeeze=False)
    for ax, wp in zip(axes.flat, wps):
        t = tab[tab["eps_b"] == wp]
        for setup in names:
            color = ps.setup_color(setup)
            for m, (_, ls, marker) in ps.METHODS.items():
                g = t[(t["setup"] == setup) & (t["method"] == m)].sort_values("strength")
                if g.empty:
                    continue
                ax.plot(
                    g["strength"],
                    g["sic_mean"],
                    ls=ls,
                    color=color,
                    marker=marker,
                    ms=6 if m == method else 4,
                    mfc=color if m == method else "none",
                    lw=2 if m == method else 1.2,
                )
                if m == method and err in g:
                    band = np.hypot(g[err].fillna(0), g["sic_syst"].fillna(0) if "sic_syst" in g else 0)
                    ax.fill_between(
                        g["strength"], g["sic_mean"] - band, g["sic_mean"] + band, color=color, alpha=0.2
                    )
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.axhline(1 / np.sqrt(wp), color="grey", ls=(0, (1, 2)), lw=1.2, gid="sic_ceiling")
        ax.text(
            0.02,
            1 / np.sqrt(wp),
            r"$1/\sqrt{\epsilon_B}$",
            color="grey",
            va="bottom",
            transform=ax.get_yaxis_transform(),
            fontsize=11,
        )
        ax.set_xlabel(r"injected $S/\sqrt{B}$ in the SR")
        ax.set_ylabel(r"SIC = $\epsilon_S/\sqrt{\epsilon_B}$")
        ax.set_ylim(0, 1.12 / np.sqrt(wp))
        ax.text(
            0.97,
            0.95,
            f"{ps.signal_label(signal)}\n$\\epsilon_B$ = {100 * wp:g} %",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=12,
        )
        ps.exp_label(ax, lumi)
    handles = [Line2D([], [], color=ps.setup_color(n), lw=2.5) for n in names]
    handles += [
        Line2D([], [], color="black", ls=ls, marker=mk, mfc="black" if i == 0 else "none")
        for i, (_, ls, mk) in enumerate(ps.METHODS.values())
    ]
    labels = [ps.setup_label(n) for n in names] + [lab for lab, _, _ in ps.METHODS.values()]
    fig.legend(handles, labels, loc="center right", fontsize=11, frameon=False)
    fig.tight_layout(rect=(0, 0, 1 - 3.0 / fig.get_figwidth(), 1))
    ps.save(fig, output)


def required(
    table_path, output, method="cathode", lumi=None, setups=None, working_point=None, family=None
) -> None:
    """Required injection per signal (x) and setup (fixed colour, offset): reached points with
    their mean ± std range, an up arrow where the upper end is unbounded; not reached: a bar at
    the largest scanned strength (lower limit) with an up arrow. `setups`: those shown (default
    all); `family` (prefix, name): held-out rows of setups named prefix* drawn as one setup
    `name` (e.g. ('EP_m', 'EP'): for each model, the encoder trained without it);
    `working_point`: eps_B shown (default the smallest)."""
    tab = read_parquet(table_path)
    tab = tab[tab["method"] == method]
    if family:
        prefix, name = family
        tab = tab[tab["setup"] != name]  # a configured setup of that name is not the family
        member = tab["setup"].astype(str).str.startswith(prefix)
        tab = tab[~member | tab["held_out"].astype(bool)].copy()
        tab.loc[member, "setup"] = name
        setups = list(setups) + [name] if setups else None
    if setups:
        tab = tab[tab["setup"].isin(list(setups))]
    wp = (tab["eps_b"].min() if len(tab) else 0.0) if working_point is None else working_point
    tab = tab[np.isclose(tab["eps_b"], wp)] if len(tab) else tab
    signals = sorted(tab["signal"].unique())
    setups = ps.order_setups(tab["setup"].unique())
    plt = ps.pyplot()
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(signals) + 4), 5.6))
    labelled = set()  # legend entry at a setup's first drawn point
    for i, setup in enumerate(setups):
        off = (i - (len(setups) - 1) / 2) * 0.15
        color = ps.setup_color(setup)
        for j, sig in enumerate(signals):
            r = tab[(tab["setup"] == setup) & (tab["signal"] == sig)]
            if r.empty or not np.isfinite(r["required_strength"].iloc[0]):
                continue
            r, x = r.iloc[0], j + off
            y = float(r["required_strength"])
            label = ps.setup_label(setup) if setup not in labelled else None
            labelled.add(setup)
            if r["reached"]:
                lo = max(y - float(r["required_lo"]), 0.0)
                hi_finite = np.isfinite(r["required_hi"])
                hi = float(r["required_hi"]) - y if hi_finite else 0.0
                ax.errorbar(x, y, yerr=[[lo], [hi]], fmt="o", color=color, ms=6, label=label)
                if not hi_finite:
                    ps.limit_arrow(ax, x, y, color, up=True)
            else:
                ax.plot(x, y, "_", ms=14, mew=2.5, color=color, label=label)
                ps.limit_arrow(ax, x, y, color, up=True)
    ax.set_yscale("log")
    finite = tab["required_strength"][np.isfinite(tab["required_strength"])]
    if len(finite):
        ax.set_ylim(finite.min() * 0.5, finite.max() * 2.0)
    from matplotlib.ticker import LogFormatter

    ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    ax.set_xticks(range(len(signals)), [ps.signal_label(s) for s in signals], rotation=20, ha="right")
    ax.set_xlim(-0.6, max(len(signals), 1) - 0.4)
    ax.set_ylabel(r"injected $S/\sqrt{B}$ for 3$\sigma$")
    ax.text(
        0.02,
        0.95,
        rf"$\epsilon_B$ = {100 * wp:g} %; arrow: limit (not reached)",
        transform=ax.transAxes,
        va="top",
        fontsize=12,
    )
    handles, labels = ax.get_legend_handles_labels()
    order = [ps.setup_label(n) for n in setups]
    pairs = sorted(zip(handles, labels), key=lambda hl: order.index(hl[1]) if hl[1] in order else 99)
    if pairs:
        ax.legend(*zip(*pairs), loc="upper right", fontsize=11)
    ps.exp_label(ax, lumi)
    ps.save(fig, output)


def _injected(data_path) -> str:
    """'<signal> at S/√B = <strength>' from a results/pseudodata/{signal}/{strength}/{i} path."""
    parts = Path(str(data_path)).parts
    if len(parts) >= 3:
        return f"{ps.signal_label(parts[-3])}, $S/\\sqrt{{B}}$ = {parts[-2]}"
    return ""


def cli(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="salad evaluate plot")
    parser.add_argument("kind", choices=["latent", "tsne", "sculpting", "sic", "required"])
    parser.add_argument("--data")
    parser.add_argument("--embeddings")
    parser.add_argument("--template")
    parser.add_argument("--roc", nargs="*", default=[])
    parser.add_argument("--mass", nargs="*", default=[])
    parser.add_argument("--table")
    parser.add_argument("--signal")
    parser.add_argument("--setups", nargs="*", default=None, help="setups shown (sic, required)")
    parser.add_argument(
        "--working-points",
        nargs="*",
        type=float,
        default=None,
        help="eps_B shown (sic: panels; required: the first)",
    )
    parser.add_argument(
        "--family",
        nargs=2,
        default=None,
        metavar=("PREFIX", "NAME"),
        help="required: held-out rows of setups PREFIX* drawn as setup NAME",
    )
    parser.add_argument("--title", default="")
    parser.add_argument("--lumi", type=float, default=None, help="luminosity label [fb^-1]")
    parser.add_argument("--output", required=True, help="PNG (a PDF is written next to it)")
    parser.add_argument("--config", default="")
    parser.add_argument("--log", default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    cfg = parse_stage_config(args.config)
    region = cfg.get("regions", {}).get("signal_region")
    window = cfg.get("window")
    if args.kind == "latent":
        latent(
            args.data,
            args.embeddings,
            args.template,
            args.output,
            region,
            window,
            args.title,
            args.lumi,
            _injected(args.data),
        )
    elif args.kind == "tsne":
        ecfg = cfg.get("evaluate", {})
        tsne(
            args.data,
            args.embeddings,
            args.output,
            region,
            window,
            int(ecfg.get("tsne_events", 1500)),
            stable_seed(ecfg.get("seed", 0), "tsne"),
            args.title,
            args.lumi,
        )
    elif args.kind == "sculpting":
        sculpting(args.roc, args.mass, args.output, args.title, region, args.lumi)
    elif args.kind == "sic":
        sic(
            args.table,
            args.signal,
            args.output,
            setups=args.setups,
            lumi=args.lumi,
            working_points=args.working_points,
        )
    else:
        required(
            args.table,
            args.output,
            lumi=args.lumi,
            setups=args.setups,
            family=args.family,
            working_point=args.working_points[0] if args.working_points else None,
        )
