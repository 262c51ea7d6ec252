"""The report's charts as inline SVG (text kept as text: selectable, sharp at any zoom)."""

from __future__ import annotations

import io
import math

from matplotlib import rcParams
from matplotlib.figure import Figure  # no pyplot: nothing global is touched
from matplotlib.ticker import MaxNLocator

from flexseg.report.cases import class_colour

LINE_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000"]


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    with rcParams_override({"svg.fonttype": "none", "svg.hashsalt": "flexseg"}):  # text as text, stable ids
        fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg") :]  # inline: no XML prolog or DOCTYPE


class rcParams_override:  # noqa: N801 (a context manager named as the setting it is)
    """Set matplotlib settings for the block, then put them back."""

    def __init__(self, values: dict) -> None:
        self.values, self.saved = values, {}

    def __enter__(self) -> None:
        self.saved = {k: rcParams[k] for k in self.values}
        rcParams.update(self.values)

    def __exit__(self, *exc: object) -> None:
        rcParams.update(self.saved)


def curves(series: dict[str, list[tuple[int, float]]], title: str, ylabel: str, log: bool = False) -> str:
    """Lines of (epoch, value) points, one a named series; empty series are left out."""
    fig = Figure(figsize=(5.2, 3.0), dpi=96)
    ax = fig.subplots()
    for (name, points), colour in zip(series.items(), LINE_COLOURS * 4):
        points = [(e, v) for e, v in points if v is not None and math.isfinite(v)]
        if points:
            ax.plot(*zip(*points), marker="o", markersize=2.5, linewidth=1.4, label=name, color=colour)
    if log:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize=8)
    return _svg(fig)


def spread(values: dict[str, list[float]], title: str, ylabel: str, classes: list[str]) -> str:
    """Each class's values over the cases: a box (quartiles, median) with every case as a dot."""
    fig = Figure(figsize=(1.6 + 1.3 * max(1, len(values)), 3.0), dpi=96)
    ax = fig.subplots()
    names = list(values)
    data = [[v for v in values[n] if v is not None and math.isfinite(v)] for n in names]
    shown = [i for i, d in enumerate(data) if d]
    if shown:
        ax.boxplot([data[i] for i in shown], positions=[i + 1 for i in shown], widths=0.5, showfliers=False)
        for i in shown:
            jitter = [(k * 0.618) % 1 - 0.5 for k in range(len(data[i]))]  # deterministic spread of the dots
            colour = "#%02x%02x%02x" % class_colour(classes.index(names[i]) if names[i] in classes else i + 1)
            ax.scatter(
                [i + 1 + 0.25 * j for j in jitter],
                data[i],
                s=9,
                alpha=0.7,
                color=colour,
                edgecolors="#333333",
                linewidths=0.3,
            )
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_xlim(0.4, len(names) + 0.6)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3, axis="y")
    return _svg(fig)
