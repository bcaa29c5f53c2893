"""The README's Python examples run as written (each ```python block of the metrics-api section)."""

from __future__ import annotations

import re

from conftest import REPOSITORY_ROOT


def readme_section(name: str) -> str:
    text = (REPOSITORY_ROOT / "README.md").read_text()
    return text[text.index(f"<!-- section: {name} -->"):text.index(f"<!-- end: {name} -->")]


def test_metrics_api_examples_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", readme_section("metrics-api"), flags=re.S)
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[1] == "True"
    assert printed[3] == "1.0"
