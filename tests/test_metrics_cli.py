"""``lead-hub metrics`` and ``lead_hub.metrics.describe()`` list every peer metric with its needs and orientation."""

from __future__ import annotations

import json

from lead_hub.cli import main
from lead_hub.metrics import describe

PEERS = {"logme", "leep", "nleep", "nce", "hscore", "regularized_hscore", "transrate", "parc", "gbc", "sfda", "ped",
         "etran", "pactran"}


def test_describe_lists_every_peer_with_its_inputs_orientation_and_reference():
    rows = {row["name"]: row for row in describe()}
    assert PEERS <= set(rows)
    for name in PEERS:
        expected_needs = "features + source logits" if name in ("leep", "nce") else "features only"
        assert rows[name]["needs"] == expected_needs
        assert rows[name]["orientation"].startswith("higher is better")
        assert rows[name]["reference"]
    assert [name for name in PEERS if rows[name]["set_relative"]] == ["etran"]
    assert "negated" in rows["pactran"]["orientation"]


def test_cli_prints_the_same_rows_as_json(capsys):
    assert main(["metrics", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == describe()


def test_cli_markdown_table_has_one_row_per_metric(capsys):
    assert main(["metrics", "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| name | needs | orientation | reference |"
    body = {line.split(" | ")[0].strip("| ") for line in lines[2:]}
    assert body == {row["name"] for row in describe()}
    assert any(line.startswith("| leep | features + source logits |") for line in lines)


def test_cli_text_lists_aliases_and_needs(capsys):
    assert main(["metrics"]) == 0
    out = capsys.readouterr().out
    assert "pactran (also pactran_gauss, pactran-gauss):" in out
    assert "needs: features + source logits" in out


def test_every_summary_is_one_plain_sentence():
    """Issue 19: `lead-hub metrics` and the Space describe each metric in words a user knows; the formula is in
    docs/metrics.md."""
    for row in describe():
        summary = row["summary"]
        # one sentence, without its final full stop: the Space and the CLI punctuate it where they show it
        assert summary[0].isupper() and not summary.endswith(".") and ". " not in summary, summary
        assert len(summary) <= 110 and not any(mark in summary for mark in ("x ", "(", "=", "NTK", "PCA", "tr(")), \
            summary
