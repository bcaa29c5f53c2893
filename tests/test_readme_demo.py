"""The README's figures are current: its demo output is what the demo command prints today (same models, same
order, same scores to the printed precision; regenerate it with ``python tools/refresh_docs.py`` when the
defaults change), and its "which metric" figures are those of the benchmark's generated tables
(benchmarks/results/tau_full.md and tau_low_data.md, written by ``python benchmarks/report.py --write-dir``).

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
    monkeypatch.chdir(tmp_path)  # a fresh folder and cache, as in a new clone: nothing is read back
    monkeypatch.setenv("LEAD_HUB_CACHE", str(tmp_path / "cache"))
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


BENCHMARK_TABLES = [REPOSITORY_ROOT / "benchmarks" / "results" / name for name in ("tau_full.md", "tau_low_data.md")]


#: The benchmark's name of the variant a README row quotes, where it is not the metric's name: LEAD's default is
#: the whole-network cell (the benchmark's "lead" is the previous, head-only default).
README_ROWS = {"lead": "lead ntk=full head_input=standardized S=64 fit=in_sample c=1e-08 ce_form=prob"}
#: The benchmark's name of what `lead.ntk=head` scores with (the head-only NTK's default cell).
HEAD_ONLY_ROW = "lead ntk=head head_input=standardized fit=in_sample c=3.815e-06 ce_form=prob"


def benchmark_row(section: str, variant: str) -> list[str]:
    """The cells of ``variant``'s row in the table under the heading that starts with ``section`` in the benchmark's
    generated tables."""
    text = "\n".join(path.read_text(encoding="utf-8") for path in BENCHMARK_TABLES)
    start = text.index(f"### {section}")
    end = text.find("\n#", start + 1)
    for line in text[start:end if end > 0 else None].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] == variant:
            return cells
    raise AssertionError(f"no row {variant!r} under '{section}' in {[path.name for path in BENCHMARK_TABLES]}")


def first_number(cell: str) -> str:
    return re.search(r"-?\d+\.\d+", cell).group(0)


def readme_metric_rows():
    """Each row of the README's "which metric" table: the line, its cells, and the benchmark's names of the
    variants its first cell names."""
    section = readme[readme.index("## Which metric to pick"):readme.index("## Documentation")]
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        variants = [README_ROWS.get(variant, variant) for variant in re.findall(r"`([a-z_]+)`", cells[0])]
        yield line, cells, [HEAD_ONLY_ROW] if cells[0].startswith("`lead` head-only") else variants


def test_the_readme_metric_figures_are_the_benchmarks_current_ones():
    """The "which metric" table quotes the benchmark's tables: each mean τw at full data and in low data is the one
    the benchmark's tables show now, so a benchmark rerun cannot leave the front page behind silently."""
    from lead_hub.metrics.lead import LeadOptions, ranking_options

    # the variant quoted for `lead` is what a ranking scores with by default
    assert ranking_options({}) == {"ntk": "full", "fit": "in_sample", "ce_form": "prob", "rate_constant": 1e-08,
                                   "head_input": "standardized"} and LeadOptions().ntk_samples_per_class == 64
    quoted = 0
    for line, cells, variants in readme_metric_rows():
        for column, heading, position in ((1, "τw at full data", 1), (2, "τw in the low-data regimes", -1)):
            figures = re.findall(r"-?\d+\.\d+", re.sub(r"\[[^\]]*\]", "", cells[column]))  # not the intervals
            figures = figures * len(variants) if len(figures) == 1 else figures
            assert len(figures) == len(variants), line
            for variant, figure in zip(variants, figures):
                shown = first_number(benchmark_row(heading, variant)[position])
                assert figure == shown, f"README quotes {variant} {heading} {figure}, the benchmark shows {shown}"
                quoted += 1
    assert quoted >= 10


def test_the_readme_metric_intervals_are_the_verdicts():
    """The "which metric" table quotes the committed verdict: each figure with its interval is the verdict's cell
    (mean τw at full data, and mean low-data τw)."""
    verdict = (REPOSITORY_ROOT / "benchmarks" / "results" / "verdict.md").read_text(encoding="utf-8")
    full_section = verdict[verdict.index("## R1. Mean τw at full data"):verdict.index("### Pearson r")]
    low_section = verdict[verdict.index("## R1. Mean τw in low data"):verdict.index("## R1. Paired")]

    def cell(section: str, variant: str, position: int) -> str:
        row = next(line for line in section.splitlines() if line.startswith(f"| {variant} |"))
        return [part.strip() for part in row.strip().strip("|").split("|")][position]

    quoted = 0
    for _, cells, variants in readme_metric_rows():
        for column, verdict_section, position in ((1, full_section, 1), (2, low_section, -1)):
            figures = re.findall(r"-?\d+\.\d+ \[-?\d+\.\d+, -?\d+\.\d+\]", cells[column].replace("−", "-"))
            figures = figures * len(variants) if len(figures) == 1 else figures
            for variant, figure in zip(variants, figures, strict=True):
                assert figure == cell(verdict_section, variant, position), f"{variant}: README {figure}"
                quoted += 1
    assert quoted >= 10
