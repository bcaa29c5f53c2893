"""Every code block of the README and of docs/*.md works as written.

Each ```python block runs, in a fresh namespace and an empty working folder, except the few marked with a
``<!-- no-run: REASON -->`` line just above them (those need the Hub). So that the suite stays fast, ``rank``
draws 2 images per class at 32 px here whatever the block asks, and a zoo is cut to its first two models: what is
checked is that every name a block uses is defined and every call accepts its arguments, not the block's
figures. Each ``lead-hub`` command of a ```bash
block is parsed by the CLI's own argument parser (an unknown option or a missing argument fails).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from conftest import REPOSITORY_ROOT

from lead_hub import ranking
from lead_hub.cli import build_parser
from lead_hub.zoo import load_zoo

PAGES = [REPOSITORY_ROOT / "README.md", *sorted((REPOSITORY_ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"(?:<!-- no-run: (?P<reason>[^>]*?) -->\n)?```(?P<language>python|bash)\n(?P<code>.*?)```",
                    re.S)


def blocks(language: str) -> list[tuple[str, str, str | None]]:
    """(where, code, no-run reason or None) of every ``language`` block of the README and docs/*.md."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            if match.group("language") == language:
                where = f"{page.relative_to(REPOSITORY_ROOT)}:{text[:match.start('code')].count(chr(10)) + 1}"
                found.append((where, match.group("code"), match.group("reason")))
    return found


PYTHON_BLOCKS = blocks("python")


def test_only_a_few_blocks_are_not_run_and_each_says_why():
    skipped = [(where, reason) for where, _, reason in PYTHON_BLOCKS if reason is not None]
    assert len(PYTHON_BLOCKS) >= 8 and len(skipped) <= 4, skipped
    assert all(reason.startswith("needs ") for _, reason in skipped), skipped


@pytest.fixture
def small_rank(monkeypatch, tmp_path):
    """``rank`` on two models of a zoo and 2 images per class at 32 px, in an empty working folder."""
    full_rank = ranking.rank

    def quick(models, dataset, **options):
        if isinstance(models, str) and ranking._is_zoo_reference(models):
            models = list(load_zoo(models).loadable)[:2]
        options.update(samples_per_class=2, max_samples=None, progress=False,
                       image_size=min(options.get("image_size") or 32, 32))
        return full_rank(models, dataset, **options)

    monkeypatch.setattr(ranking, "rank", quick)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("where, code", [(where, code) for where, code, reason in PYTHON_BLOCKS if reason is None],
                         ids=[where for where, _, reason in PYTHON_BLOCKS if reason is None])
def test_python_block_runs(where, code, small_rank, one_torch_thread, capsys):
    exec(compile(code, where, "exec"), {"__name__": "__docs__"})
    if "board.save(" in code:
        assert (small_rank / "runs" / "leaderboard.parquet").is_file()


def lead_hub_commands(code: str) -> list[list[str]]:
    """The argument lists of the ``lead-hub`` commands of a bash block (continuation lines joined, comments cut)."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["lead-hub"]:
            commands.append(words[1:])
    return commands


BASH_COMMANDS = [(where, command) for where, code, _ in blocks("bash") for command in lead_hub_commands(code)]


def test_the_docs_show_lead_hub_commands():
    assert len(BASH_COMMANDS) >= 15


@pytest.mark.parametrize("where, command", BASH_COMMANDS,
                         ids=[f"{where} {' '.join(command[:2])}" for where, command in BASH_COMMANDS])
def test_lead_hub_command_parses(where, command):
    arguments = build_parser().parse_args(command)
    assert callable(arguments.handler), where
