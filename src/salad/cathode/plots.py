"""Figures of the CATHODE stage (matplotlib, Agg backend, PNG).

`python -m salad evaluate plot <kind> ...` with kind one of
- latent:     1-d projections of each latent dimension in the SR: true background, template, signal
- tsne:       t-SNE of the SR latent, coloured by process class (subsampled)
- sculpting:  ROC (template vs true SR background) and m_yy before/after the cut
- sic:        SIC vs injected S/sqrt(B), band = spread over instances x ensembles, per setup
- required:   injected S/sqrt(B) needed for 3 sigma per signal and setup (arrows: not reached)
"""
from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..artifacts import atomic_output, read_parquet  # noqa: E402
from ..config import parse_stage_config  # noqa: E402
from . import (latent_columns, read_dataset, read_embeddings, read_template,  # noqa: E402
               region_masks, stable_seed)


def _save(fig, path) -> None:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def latent(data_path, emb_path, template_path, output, signal_region, window, title="") -> None:
    data = read_dataset(data_path, read_embeddings(emb_path))
    cols = latent_columns(data)
    tmpl = read_template(template_path, cols)
    sr, _ = region_masks(data["myy"].to_numpy(), signal_region, window)
    bkg, sig = data[sr & ~data["is_signal"]], data[sr & data["is_signal"]]
    n = len(cols)
    ncol = min(3, n)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    for ax, c in zip(axes.flat, cols):
        values = np.concatenate([bkg[c], tmpl[c], sig[c]])
        edges = np.linspace(*np.percentile(values, [0.5, 99.5]), 41)
        ax.hist(tmpl[c], edges, weights=tmpl["weight"], density=True, color="tab:blue",
                alpha=0.4, label="template (flow + SM H)")
        ax.hist(bkg[c], edges, density=True, histtype="step", color="tab:blue", lw=1.5,
                label="true SR background")
        if len(sig):
            ax.hist(sig[c], edges, density=True, histtype="step", color="tab:red", lw=1.5,
                    label="injected signal")
        ax.set_xlabel(f"latent {c} (arbitrary units)")
        ax.set_ylabel("normalised entries")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title or "Latent projections in the signal region")
    _save(fig, output)


def tsne(data_path, emb_path, output, signal_region, window, n_events=1500, seed=0,
         title="") -> None:
    from sklearn.manifold import TSNE
    data = read_dataset(data_path, read_embeddings(emb_path))
    cols = latent_columns(data)
    sr, _ = region_masks(data["myy"].to_numpy(), signal_region, window)
    sel = data[sr]
    rng = np.random.default_rng(seed)
    if len(sel) > n_events:
        sel = sel.iloc[np.sort(rng.choice(len(sel), n_events, replace=False))]
    emb = TSNE(n_components=2, init="pca", random_state=seed,
               perplexity=min(30.0, max(2.0, (len(sel) - 1) / 3))).fit_transform(
        sel[cols].to_numpy())
    group = sel["group"].to_numpy()
    classes = {"γγ continuum": group == 0, "SM Higgs (ggF, VBF, VH, ttH)": (group >= 1) & (group <= 4),
               "BSM signal": group < 0}
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for (label, mask), color in zip(classes.items(), ["tab:blue", "tab:green", "tab:red"]):
        if mask.any():
            ax.scatter(emb[mask, 0], emb[mask, 1], s=4, alpha=0.6, color=color,
                       label=f"{label} ({mask.sum()})")
    ax.set_xlabel("t-SNE axis 1 (arbitrary units)")
    ax.set_ylabel("t-SNE axis 2 (arbitrary units)")
    ax.legend(fontsize=8, markerscale=3)
    ax.set_title(title or "t-SNE of the SR latent space")
    _save(fig, output)


def sculpting(roc_paths, mass_paths, output, title="") -> None:
    roc = pd.concat([read_parquet(p) for p in roc_paths], ignore_index=True)
    mass = pd.concat([read_parquet(p) for p in mass_paths], ignore_index=True)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    if len(roc):
        curves = roc.pivot_table(index="fpr", columns=["signal", "instance", "classifier"],
                                 values="tpr")
        curves = curves.T.drop_duplicates().T   # signals share their no-injection datasets
        m, s = curves.mean(axis=1), curves.std(axis=1).fillna(0)
        a1.plot(m.index, m, color="k", label=f"template vs true background ({curves.shape[1]} BDTs)")
        a1.fill_between(m.index, m - s, m + s, color="grey", alpha=0.4, label="±1 std over BDTs")
    a1.plot([0, 1], [0, 1], ls="--", color="tab:red", label="random (AUC 0.5)")
    a1.set_xlabel("template efficiency (false positive rate)")
    a1.set_ylabel("true SR background efficiency (true positive rate)")
    a1.legend(fontsize=8)
    if len(mass):
        mass = mass.drop_duplicates(["instance", "ensemble", "efficiency", "bin_lo", "n_before",
                                     "n_after"])
        for k, (eff, part) in enumerate(sorted(mass.groupby("efficiency"), key=lambda x: -x[0])):
            h = part.groupby(["bin_lo", "bin_hi"], as_index=False).agg(
                before=("n_before", "mean"), after_m=("n_after", "mean"),
                after_s=("n_after", "std"))
            centers, width = (h["bin_lo"] + h["bin_hi"]) / 2, h["bin_hi"] - h["bin_lo"]
            nb, na = h["before"].sum(), max(h["after_m"].sum(), 1e-12)
            if k == 0:
                a2.errorbar(centers, h["before"] / nb / width,
                            yerr=np.sqrt(h["before"]) / nb / width, xerr=width / 2, fmt="o",
                            ms=3, color="tab:blue", label="before cut")
            err = np.sqrt(h["after_m"] + h["after_s"].fillna(0) ** 2)
            a2.errorbar(centers, h["after_m"] / na / width, yerr=err / na / width,
                        xerr=width / 2, fmt="s", ms=3, color=f"C{k + 2}",
                        label=f"after cut keeping {100 * eff:g} % of SR data")
    a2.set_xlabel(r"$m_{\gamma\gamma}$ [GeV]")
    a2.set_ylabel(r"normalised entries / GeV")
    a2.legend(fontsize=8)
    fig.suptitle(title or "Sculpting check without injected signal")
    _save(fig, output)


def sic(table_path, signal, output, method="cathode", setups=None) -> None:
    """SIC vs injected strength for one signal, a panel per working point: a colour per setup
    (`setups`, default all in the table), a line style per method; band = spread of CATHODE."""
    from matplotlib.lines import Line2D
    tab = read_parquet(table_path)
    tab = tab[(tab["signal"] == signal) & (tab["strength"] > 0)]
    if setups:
        tab = tab[tab["setup"].isin(list(setups))]
    wps = sorted(tab["eps_b"].unique())
    names = list(setups) if setups else sorted(tab["setup"].unique())
    names = [n for n in names if n in set(tab["setup"])]
    fig, axes = plt.subplots(1, max(1, len(wps)), figsize=(4.6 * max(1, len(wps)) + 1.8, 4.0),
                             squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ((method, "-", "CATHODE"), ("iad", "--", "idealized (true bkg)"),
              ("supervised", ":", "supervised"))
    for ax, wp in zip(axes.flat, wps):
        t = tab[tab["eps_b"] == wp]
        for i, setup in enumerate(names):
            color = colors[i % len(colors)]
            for m, ls, _ in styles:
                g = t[(t["setup"] == setup) & (t["method"] == m)].sort_values("strength")
                if g.empty:
                    continue
                ax.plot(g["strength"], g["sic_mean"], ls=ls, color=color,
                        marker="o" if m == method else None, ms=3, lw=1.6 if m == method else 1)
                if m == method:
                    ax.fill_between(g["strength"], g["sic_mean"] - g["sic_std"],
                                    g["sic_mean"] + g["sic_std"], color=color, alpha=0.2)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xlabel(r"injected $S/\sqrt{B}$ in the SR (before selection)")
        ax.set_ylabel(r"SIC = $\epsilon_S/\sqrt{\epsilon_B}$")
        ax.set_title(rf"{signal}, $\epsilon_B$ = {100 * wp:g} %")
        ax.set_ylim(bottom=0)
    handles = [Line2D([], [], color=colors[i % len(colors)], lw=2) for i in range(len(names))]
    handles += [Line2D([], [], color="black", ls=ls) for _, ls, _ in styles]
    labels = names + [label for _, _, label in styles]
    fig.legend(handles, labels, loc="center right", fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1 - 1.7 / fig.get_figwidth(), 1))
    _save(fig, output)


def required(table_path, output, method="cathode") -> None:
    tab = read_parquet(table_path)
    tab = tab[tab["method"] == method]
    wp = tab["eps_b"].min() if len(tab) else 0.0
    tab = tab[tab["eps_b"] == wp]
    signals = sorted(tab["signal"].unique())
    setups = sorted(tab["setup"].unique())
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(signals) + 2), 4.2))
    for i, setup in enumerate(setups):
        off = (i - (len(setups) - 1) / 2) * 0.15
        for j, sig in enumerate(signals):
            r = tab[(tab["setup"] == setup) & (tab["signal"] == sig)]
            if r.empty:
                continue
            r = r.iloc[0]
            x = j + off
            if r["reached"]:
                lo = r["required_strength"] - r["required_lo"]
                hi = (r["required_hi"] - r["required_strength"]) if np.isfinite(r["required_hi"]) else 0
                ax.errorbar(x, r["required_strength"], yerr=[[lo], [hi]], fmt="o", color=f"C{i}",
                            label=setup if j == 0 else None)
            else:
                ax.annotate("", xy=(x, r["required_strength"] * 1.15), xytext=(x, r["required_strength"]),
                            arrowprops={"arrowstyle": "->", "color": f"C{i}"})
                ax.plot(x, r["required_strength"], "_", ms=12, color=f"C{i}",
                        label=setup if j == 0 else None)
    ax.set_xticks(range(len(signals)), signals, rotation=30)
    ax.set_xlabel("signal model")
    ax.set_ylabel(r"injected $S/\sqrt{B}$ for 3$\sigma$ after selection")
    ax.set_title(rf"Required injection ($\epsilon_B$ = {100 * wp:g} %; arrow: not reached)")
    ax.legend(fontsize=8)
    _save(fig, output)


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
    parser.add_argument("--setups", nargs="*", default=None, help="setups shown (sic)")
    parser.add_argument("--title", default="")
    parser.add_argument("--output", required=True)
    parser.add_argument("--config", default="")
    parser.add_argument("--log", default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    cfg = parse_stage_config(args.config)
    region = cfg.get("regions", {}).get("signal_region")
    window = cfg.get("window")
    if args.kind == "latent":
        latent(args.data, args.embeddings, args.template, args.output, region, window, args.title)
    elif args.kind == "tsne":
        ecfg = cfg.get("evaluate", {})
        tsne(args.data, args.embeddings, args.output, region, window,
             int(ecfg.get("tsne_events", 1500)), stable_seed(ecfg.get("seed", 0), "tsne"),
             args.title)
    elif args.kind == "sculpting":
        sculpting(args.roc, args.mass, args.output, args.title)
    elif args.kind == "sic":
        sic(args.table, args.signal, args.output, setups=args.setups)
    else:
        required(args.table, args.output)
