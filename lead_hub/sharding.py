"""Whole-zoo sharding of a ranking across the processes of ``accelerate launch``.

:func:`lead_hub.ranking.rank` started in P processes gives each process its own share of the candidate models
(:func:`assign_by_cost`: greedy longest-processing-time on an estimated cost, parameters × images); each process
extracts features, source logits and, when asked, LEAD's whole-network NTK norms of its models on its own device,
into the shared on-disk cache. The main process scores every model, streams rows as models finish anywhere, writes
the files and publishes once.

Hand-over goes through files, not collectives, beside the cache in ``<cache_dir>/runs/<run id>/``:

- ``plan.json`` (main): which process ranks which models;
- ``ready-<process>`` (each process): proves the folder is shared (on several machines, ``cache_dir`` must be on
  a filesystem every machine sees);
- ``done-<candidate index>.npz`` (the process that ranked the model): its leaderboard row, notes, the feature
  cache folder and LEAD's per-sample arrays, written atomically; the main process polls for them between its own
  models and after them;
- ``leaderboard.json`` (main): the final leaderboard, which the other processes wait for and return.

A process waiting on another one polls a file instead of blocking in a collective: a collective times out (30
minutes by default) while the slowest process still has models to rank. The only collective is the broadcast of
the plan, right after the sample is loaded, when every process is at the same point.

When one process dies, the launcher (torchrun, behind ``accelerate launch``) stops the others with SIGTERM; the
main process then raises :class:`RankingStopped` naming the models that were not finished and by which process.
Every finished model is in the cache, so rerunning the same command resumes: those models are read back, not
recomputed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import statistics
import time
import uuid
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lead_hub.features import _atomic_save_npz, _atomic_write

logger = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
#: Seconds between two looks for finished models or the final leaderboard.
POLL_SECONDS = 0.5
#: Seconds the main process waits for every process to show up in the shared run folder.
READY_TIMEOUT_SECONDS = 120.0


class RankingStopped(BaseException):
    """The launcher stopped the main process (another process died) before every model was ranked.

    A ``BaseException``, like ``KeyboardInterrupt``: the ``except Exception`` that turns one model's failure into
    a row must let it through."""


def estimated_parameters(load_id: str, stated: int | None = None) -> int | None:
    """A model's size for balancing work, without loading it: the weight files of a ``local-dir:`` folder
    (bytes / 4, i.e. float32 parameters as stored, which is what the forward pass runs), else ``stated`` (a
    zoo's ``params``, a Hub search's count), else None.

    Examples
    --------
    >>> estimated_parameters("resnet18", stated=11_689_512)
    11689512
    """
    if load_id.startswith("local-dir:"):
        folder = Path(load_id.removeprefix("local-dir:")).expanduser()
        if folder.is_dir():
            size = sum(path.stat().st_size for path in folder.iterdir() if path.suffix in WEIGHT_SUFFIXES)
            if size:
                return size // 4
    return stated


def assign_by_cost(costs: Mapping[Hashable, float | None], processes: int) -> list[list[Hashable]]:
    """Split the models of ``costs`` among ``processes``: greedy longest-processing-time (the costliest model
    first, each to the process with the least work so far; ties to the lower process index). A cost of None
    (unknown) counts as the median of the known ones (1 when none is known). Each process's list keeps the order
    of ``costs``, so rows stream in the candidates' order within a process.

    Parameters
    ----------
    costs : mapping of a model (its id, or its index among the candidates) to its estimated cost, in any unit
        (parameters × images in :func:`lead_hub.rank`).
    processes : the number of processes, at least 1.

    Returns
    -------
    list of ``processes`` lists of the keys of ``costs``; together they hold every model once.

    Examples
    --------
    >>> assign_by_cost({"a": 8, "b": 5, "c": 4, "d": 3}, 2)
    [['a', 'd'], ['b', 'c']]
    """
    if processes < 1:
        raise ValueError(f"processes must be at least 1, got {processes}")
    known = [float(cost) for cost in costs.values() if cost is not None]
    fallback = statistics.median(known) if known else 1.0
    order = {model_id: index for index, model_id in enumerate(costs)}
    loads = [0.0] * processes
    shares: list[list[str]] = [[] for _ in range(processes)]
    for model_id in sorted(costs, key=lambda m: (-(fallback if costs[m] is None else float(costs[m])), order[m])):
        least = min(range(processes), key=lambda p: (loads[p], p))
        loads[least] += fallback if costs[model_id] is None else float(costs[model_id])
        shares[least].append(model_id)
    return [sorted(share, key=order.__getitem__) for share in shares]


@dataclass
class ModelRecord:
    """What a process hands the main process about one finished model (see the module docstring)."""

    index: int
    process: int
    row: dict
    notes: list[str]
    features_folder: str | None
    sample_arrays: dict


class RunFolder:
    """The hand-over folder of one sharded ranking, ``<cache_dir>/runs/<run id>`` (see the module docstring)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)

    @classmethod
    def new(cls, cache_dir: str | Path) -> RunFolder:
        """A fresh folder for a ranking started now (called on the main process only)."""
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        return cls(Path(cache_dir) / "runs" / f"{stamp}-{uuid.uuid4().hex[:8]}")

    def write_plan(self, shares: list[list[str]]) -> None:
        _atomic_write(self.folder / "plan.json",
                      json.dumps({"processes": len(shares), "models": shares}, indent=1).encode())

    def mark_ready(self, process: int) -> None:
        _atomic_write(self.folder / f"ready-{process}", str(os.getpid()).encode())

    def wait_until_ready(self, processes: int, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Return once every process has marked itself ready; raise ValueError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            missing = [p for p in range(processes) if not (self.folder / f"ready-{p}").exists()]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise ValueError(f"process(es) {missing} did not appear in {self.folder} within {timeout:.0f} s: "
                                 "under accelerate launch every process must see the same cache_dir (on several "
                                 "machines, a folder on a filesystem they share, e.g. NFS); pass --cache-dir so")
            time.sleep(POLL_SECONDS)

    def write_record(self, record: ModelRecord) -> None:
        meta = {"index": record.index, "process": record.process, "row": record.row, "notes": record.notes,
                "features_folder": record.features_folder}
        arrays = {f"array_{name}": np.asarray(value) for name, value in record.sample_arrays.items()}
        _atomic_save_npz(self.folder / f"done-{record.index:06d}.npz",
                         meta=np.array(json.dumps(meta, default=_json_default)), **arrays)

    def finished_records(self, skip: set[int]) -> list[ModelRecord]:
        """Records written so far whose candidate index is not in ``skip``, in index order."""
        records = []
        for path in sorted(self.folder.glob("done-*.npz")):
            if int(path.stem.removeprefix("done-")) in skip:
                continue
            with np.load(path, allow_pickle=False) as stored:
                meta = json.loads(str(stored["meta"]))
                arrays = {name.removeprefix("array_"): stored[name] for name in stored.files if name != "meta"}
            records.append(ModelRecord(meta["index"], meta["process"], meta["row"], meta["notes"],
                                       meta["features_folder"], arrays))
        return records

    @property
    def leaderboard_path(self) -> Path:
        return self.folder / "leaderboard.json"

    def write_leaderboard(self, board) -> None:
        """Hand the final leaderboard to the other processes (written whole, then renamed into place)."""
        written = board.save(self.folder, formats=("json",), stem=".leaderboard.partial")[0]
        os.replace(written, self.leaderboard_path)

    def wait_for_leaderboard(self):
        """The final leaderboard written by the main process (waits for it)."""
        from lead_hub.leaderboard import Leaderboard

        while not self.leaderboard_path.exists():
            time.sleep(POLL_SECONDS)
        return Leaderboard.load(self.leaderboard_path)


def unfinished_report(shares: Sequence[Sequence[str]], finished: set[str]) -> str:
    """One line naming, per process, the models of ``shares`` not in ``finished``, and how to resume.

    Examples
    --------
    >>> unfinished_report([["a", "b"], ["c"]], {"a", "b"})
    'models not ranked: process 1: c; every finished model is in the cache: rerun the same command to resume'
    """
    parts = [f"process {process}: {', '.join(m for m in share if m not in finished)}"
             for process, share in enumerate(shares) if any(m not in finished for m in share)]
    return (f"models not ranked: {'; '.join(parts) or 'none'}; every finished model is in the cache: rerun the same "
            "command to resume")


@contextmanager
def sigterm_raises(report) -> Iterator[None]:
    """Within the block, SIGTERM (how torchrun stops the survivors when a process dies) raises
    :class:`RankingStopped` with ``report()`` as its message, so the main process says what was left undone.
    Outside the main thread (where Python cannot install handlers) the block runs unchanged."""
    def stop(signum, frame):
        raise RankingStopped(f"the ranking was stopped (SIGTERM: another process of the launch ended, see its error "
                             f"above); {report()}")

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
