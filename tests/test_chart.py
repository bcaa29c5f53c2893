"""The leaderboard chart: scores as dots (no bars from an arbitrary floor), and no label drawn over another.

Overlap is measured on the rendered figure, with matplotlib's own renderer: the bounding boxes of every tick
label of each axis, of the rank labels in the size panel, and of the score labels of the dot plot.
"""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.patches import Rectangle
from matplotlib.text import Annotation

from lead_hub.chart import leaderboard_figure
from lead_hub.leaderboard import Leaderboard, display_names


def board_of(scores, sizes) -> Leaderboard:
    rows = [{"model_id": f"hf-hub:org/model-{index:02d}", "lead": score, "num_params": size, "feature_dim": 512}
            for index, (score, size) in enumerate(zip(scores, sizes))]
    return Leaderboard.from_rows(rows, {"metrics": ["lead"], "dataset": "d", "split": "train"})


CROWDED = {  # ties, near-equal sizes and scores: the cases where labels collided
    "demo-like": ([-0.8173, -0.8492, -0.885, -0.9016, -0.9758, -1.459], [3.21e6, 2.59e6, 3.46e6, 1.33e6, 4.7e5, 2.1e5]),
    "12 close models": ([-0.8 - 0.01 * (i % 4) - (0.5 if i == 11 else 0) for i in range(12)],
                        [2e6 + 1e4 * (i % 3) for i in range(12)]),
    "ties at one size": ([9.0] * 5 + [8.5], [1e6] * 6),
    "wide size range": (list(np.linspace(-3, -0.5, 15)), [int(size) for size in np.geomspace(1e5, 9e8, 15)]),
}


def boxes_overlap(a, b) -> bool:
    return a.x0 < b.x1 - 0.5 and b.x0 < a.x1 - 0.5 and a.y0 < b.y1 - 0.5 and b.y0 < a.y1 - 0.5


@pytest.mark.parametrize("case", CROWDED)
def test_no_label_of_the_chart_covers_another(case):
    board = board_of(*CROWDED[case])
    figure = leaderboard_figure(board.table, "lead", display_names(board.table["model_id"]), "d [train]")
    try:
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        for axes in figure.axes:
            for axis in (axes.xaxis, axes.yaxis):
                ticks = [label for label in axis.get_ticklabels(which="both") if label.get_visible()
                         and label.get_text() and axes.get_window_extent().expanded(1.2, 1.2).overlaps(
                             label.get_window_extent(renderer))]
                for first, second in itertools.combinations(ticks, 2):
                    assert not boxes_overlap(first.get_window_extent(renderer), second.get_window_extent(renderer)), \
                        f"{case}: tick labels {first.get_text()!r} and {second.get_text()!r} overlap"
            labels = [text for text in axes.texts if isinstance(text, Annotation)]
            for first, second in itertools.combinations(labels, 2):
                assert not boxes_overlap(first.get_window_extent(renderer), second.get_window_extent(renderer)), \
                    f"{case}: labels {first.get_text()!r} and {second.get_text()!r} overlap"
        dots, sizes = figure.axes
        rank_labels = sorted(int(rank) for text in sizes.texts for rank in text.get_text().split(", "))
        assert rank_labels == sorted(board.table["rank"].astype(int).tolist())  # every model labelled once
    finally:
        plt.close(figure)


def test_negative_scores_are_dots_not_bars_from_an_arbitrary_floor():
    board = board_of(*CROWDED["demo-like"])
    figure = leaderboard_figure(board.table, "lead", display_names(board.table["model_id"]), "d [train]")
    try:
        dots = figure.axes[0]
        assert not [patch for patch in dots.patches if isinstance(patch, Rectangle)]
        plotted = np.concatenate([collection.get_offsets()[:, 0] for collection in dots.collections
                                  if isinstance(collection, PathCollection)])
        assert sorted(plotted) == sorted(board.table["lead"])  # each score drawn at its own value
        left, right = dots.get_xlim()
        assert left < board.table["lead"].min() and board.table["lead"].max() < right
        rows = sorted(zip(dots.get_yticks(), (label.get_text() for label in dots.get_yticklabels())))
        assert rows[-1][1] == "1  model-00" and rows[0][1] == "6  model-05"  # the best model on the top row
    finally:
        plt.close(figure)


def test_a_board_without_scores_still_draws(tmp_path):
    board = board_of([np.nan, np.nan], [1e6, 2e6])
    board.plot(tmp_path / "empty.png")
    assert (tmp_path / "empty.png").read_bytes()[:4] == b"\x89PNG"
