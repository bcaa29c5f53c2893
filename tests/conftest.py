"""Shared test fixtures: the location of ../shared/data (skipped with a reason where it is absent), a per-session
lead_hub cache, one torch thread for small passes, and one two-process ``accelerate launch`` shared by the sharding
tests (features, NTK norms and a whole ranking, through the API and the command line, then a ranking whose second
process dies)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

# Set before any test module imports huggingface_hub or datasets: both read these once, at import.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LEAD_HUB_SHARED_DATA", REPOSITORY_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or $LEAD_HUB_SHARED_DATA); the test is skipped when it is absent (a user's clone)."""
    if not (SHARED_DATA / "zoo").is_dir() or not (SHARED_DATA / "targets").is_dir():
        pytest.skip(f"needs the shared benchmark data at {SHARED_DATA} (present in the developers' checkout and CI, "
                    "absent from a user's clone)")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """$LEAD_HUB_CACHE points at a folder of this session: no test (nor a CLI it starts) writes into the user's
    cache or the working directory."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEAD_HUB_CACHE", str(tmp_path_factory.mktemp("lead_hub_cache")))
        yield


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch):
    """No test reaches the real Hugging Face Hub: tests that need a Hub use a loopback server or a seeded cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "1"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test, restored after it: on a shared CPU, OpenMP threads waiting for each other make
    small passes (tiny models, a few images) up to 30x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass(frozen=True)
class TwoProcessRun:
    """What one ``accelerate launch`` of :data:`SHARDING_SCRIPT` in two processes wrote: each process's reports."""

    model_ids: tuple[str, str]
    parquet: Path
    folder: Path
    rank_ids: tuple[str, ...]
    rank_options: dict
    stdout: str

    def reports(self, part: str) -> list[dict]:
        """The reports of ``part`` ("features", "ntk" or "rank") of processes 0 and 1."""
        return [json.loads((self.folder / f"{part}-{rank}.json").read_text()) for rank in (0, 1)]


# Each process shards two models: features of a parquet split (test_features), then the whole-network NTK norms of
# the demo images (test_ntk); it reports what it computed itself and every model's values. Then rank() and
# `lead-hub rank` (its main(), as `accelerate launch -m lead_hub.cli rank` runs it) shard four candidates, one of
# them broken (test_ranking); last, a ranking in which process 1 dies at its first model: the launch fails there.
SHARDING_SCRIPT = """
    import glob
    import json
    import logging
    import os
    import time
    from lead_hub.data import load_images, load_parquet_split
    from lead_hub.features import _process_state, extract_many
    from lead_hub.ntk import sample_sq_norms_many

    results = extract_many({model_ids!r}, load_parquet_split({parquet!r}, "train"), image_size=32, num_workers=0,
                           cache_dir={folder!r} + "/features-cache", progress=False)
    state = _process_state()

    def report(part, content):
        with open({folder!r} + f"/{{part}}-{{state.process_index}}.json", "w") as stream:
            json.dump(content, stream)

    report("features", {{"process": state.process_index, "processes": state.num_processes,
                         "computed": [m for m, r in results.items() if not r.from_cache],
                         "features": {{m: r.features.tolist() for m, r in results.items()}}}})

    images = load_images({demo!r}, samples_per_class=2, seed=0)
    cache = {folder!r} + "/ntk-cache"
    features = {{m: r.features for m, r in extract_many({model_ids!r}, images, image_size=32, num_workers=0,
                                                         cache_dir=cache, progress=False).items()}}
    results = sample_sq_norms_many({model_ids!r}, images, list(range(0, 20, 2)), features, cache_dir=cache,
                                   image_size=32, widths=(16, 24), num_workers=0, progress=False)
    report("ntk", {{"computed": [m for m, r in results.items() if r.computed_rows],
                    "norms": {{m: r.sq_norms.tolist() for m, r in results.items()}}}})

    from lead_hub import ranking
    from lead_hub.cli import main
    from lead_hub.sharding import RankingStopped

    messages = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: messages.append(record.getMessage())
    logging.getLogger("lead_hub").addHandler(handler)
    logging.getLogger("lead_hub").setLevel(logging.DEBUG)
    streamed = []
    board = ranking.rank({rank_ids!r}, {demo!r}, cache_dir={folder!r} + "/rank-cache", progress=False,
                         on_model_done=lambda model_id, partial: streamed.append([model_id, len(partial.table)]),
                         **{rank_options!r})
    board.save({folder!r}, formats=("parquet",), stem=f"api-{{state.process_index}}")
    exit_code = main(["rank", "--models", *{rank_ids!r}, "--dataset", {demo!r}, *{rank_arguments!r},
                      "--cache-dir", {folder!r} + "/rank-cache", "--output", {folder!r} + "/cli-output", "--quiet"])
    report("rank", {{"streamed": streamed, "exit_code": exit_code, "messages": messages}})

    def die_while_the_main_process_ranks(candidate, work):
        # Once the main process has extracted a model (so it is past the plan's broadcast and ranking), not before:
        # a process gone during the broadcast fails it with a connection error instead.
        while not glob.glob({folder!r} + "/crash-cache/*/result.json"):
            time.sleep(0.05)
        os._exit(3)

    if state.process_index == 1:
        ranking._rank_model = die_while_the_main_process_ranks
    try:
        ranking.rank({rank_ids!r}, {demo!r}, cache_dir={folder!r} + "/crash-cache", progress=False,
                     **{rank_options!r})
    except RankingStopped as error:
        report("stopped", {{"error": str(error)}})
        raise SystemExit(1)
"""

# rank()'s settings in the launch, and the same as `lead-hub rank` arguments.
RANK_OPTIONS = {"samples_per_class": 4, "image_size": 32, "num_workers": 0, "metrics": ["lead", "logme"],
                "metric_options": {"lead": {"ntk": "full", "folds": 2, "head_widths": [16]}}}
RANK_ARGUMENTS = ["--samples-per-class", "4", "--image-size", "32", "--metrics", "lead", "logme",
                  "--metric-option", "lead.ntk=full", "--metric-option", "lead.folds=2",
                  "--metric-option", "lead.head_widths=[16]"]


@pytest.fixture(scope="session")
def two_process_run(tmp_path_factory) -> TwoProcessRun:
    """One ``accelerate launch`` of two processes (two tiny timm models, seeds 0 and 1; for the rankings a headless
    third and a folder without a model) shared by the sharding tests of test_features, test_ntk and test_ranking: a
    launch costs three interpreters importing torch, most of such a test's time. The launch ends with a ranking
    whose process 1 dies, so it fails; everything before must have run (process 0's "stopped" report)."""
    from lead_hub.ranking import DEMO_DATASET
    from test_features import tiny_dataset
    from test_models import save_tiny_timm

    folder = tmp_path_factory.mktemp("two_processes")
    model_ids = tuple(f"local-dir:{save_tiny_timm(folder / f'tiny-{seed}', seed=seed)}" for seed in (0, 1))
    headless = f"local-dir:{save_tiny_timm(folder / 'tiny-headless', num_classes=0, seed=2)}"
    rank_ids = (*model_ids, f"local-dir:{folder / 'not-a-model'}", headless)
    parquet = folder / "train.parquet"
    tiny_dataset().to_parquet(str(parquet))
    script = folder / "shard.py"
    script.write_text(textwrap.dedent(SHARDING_SCRIPT.format(
        folder=str(folder), model_ids=list(model_ids), parquet=str(parquet), demo=str(DEMO_DATASET),
        rank_ids=list(rank_ids), rank_options=RANK_OPTIONS, rank_arguments=RANK_ARGUMENTS)))
    completed = launch_two_processes(script, check=False)
    assert (folder / "stopped-0.json").exists(), _processes_errors(completed.stderr)
    return TwoProcessRun(model_ids, parquet, folder, rank_ids, RANK_OPTIONS, completed.stdout)


def launch_two_processes(script: Path, *, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``script`` in two processes under ``accelerate launch``, one torch thread each; with ``check``, fail
    with its stderr unless it succeeds.

    On a machine without a GPU, ``accelerate launch --cpu`` starts a single process unless mpirun is used;
    ``--multi_gpu`` starts torchrun processes, which lead_hub joins into a gloo group on the CPU."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPOSITORY_ROOT)}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               str(free_port()), str(script)]
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=400)
    assert completed.returncode == 0 or not check, _processes_errors(completed.stderr)
    return completed


def _processes_errors(stderr: str) -> str:
    """What the processes of a launch said before the launcher's own report (which only names the exit codes),
    without the warnings."""
    said = stderr.split("ChildFailedError")[0]
    lines = [line for line in said.splitlines() if "Warning" not in line and "warnings.warn" not in line]
    return "\n".join(lines)[-4000:] + "\n...\n" + stderr[-1500:]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
