"""Bad settings fail in about a second, before any dataset or model is loaded, with the valid choices named."""

from __future__ import annotations

import pytest

from lead_hub.cli import main
from lead_hub.metrics import check_options, option_names


@pytest.fixture
def nothing_loads(monkeypatch):
    """Loading a dataset, searching the Hub or extracting features fails the test."""

    def refuse(*arguments, **options):
        raise AssertionError("a dataset or model was loaded before the settings were checked")

    monkeypatch.setattr("lead_hub.data.load_images", refuse)
    monkeypatch.setattr("lead_hub.features.extract_many", refuse)
    monkeypatch.setattr("lead_hub.zoo.search_zoo", refuse)


def _rank(*extra: str) -> int:
    return main(["rank", "--zoo", "demo", "--dataset", "demo", "--no-cache", "--quiet", *extra])


@pytest.mark.parametrize(("arguments", "message"), [
    (["--metric-option", "lead.bogus=1"],
     "lead: unknown option(s) 'bogus'; the options of lead are classifier, fit, margins, regularization, folds, "
     "rate_scale, rate_constant, head_widths"),
    (["--metric-option", "lead.rate_scale=bogus"], "rate_scale='bogus' is not one of standardize, per_model, raw"),
    (["--metric-option", "lead.rate_constant=bogus"], "could not convert string to float: 'bogus'"),
    (["--metrics", "lead", "logme", "--metric-option", "logme.tol=1e-4"], "the options of logme are seed"),
    (["--image-size", "0"], "image_size=0: expected a whole number of pixels per side of at least 1"),
    (["--samples-per-class", "1"], "samples_per_class=1"),
    (["--batch-size", "-3"], "batch_size=-3"),
    (["--metrics", "lead", "bogus"], "unknown metric 'bogus'"),
])
def test_bad_settings_exit_2_before_anything_loads(nothing_loads, capsys, arguments, message):
    assert _rank(*arguments) == 2
    error = capsys.readouterr().err
    assert error.startswith("lead-hub rank: error: ") and message in error
    assert error.count("\n") == 1


def test_the_search_waits_for_the_settings_check(nothing_loads, capsys):
    assert main(["rank", "--search", "resnet", "--dataset", "demo", "--image-size", "0"]) == 2
    assert "image_size=0" in capsys.readouterr().err


def test_push_without_a_token_fails_before_ranking(nothing_loads, tmp_path, monkeypatch, capsys):
    from hub_server import LoopbackHub, point_client_at

    with LoopbackHub() as server:
        point_client_at(monkeypatch, server.endpoint, str(tmp_path / "hf_home"), token=None)
        assert _rank("--push-to-hub", "alice/board") == 1
        assert not server.store.requests
    error = capsys.readouterr().err
    assert "publishing to alice/board needs a Hugging Face token" in error and "nothing was computed" in error


def test_options_checked_from_the_metric_definitions():
    assert {"rate_scale", "head_widths", "folds"} <= set(option_names("lead"))
    assert option_names("logme") == ["seed"]
    check_options("lead", {"folds": 2, "head_widths": [16], "rate_scale": "per_model"})
    with pytest.raises(ValueError, match=r"ce_form='nope' is not one of"):
        check_options("lead", {"ce_form": "nope"})
