"""The README's demo output is what the demo command prints today: same models, same order, same scores to the
printed precision. Regenerate it with ``python tools/refresh_docs.py`` when the defaults change.

This is the end-to-end test that runs everywhere: the README's own command (six real models on 300 real
EuroSAT tiles from the repository's ``demo/``), through the CLI, offline.
"""

from __future__ import annotations

import re
import sys
from decimal import Decimal

import pandas as pd
import pytest
from conftest import REPOSITORY_ROOT

sys.path.insert(0, str(REPOSITORY_ROOT / "tools"))
from refresh_docs import CONSOLE_COLUMNS, DEMO_COMMAND, README, demo_block, ranked_rows  # noqa: E402

from lead_hub.cli import main  # noqa: E402

readme = README.read_text(encoding="utf-8")


def test_the_readme_shows_the_demo_command_that_its_output_block_comes_from():
    commands = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    assert any(line.split("#")[0].split() == list(DEMO_COMMAND) for block in commands for line in block.splitlines())
    rows = ranked_rows(demo_block(readme))
    assert [row.rank for row in rows] == [1, 2, 3, 4, 5, 6]


@pytest.mark.slow
def test_the_readme_demo_table_matches_a_real_run_of_the_demo_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(CONSOLE_COLUMNS))
    monkeypatch.chdir(tmp_path)  # a fresh folder, as in a new clone: the feature cache starts empty
    assert main([*DEMO_COMMAND[1:], "--quiet", "--output", "run"]) == 0
    printed = capsys.readouterr().out
    shown, ran = ranked_rows(demo_block(readme)), ranked_rows(printed)
    stale = "the README's demo output is stale: run python tools/refresh_docs.py"
    assert [row.model for row in shown] == [row.model for row in ran], stale
    # Each printed score is the run's full-precision score rounded to the digits the README shows.
    scores = pd.read_csv(tmp_path / "run" / "leaderboard.csv").sort_values("rank")["lead"]
    for row, score in zip(shown, scores, strict=True):
        printed_score = Decimal(row.score)
        half_unit = Decimal(1).scaleb(printed_score.as_tuple().exponent) / 2
        assert abs(Decimal(repr(score)) - printed_score) <= half_unit, f"{row.model}: {stale}"
