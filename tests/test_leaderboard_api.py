"""The Leaderboard as a notebook uses it: a chart it can show inline, and a round trip through the Hub."""

from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.figure import Figure
from test_hub import loopback  # noqa: F401 - pytest fixture: the loopback Hub, alice signed in
from test_hub_merge import ranking

from lead_hub.leaderboard import Leaderboard


def test_plot_returns_the_figure_and_writes_a_png_only_when_asked(tmp_path):
    board = ranking("eurosat", {"a": 1.0, "b": 2.0, "c": 0.5})
    figure = board.plot()
    assert isinstance(figure, Figure) and len(figure.axes) == 2
    assert list(tmp_path.iterdir()) == []
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert sorted(labels) == ["1  b", "2  a", "3  c"]
    again = board.plot(tmp_path / "chart.png")
    assert isinstance(again, Figure) and (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"


def test_plot_leaves_the_callers_matplotlib_backend_alone():
    import matplotlib

    before = matplotlib.get_backend()
    ranking("eurosat", {"a": 1.0}).plot()
    assert matplotlib.get_backend() == before


def test_push_to_hub_then_from_hub_gives_the_same_ranking(loopback):  # noqa: F811
    board = ranking("eurosat", {"a": 1.0, "b": 2.0, "c": 0.5})
    result = board.push_to_hub("alice/leaderboard")
    assert result.repo_id == "alice/leaderboard" and result.rows_added == 3
    read = Leaderboard.from_hub("alice/leaderboard")
    assert isinstance(read, Leaderboard)
    assert read.provenance == board.provenance and read.metrics == ["lead", "logme"]
    columns = ["rank", "model_id", "model_revision", "lead", "logme", "num_params", "pareto"]
    pd.testing.assert_frame_equal(read.table[columns], board.table[columns])
    assert read.best_model == "b"


def test_from_hub_with_several_rankings_asks_which_dataset(loopback):  # noqa: F811
    ranking("eurosat", {"a": 1.0, "b": 2.0}).push_to_hub("alice/leaderboard")
    ranking("pets", {"a": 3.0, "c": 0.5}).push_to_hub("alice/leaderboard")
    with pytest.raises(ValueError, match=r"holds 2 rankings; it has rankings of eurosat \[train\], pets \[train\]: "
                                         "pass dataset="):
        Leaderboard.from_hub("alice/leaderboard")
    pets = Leaderboard.from_hub("alice/leaderboard", dataset="pets")
    assert pets.table["model_id"].tolist() == ["a", "c"] and pets.provenance["dataset"] == "pets"
    with pytest.raises(ValueError, match="holds no ranking of dataset 'cars'"):
        Leaderboard.from_hub("alice/leaderboard", dataset="cars")
