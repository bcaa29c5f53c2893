"""benchmarks/bench_sharding.py: the 24-model zoo it ranks and the commands it times (the runs themselves take
minutes; their results are benchmarks/results/sharding_cpu.csv)."""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_sharding  # noqa: E402


def test_every_zoo_model_is_ranked_twice_under_two_ids(tmp_path):
    zoo = tmp_path / "zoo"
    for name in ("model_a", "model_b"):
        (zoo / name).mkdir(parents=True)
        (zoo / name / "config.json").write_text("{}")
    (zoo / "README.md").write_text("not a model")
    links = tmp_path / "links"
    links.mkdir()
    ids = bench_sharding.twin_zoo(zoo, links)
    assert ids == [f"local-dir:{zoo / 'model_a'}", f"local-dir:{links / 'model_a-twin'}",
                   f"local-dir:{zoo / 'model_b'}", f"local-dir:{links / 'model_b-twin'}"]
    assert (links / "model_b-twin").resolve() == (zoo / "model_b").resolve()


def test_one_process_runs_the_cli_and_several_run_it_under_accelerate_launch(tmp_path):
    options = Namespace(target="flowers5", samples_per_class=10, image_size=64, ntk="head")
    single = bench_sharding.rank_command(1, ["local-dir:a"], options, tmp_path)
    sharded = bench_sharding.rank_command(2, ["local-dir:a"], options, tmp_path)
    assert single[:4] == [sys.executable, "-m", "lead_hub.cli", "rank"]
    assert sharded[:6] == [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    assert sharded[-len(single) + 1:] == single[1:]
    assert ["--cache-dir", str(tmp_path / "cache")] == single[single.index("--cache-dir"):][:2]
