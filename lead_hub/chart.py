"""The leaderboard's chart: the primary score of each model as a dot plot, and score versus size with the Pareto
front.

Dots, not bars: transferability scores such as LEAD's (a mean log-likelihood) are often negative and have no
natural zero, so a bar would measure the distance to an arbitrary floor. Each model is one row of the dot plot,
best on top, labelled ``rank  name``; in the size panel a point carries only its rank, and models at the same spot
share one label (``3, 4``). Each rank label goes to the first of eight positions around its point (beside it
first) where it covers no other label, no other point and stays inside the panel (greedy placement, measured with
the figure's own renderer); with no free position it takes the least covered one. matplotlib has no such placement built in, and
the one package that does it (adjustText) moves labels iteratively by repulsion, more than this needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

PARETO_COLOUR, OTHER_COLOUR = "tab:orange", "tab:blue"
_LABEL_OFFSETS_POINTS = ((6, -3), (-12, -3), (6, 4), (6, -10), (-12, 4), (-12, -10), (0, 8), (0, -15))
"""Where a rank label may go, in points from its dot: beside it first, so it reads as that dot's."""
_SAME_SPOT_PIXELS = 6.0
_LOG_SCALE_FROM_RATIO = 4.0


def leaderboard_figure(table: pd.DataFrame, primary: str, names: Mapping[str, str], title: str, *,
                       width: float = 13.0):
    """A matplotlib figure of ``table`` (a leaderboard table, best first) ranked by ``primary``; ``names`` maps a
    model id to the name shown. Rows without a primary score are left out. ``width`` in inches: a narrower figure
    keeps its 8-point labels legible where it is shown in a narrow column (the Space's).

    The figure is drawn on its own Agg canvas, outside pyplot: it leaves the caller's backend alone (a notebook
    shows it inline), needs no ``plt.close``, and several threads (the Space's visitors) can draw at once."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scored = table.dropna(subset=[primary])
    figure = Figure(figsize=(width, 0.4 * max(len(scored), 4) + 1.8))
    FigureCanvasAgg(figure)
    dots, sizes = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    labels = [f"{_rank_text(row['rank'])}  {names[row['model_id']]}" for _, row in scored.iterrows()]
    _dot_plot(dots, scored[primary].to_numpy(float), scored["pareto"].to_numpy(bool), labels)
    dots.set_xlabel(f"{primary} (higher is better; orange: on the Pareto front)")
    dots.set_title(title, fontsize=10)
    _size_plot(sizes, scored.dropna(subset=["num_params"]), primary)
    figure.tight_layout()
    _place_rank_labels(figure, sizes, scored.dropna(subset=["num_params"]), primary)
    return figure


def save_chart(table: pd.DataFrame, primary: str, names: Mapping[str, str], title: str, path: str | Path, *,
               width: float = 13.0) -> None:
    """Write :func:`leaderboard_figure` (``width`` inches wide) as a PNG at ``path``."""
    leaderboard_figure(table, primary, names, title, width=width).savefig(path, dpi=110)


def _dot_plot(axes, scores: np.ndarray, pareto: np.ndarray, labels: list[str]) -> None:
    rows = np.arange(len(scores))[::-1]  # the best model on the top row
    axes.hlines(rows, 0, 1, transform=axes.get_yaxis_transform(), color="0.9", linewidth=0.8, zorder=0)
    axes.scatter(scores, rows, color=[PARETO_COLOUR if flag else OTHER_COLOUR for flag in pareto], zorder=2)
    for row, score in zip(rows, scores):
        axes.annotate(f"{score:.4g}", (score, row), xytext=(6, 0), textcoords="offset points", va="center",
                      fontsize=8)
    axes.set_yticks(rows, labels, fontsize=8)
    axes.set_ylim(-0.7, len(scores) - 0.3)
    if len(scores):
        span = float(np.ptp(scores)) or max(abs(float(scores[0])), 1.0)
        axes.set_xlim(float(scores.min()) - 0.08 * span, float(scores.max()) + 0.2 * span)
    axes.grid(axis="x", color="0.9")


def _size_plot(axes, sized: pd.DataFrame, primary: str) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    colours = [PARETO_COLOUR if flag else OTHER_COLOUR for flag in sized["pareto"]]
    axes.scatter(sized["num_params"].astype(float), sized[primary], color=colours, zorder=2)
    front = sized[sized["pareto"].astype(bool)].sort_values("num_params")
    axes.plot(front["num_params"].astype(float), front[primary], color=PARETO_COLOUR, zorder=1,
              label="Pareto front")
    millions = FuncFormatter(lambda value, _: f"{value / 1e6:g} M")
    sizes = sized["num_params"].astype(float)
    if len(sizes) and sizes.max() >= _LOG_SCALE_FROM_RATIO * sizes.min():
        # Labels at 1, 2 and 5 of each decade over up to two decades, else at each decade; none on the minor
        # ticks, whose labels collide.
        decades = np.log10(sizes.max() / sizes.min())
        axes.set_xscale("log")
        axes.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if decades <= 2 else (1.0,), numticks=8))
        axes.xaxis.set_minor_formatter(NullFormatter())
    else:  # sizes within a factor of a few: a log axis would have no decade mark to label
        axes.xaxis.set_major_locator(MaxNLocator(4))
    axes.xaxis.set_major_formatter(millions)
    axes.set_xlabel("parameters (each point labelled by its rank)")
    axes.set_ylabel(primary)
    if len(front):
        axes.legend(fontsize=8, loc="best")


def _place_rank_labels(figure, axes, sized: pd.DataFrame, primary: str) -> None:
    if sized.empty:
        return
    renderer = figure.canvas.get_renderer()
    spots = axes.transData.transform(np.column_stack([sized["num_params"].astype(float), sized[primary]]))
    groups: list[list[int]] = []
    for index, spot in enumerate(spots):
        near = next((group for group in groups if np.hypot(*(spots[group[0]] - spot)) < _SAME_SPOT_PIXELS), None)
        if near is None:
            groups.append([index])
        else:
            near.append(index)
    panel = axes.get_window_extent(renderer)
    marker_radius = 5.0
    points = [(x - marker_radius, y - marker_radius, x + marker_radius, y + marker_radius) for x, y in spots]
    placed: list[tuple[float, float, float, float]] = []
    ranks = [_rank_text(rank) for rank in sized["rank"]]
    for group in groups:
        text = ", ".join(ranks[index] for index in group)
        anchor = (float(sized["num_params"].iloc[group[0]]), float(sized[primary].iloc[group[0]]))
        best = None
        for offset in _LABEL_OFFSETS_POINTS:
            label = axes.annotate(text, anchor, xytext=offset, textcoords="offset points", fontsize=8)
            extent = label.get_window_extent(renderer)
            box = (extent.x0, extent.y0, extent.x1, extent.y1)
            others = [point for index, point in enumerate(points) if index not in group]
            covered = sum(_overlap_area(box, other) for other in placed + others)
            outside = not (panel.x0 <= box[0] and box[2] <= panel.x1 and panel.y0 <= box[1] and box[3] <= panel.y1)
            cost = covered + (1e6 if outside else 0.0)
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, label, box)
            else:
                label.remove()
            if cost == 0:
                break
        placed.append(best[2])


def _overlap_area(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return max(width, 0.0) * max(height, 0.0)


def _rank_text(rank) -> str:
    return "–" if pd.isna(rank) else str(int(rank))
