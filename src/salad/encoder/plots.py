"""Loss-curve plot of an encoder training history (salad.plotstyle: PNG at 200 dpi + PDF)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import plotstyle as ps

TERMS = {"loss": "total loss", "kl": "KL term", "contrastive": "contrastive loss"}


def plot_history(history: pd.DataFrame, path: str | Path, title: str = "") -> None:
    """Train (solid) / validation (dashed) curves of every loss term against epoch, and the
    learning rate; one panel each."""
    plt = ps.pyplot()
    from matplotlib.ticker import MaxNLocator

    terms = [c[len("train_") :] for c in history.columns if c.startswith("train_")]
    fig, axes = plt.subplots(1, len(terms) + 1, figsize=(4.5 * (len(terms) + 1), 4.2), squeeze=False)
    for ax, term in zip(axes[0], terms):
        for split, style, color in (("train", "-", ps.PALETTE[0]), ("val", "--", ps.PALETTE[5])):
            col = f"{split}_{term}"
            if col in history:
                ax.plot(
                    history["epoch"],
                    history[col],
                    style,
                    color=color,
                    marker="o",
                    ms=3,
                    label="validation" if split == "val" else split,
                )
        ax.set(xlabel="epoch", ylabel=TERMS.get(term, f"{term} loss"))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=11)
    axes[0, -1].plot(history["epoch"], history["lr"], color="k")
    axes[0, -1].set(xlabel="epoch", ylabel="learning rate")
    axes[0, -1].xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    fig.tight_layout()
    ps.save(fig, path)
