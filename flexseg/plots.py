"""Every matplotlib figure flexseg writes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from flexseg.fsutil import atomic_path  # noqa: E402


def plot_history(rows: list[dict], keys: list[str], title: str, path: Path) -> None:
    """Line plot of per-epoch values, as the seed's train_metrics.png / train_losses.png."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    epochs = [r["epoch"] for r in rows]
    for key in keys:
        values = [r.get(key) for r in rows]
        if any(v is not None for v in values):
            ax.plot(epochs, values, marker="o", markersize=3, label=key)
    ax.set_xlabel("epoch")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
