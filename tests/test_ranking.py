"""rank(): every model scored with identical settings, failures isolated, partial results streamed, CLI on top."""

from __future__ import annotations

import importlib.metadata
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from PIL import Image
from test_models import save_tiny_timm

from lead_hub.cli import main
from lead_hub.cli.rank import parse_metric_options
from lead_hub.leaderboard import Leaderboard
from lead_hub.metrics import _registry
from lead_hub.ranking import DEMO_DATASET, rank, resolve_candidates, resolve_dataset
from lead_hub.zoo import load_zoo

CLASSES = ("red", "green", "blue")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """24 noisy 32×32 images in three class folders, each class tinted towards one colour channel."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for channel, name in enumerate(CLASSES):
        (root / name).mkdir()
        for index in range(8):
            pixels = rng.integers(0, 120, (32, 32, 3))
            pixels[..., channel] += 120
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{index}.png")
    return root


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two tiny timm models with heads (different seeds) and a headless one, as local-dir ids."""
    root = tmp_path_factory.mktemp("models")
    return {
        "first": f"local-dir:{save_tiny_timm(root / 'first', seed=0)}",
        "second": f"local-dir:{save_tiny_timm(root / 'second', seed=1)}",
        "headless": f"local-dir:{save_tiny_timm(root / 'headless', num_classes=0, seed=2)}",
    }


def quick_rank(model_ids, dataset, **options):
    """rank() at 32 px (the images' size) with a small LEAD head, for speed, and no feature cache unless given."""
    options.setdefault("metric_options", {"lead": {"folds": 2, "head_widths": [16]}} if "metrics" not in options
                       else None)
    options.setdefault("image_size", 32)
    options.setdefault("cache_dir", None)
    return rank(model_ids, dataset, progress=False, **options)


@pytest.fixture
def extra_metrics(monkeypatch):
    """Test-only metrics in a copy of the registry: one failing (not as "not applicable") on headless models, one
    set-relative, one set-relative needing source logits."""

    def fails_without_logits(features, labels, *, source_logits=None):
        if source_logits is None:
            raise RuntimeError("boom")
        return float(np.mean(features))

    def mean_feature(features, labels, *, source_logits=None):
        return float(np.mean(features))

    def min_max(raw):
        low, high = min(raw.values()), max(raw.values())
        return {model: (value - low) / (high - low) if high > low else 0.0 for model, value in raw.items()}

    def logit_mean(features, labels, *, source_logits=None):
        return float(np.mean(source_logits))

    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    _registry.register("fails_without_logits", summary="test", reference="test")(fails_without_logits)
    _registry.register("set_minmax", summary="test", reference="test", combine=min_max)(mean_feature)
    _registry.register("set_logits", summary="test", reference="test", combine=min_max,
                       needs_source_logits=True)(logit_mean)


def test_every_model_is_scored_with_its_size_and_timings(models, image_folder):
    board = quick_rank([models["first"], models["second"]], image_folder, metrics=("lead", "logme", "leep"),
                       metric_options={"lead": {"folds": 2, "head_widths": [16]}}, image_size=None)
    table = board.table
    assert sorted(table["model_id"]) == sorted([models["first"], models["second"]])
    assert np.isfinite(table[["lead", "logme", "leep"]].to_numpy(float)).all()
    assert table["rank"].tolist() == [1, 2] and table["lead"].is_monotonic_decreasing
    reference = timm.create_model("test_efficientnet", pretrained=False, num_classes=3)
    assert set(table["feature_dim"]) == {reference.num_features}
    assert set(table["num_params"]) == {sum(p.numel() for p in reference.parameters())}
    assert (table["extract_seconds"] > 0).all() and (table["score_seconds"] > 0).all()
    assert table["model_revision"].str.startswith("sha256:").all()
    provenance = board.provenance
    assert provenance["samples"] == 24 and provenance["class_names"] == sorted(CLASSES)
    assert provenance["metrics"] == ["lead", "logme", "leep"]
    # the options given, and every LEAD default that shapes the score, written out (a ranking resolves ntk="auto")
    assert provenance["metric_options"]["lead"] == {"folds": 2, "head_widths": [16], "ntk": "full", "fit": "in_sample",
                                                    "ce_form": "prob", "rate_constant": 1e-8,
                                                    "head_input": "standardized"}
    assert provenance["lead_rates"]["median"] > 0
    assert provenance["versions"]["torch"] == torch.__version__.split("+")[0]


def test_scores_do_not_depend_on_the_other_candidates(models, image_folder):
    alone = quick_rank([models["second"]], image_folder)
    together = quick_rank([models["first"], models["second"]], image_folder)
    score = together.table.set_index("model_id").loc[models["second"], "lead"]
    assert score == alone.table["lead"].iloc[0]


def test_same_seed_same_sample_and_scores_other_seed_other_sample(models, image_folder):
    first = quick_rank([models["first"]], image_folder, samples_per_class=5, seed=1)
    again = quick_rank([models["first"]], image_folder, samples_per_class=5, seed=1)
    other = quick_rank([models["first"]], image_folder, samples_per_class=5, seed=2)
    assert first.provenance["samples"] == 15
    assert first.table["lead"].iloc[0] == again.table["lead"].iloc[0]
    assert first.table["lead"].iloc[0] != other.table["lead"].iloc[0]


def test_metric_needing_logits_is_not_applicable_to_a_headless_model(models, image_folder):
    board = quick_rank([models["headless"], models["first"]], image_folder, metrics=("lead", "leep"),
                       metric_options={"lead": {"folds": 2, "head_widths": [16]}})
    row = board.table.set_index("model_id").loc[models["headless"]]
    assert math.isfinite(row["lead"]) and math.isnan(row["leep"])
    assert "leep: not applicable" in row["notes"]
    assert math.isfinite(board.table.set_index("model_id").loc[models["first"], "leep"])


def test_a_model_that_cannot_be_loaded_costs_only_its_own_row(models, image_folder, tmp_path):
    missing = f"local-dir:{tmp_path / 'no-such-model'}"
    board = quick_rank([models["first"], missing, models["second"]], image_folder)
    table = board.table.set_index("model_id")
    assert np.isfinite(table.loc[[models["first"], models["second"]], "lead"]).all()
    assert math.isnan(table.loc[missing, "lead"]) and "feature extraction failed" in table.loc[missing, "notes"]
    assert board.table["model_id"].iloc[-1] == missing and board.table["rank"].isna().iloc[-1]


def test_a_metric_failing_on_one_model_keeps_its_other_scores(models, image_folder, extra_metrics):
    board = quick_rank([models["first"], models["headless"]], image_folder, metrics=("lead", "fails_without_logits"),
                       metric_options={"lead": {"folds": 2, "head_widths": [16]}})
    table = board.table.set_index("model_id")
    assert np.isfinite(table["lead"]).all()
    assert math.isnan(table.loc[models["headless"], "fails_without_logits"])
    assert "fails_without_logits failed: RuntimeError: boom" in table.loc[models["headless"], "notes"]
    assert math.isfinite(table.loc[models["first"], "fails_without_logits"])


def test_set_relative_metrics_are_combined_over_the_models_they_apply_to(models, image_folder, extra_metrics):
    board = quick_rank([models["first"], models["second"], models["headless"]], image_folder,
                       metrics=("set_minmax", "set_logits"))
    table = board.table.set_index("model_id")
    assert sorted(table["set_minmax"]) == [0.0, pytest.approx(table["set_minmax"].median()), 1.0]
    assert sorted(table.loc[[models["first"], models["second"]], "set_logits"]) == [0.0, 1.0]
    assert math.isnan(table.loc[models["headless"], "set_logits"])
    assert "set_logits: not applicable" in table.loc[models["headless"], "notes"]


def test_on_model_done_streams_growing_partial_leaderboards(models, image_folder):
    seen = []
    quick_rank([models["first"], models["second"]], image_folder,
               on_model_done=lambda model_id, board: seen.append((model_id, board.table["model_id"].tolist())))
    assert [model_id for model_id, _ in seen] == [models["first"], models["second"]]
    assert [len(ids) for _, ids in seen] == [1, 2]


def test_feature_cache_serves_a_second_run_with_identical_scores(models, image_folder, tmp_path):
    first = quick_rank([models["first"]], image_folder, cache_dir=tmp_path)
    second = quick_rank([models["first"]], image_folder, cache_dir=tmp_path)
    assert second.table["lead"].iloc[0] == first.table["lead"].iloc[0]
    assert "features read from the cache" in second.table["notes"].iloc[0]
    assert "cache" not in first.table["notes"].iloc[0]


def test_per_class_diagnostics_on_request(models, image_folder):
    board = quick_rank([models["first"]], image_folder, per_class=True)
    per_class = board.per_class
    assert per_class["class_name"].tolist() == sorted(CLASSES) and per_class["samples"].tolist() == [8, 8, 8]
    assert (per_class["lead_class_eigenvalues"] > 0).all()
    assert quick_rank([models["first"]], image_folder).per_class is None


def test_candidates_from_ids_zoos_and_single_ids():
    candidates, described = resolve_candidates("demo")
    assert len(candidates) == 6 and described["zoo"] == "demo"
    assert candidates[0].load_id.startswith("local-dir:/")
    candidates, described = resolve_candidates("hf-hub:timm/resnet18.a1_in1k")
    assert [c.model_id for c in candidates] == ["hf-hub:timm/resnet18.a1_in1k"]
    assert described == {"models": ["hf-hub:timm/resnet18.a1_in1k"]}
    assert len(resolve_candidates(load_zoo("paper_supervised"))[0]) == 11
    with pytest.raises(ValueError, match="no model with a loadable copy"):
        resolve_candidates("paper_ssl")
    with pytest.raises(ValueError, match="more than once"):
        resolve_candidates(["a/b", "a/b"])
    assert resolve_dataset("demo").name == "eurosat_mini.zip" and resolve_dataset("x/y") == "x/y"


def test_bad_metric_settings_fail_before_any_work(models, image_folder):
    with pytest.raises(KeyError, match="unknown metric"):
        rank([models["first"]], image_folder, metrics=("no-such-metric",), progress=False)
    with pytest.raises(ValueError, match="not among the chosen metrics"):
        rank([models["first"]], image_folder, metrics=("lead",), metric_options={"logme": {}}, progress=False)


def test_metric_options_from_the_command_line():
    assert parse_metric_options(["lead.rate_scale=per_model", "lead.head_widths=[8, 16]", "logme.tol=1e-4"]) == {
        "lead": {"rate_scale": "per_model", "head_widths": [8, 16]}, "logme": {"tol": 1e-4}}
    with pytest.raises(ValueError, match="METRIC.KEY=VALUE"):
        parse_metric_options(["rate_scale=per_model"])


def test_rank_command_prints_and_writes_every_format(models, image_folder, tmp_path, capsys):
    output = tmp_path / "out"
    code = main(["rank", "--models", models["first"], models["second"], "--dataset", str(image_folder),
                 "--metrics", "lead,logme", "--metric-option", "lead.folds=2", "--metric-option",
                 "lead.head_widths=[16]", "--image-size", "32", "--output", str(output), "--no-cache", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "first" in printed and "second" in printed
    assert sorted(path.name for path in output.iterdir()) == [
        "leaderboard.csv", "leaderboard.json", "leaderboard.md", "leaderboard.parquet", "leaderboard.png"]
    board = Leaderboard.load(output / "leaderboard.parquet")
    assert board.metrics == ["lead", "logme"] and board.provenance["metric_options"]["lead"]["folds"] == 2


def test_rank_command_fails_when_no_model_can_be_scored(image_folder, tmp_path, capsys):
    code = main(["rank", "--models", f"local-dir:{tmp_path / 'missing'}", "--dataset", str(image_folder),
                 "--no-cache", "--quiet"])
    assert code == 1 and "no model could be scored" in capsys.readouterr().err


def test_public_api():
    import lead_hub

    assert lead_hub.rank is rank and lead_hub.Leaderboard is Leaderboard
    assert "lead" in lead_hub.metrics.available()
    assert lead_hub.__version__ == importlib.metadata.version("lead-hub")
    with pytest.raises(AttributeError, match="no attribute 'ranks'"):
        lead_hub.ranks


def test_rank_command_searches_the_hub_ranks_what_it_found_and_publishes(image_folder, tmp_path, monkeypatch):
    import io

    import pandas as pd
    from hub_server import LoopbackHub, point_client_at

    from lead_hub.hub_card import LEADERBOARD_PATH

    token = "hf_rank_test_loopback_token_4c1d9e2f"
    with LoopbackHub() as server:
        server.store.add_user("alice", token)
        point_client_at(monkeypatch, server.endpoint, str(tmp_path / "hf_home"), token=token)
        folder = save_tiny_timm(tmp_path / "tiny")
        server.store.create_repo("model", "org/tiny-net", info={
            "downloads": 10, "pipeline_tag": "image-classification", "library_name": "timm",
            "tags": ["timm", "image-classification"]})
        commit, _ = server.store.commit("model", "org/tiny-net", add={
            name: (folder / name).read_bytes() for name in ("config.json", "model.safetensors")})
        code = main(["rank", "--search", "tiny", "--dataset", str(image_folder), "--image-size", "32",
                     "--metric-option", "lead.folds=2", "--metric-option", "lead.head_widths=[16]", "--no-cache",
                     "--quiet", "--push-to-hub", "alice/board"])
        assert code == 0
        published = pd.read_parquet(io.BytesIO(server.store.files("dataset", "alice/board")[LEADERBOARD_PATH]))
    assert published["model_id"].tolist() == ["org/tiny-net"]
    assert published["model_revision"].tolist() == [commit.oid]
    assert np.isfinite(published["lead"]).all() and published["dataset"].tolist() == [image_folder.name]


# ---- under accelerate launch: the two-process run of conftest.py (SHARDING_SCRIPT) ----------------------------------

def _plans(cache: Path) -> list[list[list[str]]]:
    """The model shares of every ranking that ran with ``cache`` (one runs/<id>/plan.json each)."""
    return [json.loads(path.read_text())["models"] for path in sorted(cache.glob("runs/*/plan.json"))]


@pytest.mark.slow
def test_accelerate_launch_shards_the_whole_ranking_across_two_processes(two_process_run, one_torch_thread):
    run = two_process_run
    boards = [Leaderboard.load(run.folder / f"api-{process}.parquet") for process in (0, 1)]
    reports = run.reports("rank")
    table = boards[0].table
    assert boards[0].provenance["processes"] == 2
    plans = _plans(run.folder / "rank-cache")
    assert len(plans) == 2 and plans[0] == plans[1]  # rank() then `lead-hub rank`: the same plan
    assert sorted(len(share) for share in plans[0]) == [2, 2]
    assert dict(zip(table["model_id"], table["process"])) == {model_id: process for process, share
                                                              in enumerate(plans[0]) for model_id in share}
    # Each model computed once, by its process: nothing came from the cache on this first ranking.
    assert not table["notes"].str.contains("read from the cache").any()
    broken = table.set_index("model_id").loc[run.rank_ids[2]]
    assert "feature extraction failed" in broken["notes"] and math.isnan(broken["lead"])
    # Rows streamed on the main process only, one per model wherever it ran; every process returns the result.
    assert sorted(model_id for model_id, _ in reports[0]["streamed"]) == sorted(run.rank_ids)
    assert [rows for _, rows in reports[0]["streamed"]] == [1, 2, 3, 4] and reports[1]["streamed"] == []
    pd.testing.assert_frame_equal(boards[1].table, table)
    # Per-process detail at debug level, from each process.
    for process, report in enumerate(reports):
        assert any(message.startswith(f"process {process}: ") and " done in " in message
                   for message in report["messages"])

    # One process on the same features and NTK norms (the shared cache): bit-identical scores, the same ranking.
    single = rank(list(run.rank_ids), DEMO_DATASET, cache_dir=run.folder / "rank-cache", progress=False,
                  **run.rank_options)
    assert single.provenance["processes"] == 1 and set(single.table["process"]) == {0}
    assert single.table["model_id"].tolist() == table["model_id"].tolist()
    np.testing.assert_array_equal(single.table[["lead", "logme"]].to_numpy(float),
                                  table[["lead", "logme"]].to_numpy(float))
    assert np.isfinite(table["lead"].to_numpy(float)).sum() == 3
    # From scratch in one process: the same ranking.
    fresh = rank(list(run.rank_ids), DEMO_DATASET, cache_dir=None, progress=False, **run.rank_options)
    assert fresh.table["model_id"].tolist() == table["model_id"].tolist()
    np.testing.assert_allclose(fresh.table["lead"].to_numpy(float), table["lead"].to_numpy(float), rtol=1e-5)


@pytest.mark.slow
def test_lead_hub_rank_under_accelerate_launch_resumes_from_the_cache_and_writes_once(two_process_run):
    run = two_process_run
    assert [report["exit_code"] for report in run.reports("rank")] == [0, 0]
    written = Leaderboard.load(run.folder / "cli-output" / "leaderboard.json")
    api = Leaderboard.load(run.folder / "api-0.parquet")
    assert written.provenance["processes"] == 2
    # The command ran after rank() on the same cache: every model's features and NTK norms were read back.
    scored = written.table[written.table["lead"].notna()]
    assert len(scored) == 3
    assert scored["notes"].str.contains("features read from the cache").all()
    assert scored["notes"].str.contains(r"images \(read from the cache\)").all()
    np.testing.assert_array_equal(written.table["lead"].to_numpy(float), api.table["lead"].to_numpy(float))
    # Only the main process printed the table and wrote the files.
    assert run.stdout.count("wrote ") == 5 and run.stdout.count("lead_hub leaderboard:") == 1


@pytest.mark.slow
def test_a_dead_process_is_reported_and_its_models_are_ranked_on_rerun(two_process_run, one_torch_thread):
    run = two_process_run
    error = json.loads((run.folder / "stopped-0.json").read_text())["error"]
    (plan,) = _plans(run.folder / "crash-cache")
    assert "another process of the launch ended" in error and "rerun the same command to resume" in error
    assert f"process 1: {', '.join(plan[1])}" in error
    rerun = rank(list(run.rank_ids), DEMO_DATASET, cache_dir=run.folder / "crash-cache", progress=False,
                 **run.rank_options)
    assert np.isfinite(rerun.table["lead"].to_numpy(float)).sum() == 3
    # Process 1 died once the main process had extracted a model: that one is read back, not computed again.
    assert rerun.table["notes"].str.contains("features read from the cache").any()
