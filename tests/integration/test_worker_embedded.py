"""End to end: workers embedded in this process with ``app.run_worker``.

``procs=0`` runs the worker threads here; ``procs=2`` makes this (pytest) process a supervisor
that forks two worker processes. Both are run in burst mode so the call returns.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobq import JobContext, JobFailedError, JobQ
from tests.support import sample_tasks
from tests.support.helpers import log_lines, pid_alive

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("procs", "threads"), [(0, 2), (2, 4)])
def test_run_worker_in_burst_runs_every_job_and_returns_0(
    procs: int,
    threads: int,
    sample_app: JobQ,
    tmp_path: Path,
) -> None:
    sums = [sample_tasks.add.submit(index, 1) for index in range(6)]
    pids = [sample_tasks.pid.submit() for _ in range(4)]
    records = [sample_tasks.record.submit(f"r{index}") for index in range(4)]
    failing = sample_tasks.fail.options(max_attempts=1).submit("nope")
    delayed = sample_tasks.add.options(delay=60).submit(1, 1)

    assert sample_app.run_worker(procs=procs, threads=threads, burst=True, lease=2) == 0

    assert [job.result(timeout=5) for job in sums] == [1, 2, 3, 4, 5, 6]
    assert [job.result(timeout=5) for job in records] == ["r0", "r1", "r2", "r3"]
    ran_in = {job.result(timeout=5) for job in pids}
    if procs == 0:
        assert ran_in == {os.getpid()}
    else:
        assert os.getpid() not in ran_in
        assert not any(pid_alive(pid) for pid in ran_in), "forked workers outlived run_worker"
    with pytest.raises(JobFailedError) as raised:
        failing.result(timeout=5)
    assert raised.value.error["type"] == "ValueError"
    assert delayed.status() == "scheduled"
    # Each job ran exactly once.
    assert sorted(tag for tag, _, _ in log_lines(tmp_path)) == ["fail", "r0", "r1", "r2", "r3"]
    assert sample_app.store.workers() == []


# -- callbacks ------------------------------------------------------------------------------

callbacks_app = JobQ()


def _note(kind: str, context: JobContext, value: Any) -> None:
    """Write what the callback saw, and the job's status as a fresh reader sees it."""
    reader = JobQ(callbacks_app.database)
    try:
        status = reader.store.get_job(context.id).status
    finally:
        reader.close()
    entry = {
        "kind": kind,
        "job": context.id,
        "attempts": context.attempts,
        "status": status,
        "value": value,
    }
    with open(os.environ["JOBQ_CALLBACK_LOG"], "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def on_success(context: JobContext, value: Any) -> None:
    _note("success", context, value)


def on_failure(context: JobContext, error: Any) -> None:
    _note("failure", context, error)


def raising_callback(context: JobContext, value: Any) -> None:
    _note("raising", context, value)
    raise RuntimeError("the callback is broken")


@callbacks_app.task(name="embedded.double", on_success=on_success, on_failure=on_failure)
def double(x: int) -> int:
    return 2 * x


@callbacks_app.task(
    name="embedded.broken", max_attempts=2, backoff=0, on_success=on_success, on_failure=on_failure
)
def broken(message: str) -> None:
    raise ValueError(message)


@callbacks_app.task(name="embedded.loud", on_success=raising_callback)
def loud(x: int) -> int:
    return x


@callbacks_app.task(name="embedded.loud_failure", max_attempts=1, on_failure=raising_callback)
def loud_failure() -> None:
    raise KeyError("gone")


@pytest.fixture
def callbacks(database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    log = tmp_path / "callbacks.log"
    monkeypatch.setenv("JOBQ_CALLBACK_LOG", str(log))
    callbacks_app.use_database(database)
    yield log
    callbacks_app.close()


def _entries(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.parametrize("procs", [0, 2])
def test_callbacks_run_after_the_outcome_is_recorded_and_cannot_change_it(
    procs: int,
    callbacks: Path,
) -> None:
    loud_job = loud.submit(7)
    loud_failed = loud_failure.submit()
    doubled = [double.submit(index) for index in range(3)]
    failed = broken.submit("bad input")

    assert callbacks_app.run_worker(procs=procs, threads=2, burst=True, lease=2) == 0

    # Raising callbacks changed nothing: the outcomes stand, and the worker carried on.
    assert loud_job.result(timeout=5) == 7
    with pytest.raises(JobFailedError):
        loud_failed.result(timeout=5)
    assert loud_failed.info().error["type"] == "KeyError"  # type: ignore[index]
    assert [job.result(timeout=5) for job in doubled] == [0, 2, 4]
    with pytest.raises(JobFailedError):
        failed.result(timeout=5)
    assert failed.info().attempts == 2

    entries = {(entry["kind"], entry["job"]): entry for entry in _entries(callbacks)}
    assert len(entries) == len(_entries(callbacks)), "a callback ran twice"
    assert set(entries) == {
        ("raising", loud_job.id),
        ("raising", loud_failed.id),
        *(("success", job.id) for job in doubled),
        ("failure", failed.id),
    }
    for index, job in enumerate(doubled):
        entry = entries[("success", job.id)]
        assert entry["status"] == "succeeded", "the callback ran before the outcome was recorded"
        assert entry["value"] == 2 * index
    entry = entries[("failure", failed.id)]
    assert entry["status"] == "failed"
    assert entry["attempts"] == 2  # only the final failure, not the retried attempt
    assert entry["value"]["type"] == "ValueError"
    assert entry["value"]["message"] == "bad input"
    assert "ValueError: bad input" in entry["value"]["traceback"]
    assert entries[("raising", loud_job.id)]["status"] == "succeeded"
    assert entries[("raising", loud_failed.id)]["status"] == "failed"


# -- a timeout in an embedded worker --------------------------------------------------------


@callbacks_app.task(name="embedded.nap", max_attempts=1)
def nap(seconds: float) -> float:
    time.sleep(seconds)  # writes nothing: it may outlive the test in an abandoned thread
    return seconds


def test_embedded_worker_abandons_a_timed_out_thread_and_carries_on(callbacks: Path) -> None:
    """procs=0 cannot recycle the process it runs in: the stuck thread is replaced."""
    slow = nap.options(timeout=0.3).submit(2)
    after = [double.submit(index) for index in range(3)]

    assert callbacks_app.run_worker(procs=0, threads=1, burst=True, lease=2) == 0

    with pytest.raises(JobFailedError) as raised:
        slow.result(timeout=5)
    assert raised.value.error["type"] == "JobTimeout"
    assert slow.info().attempts == 1
    # With one thread, these ran only because a fresh thread took the stuck one's place.
    assert [job.result(timeout=5) for job in after] == [0, 2, 4]
