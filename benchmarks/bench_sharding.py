"""Models ranked per minute by ``lead-hub rank`` in 1 and in N processes (``accelerate launch``) on this machine,
and the scaling efficiency (speed-up / N).

The zoo is the 12 models of ``../shared/data/zoo`` listed twice, under a second id each (a link to the same folder
named ``<slug>-twin``), so 24 models that all have to be computed: the cache keys features by model id. Each run is
one command in a fresh cache folder (cold cache): ``python -m lead_hub.cli rank`` for 1 process, ``accelerate
launch --multi_gpu --num_processes N -m lead_hub.cli rank`` for N (on a machine without a GPU, ``--multi_gpu`` is
what starts N CPU processes; lead_hub joins them into a gloo group), each process with one torch thread
(``OMP_NUM_THREADS=1``) so that N processes use N cores. The sample is ``--samples-per-class`` images of each class
of ``--target``'s train split at ``--image-size`` px, scored with LEAD (``--ntk full``: its whole-network NTK, the
costly part; ``head``, the default: the features and closed-form head NTK).

Two times per run: ``ranking_seconds``, the ranking itself (the leaderboard's provenance ``seconds``, from the
sample being loaded to the leaderboard), and ``command_seconds``, the whole command (interpreters, imports and the
launcher included). The 1-minute load average of the machine just before and after each run is recorded beside it:
on a machine shared with other jobs the figures are indicative only. The runs alternate (1, N, 1, N, ...) so that a
change of load hits both alike. ``scaling_efficiency`` is the N-process rate over N times the one-process rate of
the same repeat (1.0: perfect), from the ranking's time; ``scaling_efficiency_command`` the same from the command's.
The leaderboards of all runs must rank the models identically (``same_ranking``).

    python benchmarks/bench_sharding.py --processes 2 --repeats 1   # writes benchmarks/results/sharding_cpu.csv
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LEAD_HUB_SHARED_DATA", REPOSITORY_ROOT.parent / "shared" / "data"))
RESULT_CSV = REPOSITORY_ROOT / "benchmarks" / "results" / "sharding_cpu.csv"


def twin_zoo(zoo: Path, folder: Path) -> list[str]:
    """24 model ids: each zoo model under its own folder and under a ``<slug>-twin`` link to it."""
    ids = []
    for model in sorted(path for path in zoo.iterdir() if (path / "config.json").is_file()):
        twin = folder / f"{model.name}-twin"
        twin.symlink_to(model, target_is_directory=True)
        ids += [f"local-dir:{model}", f"local-dir:{twin}"]
    return ids


def rank_command(processes: int, model_ids: list[str], options: argparse.Namespace, cache: Path) -> list[str]:
    """The command line of one run: plain ``python -m`` for one process, ``accelerate launch`` for several."""
    arguments = ["-m", "lead_hub.cli", "rank", "--models", *model_ids, "--dataset",
                 str(SHARED_DATA / "targets" / options.target), "--split", "train", "--samples-per-class",
                 str(options.samples_per_class), "--image-size", str(options.image_size), "--metrics", "lead",
                 "--metric-option", f"lead.ntk={options.ntk}", "--cache-dir", str(cache / "cache"),
                 "--output", str(cache / "output"), "--quiet"]
    if processes == 1:
        return [sys.executable, *arguments]
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
            str(29500 + os.getpid() % 1000), *arguments]


def run_once(processes: int, model_ids: list[str], options: argparse.Namespace) -> tuple[dict, list[str]]:
    """One cold-cache ranking: its row of the results and the ranked model ids."""
    with tempfile.TemporaryDirectory(prefix="bench_sharding_") as scratch:
        scratch = Path(scratch)
        environment = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                       "PYTHONPATH": str(REPOSITORY_ROOT)}
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        completed = subprocess.run(rank_command(processes, model_ids, options, scratch), env=environment,
                                   capture_output=True, text=True)
        command_seconds = time.perf_counter() - started
        load_after = os.getloadavg()[0]
        if completed.returncode != 0:
            raise RuntimeError(f"{processes} process(es) failed:\n{completed.stderr[-3000:]}")
        board = json.loads((scratch / "output" / "leaderboard.json").read_text())
    table = pd.DataFrame(board["table"])
    provenance = board["provenance"]
    if provenance["processes"] != processes or table["lead"].isna().any():
        raise RuntimeError(f"{processes} process(es): provenance says {provenance['processes']}, "
                           f"{int(table['lead'].isna().sum())} models without a score")
    ranking_seconds = float(provenance["seconds"])
    row = {"processes": processes, "models": len(table), "images": provenance["samples"],
           "target": options.target, "image_size": options.image_size, "lead_ntk": options.ntk,
           "ranking_seconds": round(ranking_seconds, 1), "command_seconds": round(command_seconds, 1),
           "models_per_minute": round(60 * len(table) / ranking_seconds, 2),
           "models_per_minute_command": round(60 * len(table) / command_seconds, 2),
           "models_per_process": json.dumps(table["process"].value_counts().sort_index().tolist()),
           "load_1min_before": round(load_before, 2), "load_1min_after": round(load_after, 2),
           "cpu_cores": os.cpu_count(), "machine": platform.machine()}
    return row, table["model_id"].tolist()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2, help="processes of the sharded run (default: 2)")
    parser.add_argument("--repeats", type=int, default=1, help="pairs of runs (1 process, then N) (default: 1)")
    parser.add_argument("--target", default="flowers5", help="target folder of ../shared/data/targets")
    parser.add_argument("--samples-per-class", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--ntk", choices=("head", "full"), default="head", help="LEAD's NTK (default: head)")
    parser.add_argument("--output", type=Path, default=RESULT_CSV)
    options = parser.parse_args(argv)
    rows, rankings = [], []
    with tempfile.TemporaryDirectory(prefix="bench_sharding_zoo_") as links:
        model_ids = twin_zoo(SHARED_DATA / "zoo", Path(links))
        for repeat in range(options.repeats):
            for processes in (1, options.processes):
                row, ranking = run_once(processes, model_ids, options)
                rows.append({"repeat": repeat, **row})
                rankings.append(ranking)
                print(rows[-1], flush=True)
    results = pd.DataFrame(rows)
    for rate, efficiency in (("models_per_minute", "scaling_efficiency"),
                             ("models_per_minute_command", "scaling_efficiency_command")):
        single = results[results["processes"] == 1].set_index("repeat")[rate]
        results[efficiency] = (results[rate] / results["repeat"].map(single) / results["processes"]).round(3)
    results["same_ranking"] = [ranking == rankings[0] for ranking in rankings]
    options.output.parent.mkdir(parents=True, exist_ok=True)
    results.to_csv(options.output, index=False)
    print(results.to_string(index=False))
    return 0 if results["same_ranking"].all() else 1


if __name__ == "__main__":
    sys.exit(main())
