"""Thread counts: from the CPUs this process may use (affinity, cgroup quota) minus those others keep busy."""

from __future__ import annotations

import os

import pytest
import torch
from threadpoolctl import threadpool_info

from lead_hub import threads


@pytest.fixture
def fresh(monkeypatch):
    """A process that has not chosen yet, with no thread setting in the environment; torch and BLAS restored."""
    monkeypatch.setattr(threads, "_chosen", None)
    for name in (*threads.USER_SETTINGS, threads.OVERRIDE):
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=before, user_api="blas")


def _blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


@pytest.mark.parametrize(("files", "quota"), [
    ({"cpu.max": "150000 100000\n"}, 1.5),
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),
])
def test_cgroup_quota_v2_and_v1(tmp_path, files, quota):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert threads.cgroup_cpu_quota(tmp_path) == quota


def test_allowed_cpus_is_capped_by_the_quota(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    monkeypatch.setattr(threads, "cgroup_cpu_quota", lambda: 2.5)
    assert threads.allowed_cpus() == 3
    monkeypatch.setattr(threads, "cgroup_cpu_quota", lambda: None)
    assert threads.allowed_cpus() == 8


@pytest.mark.parametrize(("allowed", "busy", "expected"), [(2, 1.1, 1), (2, 0.05, 2), (8, 2.7, 5), (2, 3.0, 1)])
def test_threads_are_the_idle_allowed_cpus(fresh, monkeypatch, allowed, busy, expected):
    monkeypatch.setattr(threads, "allowed_cpus", lambda: allowed)
    monkeypatch.setattr(threads, "busy_cpus", lambda seconds=threads.SAMPLE_SECONDS: busy)
    assert threads.use_available_cpus() == expected
    assert torch.get_num_threads() == expected and _blas_threads() == {expected}
    monkeypatch.setattr(threads, "busy_cpus", lambda seconds=threads.SAMPLE_SECONDS: 0.0)
    assert threads.use_available_cpus() == expected  # chosen once per process


def test_a_user_setting_is_respected(fresh, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setattr(threads, "busy_cpus", lambda seconds=threads.SAMPLE_SECONDS: pytest.fail("measured"))
    torch.set_num_threads(3)
    assert threads.use_available_cpus() is None and torch.get_num_threads() == 3
    monkeypatch.setenv(threads.OVERRIDE, "2")
    assert threads.use_available_cpus() == 2 and torch.get_num_threads() == 2


def test_a_bad_override_is_named(fresh, monkeypatch):
    monkeypatch.setenv(threads.OVERRIDE, "many")
    with pytest.raises(ValueError, match="LEAD_HUB_THREADS='many'"):
        threads.use_available_cpus()


def test_busy_cpus_reads_the_counters_of_this_machine():
    busy = threads.busy_cpus(0.05)
    assert 0.0 <= busy <= len(os.sched_getaffinity(0)) + 1e-9


@pytest.mark.parametrize(("allowed", "workers"), [(1, 0), (2, 1), (3, 2), (16, 4)])
def test_decoding_workers_follow_the_allowed_cpus_not_the_machines(monkeypatch, allowed, workers):
    from lead_hub import features

    # A container limited to `allowed` CPUs of a larger machine: os.cpu_count() would count the machine's.
    monkeypatch.setattr(features, "allowed_cpus", lambda: allowed)
    assert features._worker_count(None) == workers
    assert features._worker_count(3) == 3  # an explicit count is kept
