"""The peer-metrics example of docs/metrics.md runs as written and prints what its comments say."""

from __future__ import annotations

import re

from conftest import REPOSITORY_ROOT


def test_peer_metrics_example_prints_its_comments(capsys):
    text = (REPOSITORY_ROOT / "docs" / "metrics.md").read_text()
    section = text[text.index("<!-- section: peer-metrics -->"):text.index("<!-- end: peer-metrics -->")]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    exec(compile(block, "docs/metrics.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[:4] == ["-0.5202", "0.7814", "-0.2602", "-0.4684"]
    assert printed[4] == "{'a': 1.0, 'b': 0.0}"
    assert printed[-1] == "not applicable"
