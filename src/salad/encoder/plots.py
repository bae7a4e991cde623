"""Loss-curve plot of an encoder training history (PNG)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..artifacts import atomic_output


def plot_history(history: pd.DataFrame, path: str | Path, title: str = "") -> None:
    """Train/val curves of every loss term against epoch, and the learning rate."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    terms = [c[len("train_"):] for c in history.columns if c.startswith("train_")]
    fig, axes = plt.subplots(1, len(terms) + 1, figsize=(3.2 * (len(terms) + 1), 3), squeeze=False)
    for ax, term in zip(axes[0], terms):
        for split, style in (("train", "-"), ("val", "--")):
            col = f"{split}_{term}"
            if col in history:
                ax.plot(history["epoch"], history[col], style, label=split)
        ax.set(title=term, xlabel="epoch")
        ax.legend()
    axes[0, -1].plot(history["epoch"], history["lr"])
    axes[0, -1].set(title="learning rate", xlabel="epoch")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
