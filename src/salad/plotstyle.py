"""One look for every salad figure (mplhep style, Agg backend).

Every plot function in salad calls `pyplot()` for a styled matplotlib, `exp_label(ax, lumi)` for
the "Simulation, √s = 13 TeV, L fb⁻¹" label, the fixed colours/labels/order of `setup_color`,
`setup_label`, `order_setups`, `METHODS`, and `save(fig, path)` (PNG at `DPI` plus a PDF next
to it). Histogram helpers: `step_hist` (step line with Poisson/√Σw² band and under/overflow
folded into the edge bins), `ratio_axes`/`ratio` (ratio panel), `sr_band`, `limit_arrow`.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from .artifacts import atomic_output

DPI = 200
SQRT_S_TEV = 13
# Okabe-Ito + tab10 leftovers: colour-blind safe, fixed per name in every figure.
PALETTE = [
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
    "#999999",
    "#8C564B",
    "#17BECF",
    "#BCBD22",
]
# setup name -> (label, colour); the order here is the order of every legend and table.
SETUPS = {
    "ID": ("ID (all signals in training)", PALETTE[0]),
    "IP": ("IP (held-out mass point)", PALETTE[1]),
    "EP": ("EP (held-out model)", PALETTE[2]),
    "bkg_only": ("background only", PALETTE[3]),
    "ID_d2": ("ID, latent d = 2", PALETTE[4]),
    "ID_d4": ("ID, latent d = 4", PALETTE[5]),
    "simclr_mlp": ("SimCLR MLP (self-sup.)", PALETTE[9]),
    "supsimclr_mlp": ("SimCLR MLP (supervised)", PALETTE[4]),
    "supsimclr_tf": ("SimCLR transformer, DINO head (supervised)", PALETTE[5]),
    "vicreg_tf": ("VICReg + CE transformer (supervised)", PALETTE[10]),
    "baseline_source": ("input features", PALETTE[8]),
    "baseline_leading": ("leading-object features", PALETTE[7]),
    "baseline_ref22": ("ref. [22] features", PALETTE[11]),
    "baseline_vae": ("VAE latent", PALETTE[6]),
}
# method -> (label, line style, marker); CATHODE first.
METHODS = {
    "cathode": ("CATHODE", "-", "o"),
    "iad": ("idealized AD (true bkg.)", "--", "s"),
    "supervised": ("fully supervised", ":", "^"),
}
# process group of paper A table I -> readable name
# (plain characters the plot font has: no combining tildes or sub/superscript digits)
GROUPS = {
    0: "γγ + jets",
    1: "ggF H",
    2: "VBF H",
    3: "VH",
    4: "ttH",
    -1: "χ±χ0 (C1N2) → Wh",
    -2: "X → S(ℓℓ)H",
    -3: "stop pair RPV",
    -4: "χ±χ0 (C1N1) RPV",
    -5: "sbottom pair → hh",
    -6: "Y → Hγ",
    -7: "top FCNC (tH)",
    -8: "stop pair RPC",
}


@lru_cache(maxsize=1)
def _style():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ROOT)
    plt.rcParams.update(
        {
            "font.size": 14,
            "axes.labelsize": 16,
            "axes.titlesize": 15,
            "xtick.labelsize": 14,
            "ytick.labelsize": 14,
            "legend.fontsize": 12,
            "figure.dpi": 100,
            "savefig.dpi": DPI,
            "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
            "legend.frameon": False,
            "mathtext.fontset": "dejavusans",
        }
    )
    return plt


def pyplot():
    """matplotlib.pyplot with the Agg backend and the salad/mplhep style applied."""
    return _style()


def _fallback(name: str, palette: Sequence[str]) -> str:
    return palette[zlib.crc32(name.encode()) % len(palette)]


def setup_label(name: str) -> str:
    """Readable name of a setup/representation (the name itself when unknown)."""
    return SETUPS.get(str(name), (str(name), None))[0]


def setup_color(name: str) -> str:
    """Fixed colour of a setup in every figure (unknown names: a stable hashed colour)."""
    entry = SETUPS.get(str(name))
    return entry[1] if entry else _fallback(str(name), PALETTE)


def order_setups(names: Iterable[str]) -> list[str]:
    """Unique names in the fixed order of SETUPS; unknown names after, alphabetically."""
    names = list(dict.fromkeys(map(str, names)))
    known = [n for n in SETUPS if n in names]
    return known + sorted(n for n in names if n not in SETUPS)


def group_label(group: int) -> str:
    return GROUPS.get(int(group), f"group {int(group)}")


@lru_cache(maxsize=1)
def _process_labels() -> dict:
    path = Path(__file__).resolve().parents[2] / "config" / "processes.yaml"
    try:
        import yaml

        return {k: v.get("label", k) for k, v in yaml.safe_load(path.read_text())["processes"].items()}
    except (OSError, KeyError, TypeError, AttributeError):
        return {}


def signal_label(name: str, math: bool = True) -> str:
    """Readable name of a sample (config/processes.yaml label), else the sample name. With
    `math`, combining tilde/bar accents (t̃, t̄) become mathtext the plot font can draw."""
    label = _process_labels().get(str(name), str(name))
    if math:
        label = re.sub("(\\w)\u0303", r"$\\tilde{\1}$", label)
        label = re.sub("(\\w)\u0304", r"$\\bar{\1}$", label).replace("$$", "")
    return label


def lumi_text(lumi: float | None) -> str:
    energy = f"$\\sqrt{{s}}$ = {SQRT_S_TEV} TeV"
    return f"{energy}, {lumi:g} fb$^{{-1}}$" if lumi else energy


def exp_label(ax, lumi: float | None = None) -> None:
    """'Simulation' (left) and '√s = 13 TeV, L fb⁻¹' (right) above the axes."""
    ax.text(
        0.0,
        1.01,
        "Simulation",
        transform=ax.transAxes,
        ha="left",
        va="bottom",
        fontstyle="italic",
        fontweight="bold",
        fontsize=13,
    )
    ax.text(1.0, 1.01, lumi_text(lumi), transform=ax.transAxes, ha="right", va="bottom", fontsize=13)


def save(fig, path) -> list[Path]:
    """Write `path` (PNG, DPI) and, for a .png path, the same figure as PDF next to it."""
    plt = pyplot()
    path = Path(path)
    written = [path]
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    if path.suffix == ".png":
        pdf = path.with_suffix(".pdf")
        with atomic_output(pdf) as tmp:
            fig.savefig(tmp, format="pdf", bbox_inches="tight")
        written.append(pdf)
    plt.close(fig)
    return written


def pdf_of(path: str) -> str:
    """The PDF `save` writes next to a PNG (for Snakemake outputs)."""
    return str(Path(path).with_suffix(".pdf"))


def hist_counts(values, edges, weights=None, overflow: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(sum of weights, sqrt(sum of weights²)) per bin; with `overflow` the entries below/above
    the range are added to the first/last bin."""
    values = np.asarray(values, float)
    weights = np.ones_like(values) if weights is None else np.asarray(weights, float)
    if overflow:
        values = np.clip(values, edges[0], edges[-1] - 1e-9 * (edges[-1] - edges[0]))
    counts, _ = np.histogram(values, edges, weights=weights)
    sumw2, _ = np.histogram(values, edges, weights=weights**2)
    return counts, np.sqrt(sumw2)


def step_hist(
    ax, values, edges, weights=None, density: bool = True, overflow: bool = True, fill: bool = False, **kw
) -> tuple[np.ndarray, np.ndarray]:
    """Step histogram with a ±1σ statistical band; returns (heights, errors) as drawn.

    density: normalised to unit area (entries per unit x). Overflow folded into the edge bins.
    """
    counts, err = hist_counts(values, edges, weights, overflow)
    if density:
        norm = counts.sum() * np.diff(edges)
        norm = np.where(norm > 0, norm, 1.0)
        counts, err = counts / norm, err / norm
    color = kw.pop("color", None)
    line = ax.stairs(
        counts, edges, color=color, fill=fill, alpha=0.35 if fill else 1.0, lw=0 if fill else 1.8, **kw
    )
    color = line.get_edgecolor() if not fill else line.get_facecolor()
    ax.stairs(counts + err, edges, baseline=counts - err, fill=True, color=color, alpha=0.25, lw=0)
    return counts, err


def ratio_axes(ncols: int = 1, width: float = 6.0, height: float = 6.0, squeeze: bool = True):
    """Figure with a main panel over a ratio panel (3:1) per column; (fig, axes, ratio axes)."""
    plt = pyplot()
    fig, axes = plt.subplots(
        2,
        ncols,
        figsize=(width * ncols, height),
        sharex="col",
        gridspec_kw={"height_ratios": [3, 1], "hspace": 0.06},
    )
    axes = np.asarray(axes).reshape(2, ncols)
    if squeeze and ncols == 1:
        return fig, axes[0, 0], axes[1, 0]
    return fig, axes[0], axes[1]


def ratio(
    rax, edges, num, num_err, den, den_err=None, color="k", label=None, ylabel: str = "ratio", ylim=(0.5, 1.5)
) -> np.ndarray:
    """num/den per bin with the propagated statistical error of both; returns the ratio."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(den > 0, num / den, np.nan)
        rel = (num_err / np.where(num > 0, num, np.nan)) ** 2
        if den_err is not None:
            rel = rel + (den_err / np.where(den > 0, den, np.nan)) ** 2
        e = np.abs(r) * np.sqrt(rel)
    centers = 0.5 * (edges[1:] + edges[:-1])
    rax.errorbar(centers, r, yerr=e, xerr=np.diff(edges) / 2, fmt="o", ms=3, color=color, label=label)
    rax.axhline(1.0, color="grey", lw=1, ls="--")
    rax.set_ylim(*ylim)
    rax.set_ylabel(ylabel)
    return r


def sr_band(ax, signal_region, label: str | None = "signal region") -> None:
    """Shade the signal region [lo, hi] GeV."""
    if signal_region:
        ax.axvspan(*signal_region, color="gold", alpha=0.18, lw=0, label=label)


def limit_arrow(ax, x, y, color, up: bool = True, frac: float = 0.25, log: bool = True) -> None:
    """Arrow from y pointing up (lower limit) or down (upper limit), length `frac` of y
    (multiplicative on log axes)."""
    end = y * (1 + frac) if up else y / (1 + frac)
    if not log:
        end = y + frac * abs(y or 1) * (1 if up else -1)
    ax.annotate("", xy=(x, end), xytext=(x, y), arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.5})


def legend(ax_or_fig, *args, **kw):
    kw.setdefault("frameon", False)
    return ax_or_fig.legend(*args, **kw)
