"""How many threads torch and BLAS get: the CPUs this process may use that other processes are not using now.

torch and OpenBLAS start one thread per core of the machine and synchronise them at the end of every parallel
operation; when another process holds one of the cores, the thread sharing it is descheduled for whole time
slices and every operation waits for it. On 2 cores with one busy, that made the demo ranking several times slower
than with one thread (docs/ranking.md, "Threads"). So at the start of a ranking :func:`use_available_cpus` counts

    allowed = min(CPUs in this process's affinity mask, ⌈cgroup CPU quota⌉)
    threads = max(1, allowed − round(CPUs busy with other processes))

where the busy CPUs are measured over :data:`SAMPLE_SECONDS` from ``/proc/stat`` (summed over the allowed CPUs),
and sets torch's intra-op threads and every BLAS pool (threadpoolctl) to that count, once per process. A user who
chose for themselves (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` or ``LEAD_HUB_THREADS``
in the environment) is left alone, except that ``LEAD_HUB_THREADS=N`` sets N threads.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

logger = logging.getLogger(__name__)

USER_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
OVERRIDE = "LEAD_HUB_THREADS"
SAMPLE_SECONDS = 0.25
_chosen: int | None = None


def allowed_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup (v2 ``cpu.max`` or v1 CFS) quota."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_quota()
    return max(1, min(count, math.ceil(quota))) if quota is not None else max(1, count)


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (``quota / period``), or None when unlimited or unknown."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def busy_cpus(seconds: float = SAMPLE_SECONDS) -> float:
    """CPUs of this process's affinity mask kept busy by other processes over the next ``seconds`` (this one is
    asleep meanwhile), from the per-CPU counters of ``/proc/stat``; 0 where they cannot be read."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    before = _cpu_times(cpus)
    if not before:
        return 0.0
    time.sleep(seconds)
    after = _cpu_times(cpus)
    busy = 0.0
    for cpu, (idle_then, total_then) in before.items():
        idle_now, total_now = after.get(cpu, (idle_then, total_then))
        elapsed = total_now - total_then
        if elapsed > 0:
            busy += 1.0 - (idle_now - idle_then) / elapsed
    return busy


def use_available_cpus() -> int | None:
    """Set torch's and BLAS's thread counts from the idle allowed CPUs (see the module docstring), once per
    process; return the count, or None when the environment already chose."""
    global _chosen
    if _chosen is not None:
        return _chosen
    override = os.environ.get(OVERRIDE)
    if override is None and any(os.environ.get(name) for name in USER_SETTINGS):
        return None
    if override is not None:
        try:
            threads = int(override)
        except ValueError:
            raise ValueError(f"{OVERRIDE}={override!r}: expected a whole number of threads") from None
        if threads < 1:
            raise ValueError(f"{OVERRIDE}={override!r}: expected at least 1 thread")
    else:
        allowed = allowed_cpus()
        threads = max(1, allowed - round(busy_cpus())) if allowed > 1 else 1
    _apply(threads)
    _chosen = threads
    logger.info("using %d thread(s) for torch and BLAS", threads)
    return threads


def _apply(threads: int) -> None:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads, user_api="blas")


def _cpu_times(cpus: set[int] | None) -> dict[int, tuple[int, int]]:
    """``{cpu: (idle + iowait jiffies, total jiffies)}`` for the CPUs of ``cpus`` (all when None)."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return {}
    times = {}
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        cpu = int(name[3:])
        if cpus is None or cpu in cpus:
            values = [int(field) for field in fields[:8]]
            times[cpu] = (values[3] + values[4], sum(values))
    return times
