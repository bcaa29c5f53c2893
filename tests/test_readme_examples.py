"""The metrics docs' Python examples run as written (each ```python block of the metrics-api section of docs/metrics.md)."""

from __future__ import annotations

import re

from conftest import REPOSITORY_ROOT


def docs_section(name: str, page: str = "docs/metrics.md") -> str:
    text = (REPOSITORY_ROOT / page).read_text()
    return text[text.index(f"<!-- section: {name} -->"):text.index(f"<!-- end: {name} -->")]


def test_metrics_api_examples_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", docs_section("metrics-api"), flags=re.S)
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, "docs/metrics.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[1] == "True"
    assert printed[3] == "1.0"
