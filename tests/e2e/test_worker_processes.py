"""End to end: real ``jobq worker`` processes, real signals, what a user would see.

Every test starts the worker as a subprocess (``start_worker``), submits jobs, hurts the
worker in some way (SIGKILL, SIGTERM, a timeout, a crashing task) and then checks the jobs'
statuses, the exit code and which processes are left.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from jobq import JobQ
from jobq.worker.settings import WorkerSettings
from tests.support.helpers import (
    TASKS,
    WorkerHandle,
    all_have,
    cli_status,
    log_lines,
    pid_alive,
    pids_of,
    record,
    wait_for,
    wait_for_status,
)
from tests.support.postgres import BOTH_BACKENDS

pytestmark = pytest.mark.slow

SLEEP = f"{TASKS}.sleep"


# -- helpers -------------------------------------------------------------------------------


def submit(app: JobQ, task: str, *args: Any, **options: Any) -> int:
    return app.submit(f"{TASKS}.{task}", args=args, **options).id


def statuses(app: JobQ, ids: Sequence[int]) -> dict[int, str]:
    return app.store.job_statuses(ids)


def worker_pid(app: JobQ, worker_id: str) -> int | None:
    for worker in app.store.workers():
        if worker.id == worker_id:
            return worker.pid
    return None


def running(app: JobQ, ids: Sequence[int], count: int) -> bool:
    return sum(status == "running" for status in statuses(app, ids).values()) >= count


def executing(tmp_path: Path, count: int) -> bool:
    """``count`` tasks are really executing (claimed is not enough: not started yet)."""
    return sum(tag.startswith("start-") for tag, _, _ in log_lines(tmp_path)) >= count


# -- 1. a worker process killed -----------------------------------------------------------


@BOTH_BACKENDS
def test_sigkill_of_a_worker_process_requeues_its_jobs_and_restarts_it(
    sample_app: JobQ,
    start_worker: Callable[..., WorkerHandle],
    jobq: Callable[..., Any],
    tmp_path: Path,
) -> None:
    ids = [submit(sample_app, "sleep", 1.5, f"j{index}") for index in range(6)]
    # A long lease: only the supervisor itself can give the jobs back within the test.
    worker = start_worker("--procs", "2", "--threads", "2", "--lease", "30", "--grace", "5")
    wait_for(lambda: running(sample_app, ids, 4) and executing(tmp_path, 4), timeout=10)
    first = record(sample_app, ids[0])
    assert first.status == "running" and first.worker
    victim = worker_pid(sample_app, first.worker)
    assert victim is not None
    children = worker.children()
    assert victim in children and len(children) == 2
    held = [
        job_id
        for job_id in ids
        if (rec := record(sample_app, job_id)).worker == first.worker and rec.status == "running"
    ]
    assert first.id in held

    os.kill(victim, signal.SIGKILL)

    # Queued again at once (not after the 30 s lease), and the process is replaced.
    wait_for(
        lambda: all(record(sample_app, job_id).worker != first.worker for job_id in held), timeout=3
    )
    wait_for(lambda: len(worker.children()) == 2 and victim not in worker.children(), timeout=5)

    wait_for_status(sample_app, ids, "succeeded", "failed", timeout=15)
    assert worker.process.poll() is None, "the supervisor died with its child"
    info = cli_status(jobq, first.id)
    assert info["status"] == "succeeded" and info["result"] == 1.5 and info["attempts"] == 2, info
    for job_id in ids:
        done = record(sample_app, job_id)
        assert done.status == "succeeded", done
        assert done.result == 1.5
        assert done.attempts == (2 if job_id in held else 1), done
    for job_id in held:
        tag = f"j{ids.index(job_id)}"
        assert len(pids_of(tmp_path, f"start-{tag}", job_id)) == 2
        ends = pids_of(tmp_path, f"end-{tag}", job_id)
        assert len(ends) == 1 and ends[0] != victim
    assert worker.stop(timeout=10) == 0


# -- 2. the supervisor killed -------------------------------------------------------------


@BOTH_BACKENDS
def test_sigkill_of_the_supervisor_kills_its_children_and_a_new_worker_recovers_the_jobs(
    sample_app: JobQ,
    start_worker: Callable[..., WorkerHandle],
    tmp_path: Path,
) -> None:
    ids = [submit(sample_app, "sleep", 1.5, f"j{index}") for index in range(4)]
    worker = start_worker("--procs", "2", "--threads", "2", "--lease", "30", "--grace", "5")
    wait_for(lambda: running(sample_app, ids, 4) and executing(tmp_path, 4), timeout=10)
    children = worker.children()
    assert len(children) == 2

    worker.signal(signal.SIGKILL)
    assert worker.wait(timeout=5) == -signal.SIGKILL
    wait_for(lambda: not any(pid_alive(child) for child in children), timeout=5)
    # Nobody gave the jobs back: they still look running, held by dead processes.
    assert all_have(sample_app, ids, "running")

    # Same host, dead pids: recovered at once, well before the 30 s lease.
    again = start_worker("--procs", "1", "--threads", "4", "--lease", "30", "--burst")
    assert again.wait(timeout=20) == 0, again.output()
    for job_id in ids:
        info = record(sample_app, job_id)
        assert info.status == "succeeded", info
        assert info.attempts == 2, info
        tag = f"j{ids.index(job_id)}"
        assert len(pids_of(tmp_path, f"start-{tag}", job_id)) == 2
        assert pids_of(tmp_path, f"end-{tag}", job_id)[0] not in children


# -- 3. SIGTERM, jobs finish within the grace ---------------------------------------------


def test_sigterm_lets_running_jobs_finish_and_leaves_the_rest_queued(
    sample_app: JobQ,
    start_worker: Callable[..., WorkerHandle],
    jobq: Callable[..., Any],
    tmp_path: Path,
) -> None:
    ids = [submit(sample_app, "sleep", 1.5, f"j{index}") for index in range(5)]
    worker = start_worker("--procs", "1", "--threads", "2", "--lease", "2", "--grace", "5")
    wait_for(lambda: running(sample_app, ids, 2) and executing(tmp_path, 2), timeout=10)
    started = [
        job_id for job_id, status in statuses(sample_app, ids).items() if status == "running"
    ]
    assert len(started) == 2
    children = worker.children()

    assert worker.stop(timeout=10) == 0, worker.output()

    assert not any(pid_alive(child) for child in children)
    for job_id in ids:
        info = record(sample_app, job_id)
        if job_id in started:
            assert info.status == "succeeded", info
            assert info.attempts == 1
        else:
            assert info.status == "queued", info
            assert info.attempts == 0
    assert sorted(
        job_id for tag, job_id, _ in log_lines(tmp_path) if tag.startswith("end-")
    ) == sorted(started)
    summary = json.loads(jobq("status", "--json").stdout)
    assert summary["counts"]["running"] == 0
    assert summary["workers"] == []


# -- 4. SIGTERM that cannot wait: a second signal, or the grace runs out -------------------


@pytest.mark.parametrize("how", ["second-signal", "grace-runs-out"])
def test_stopping_now_queues_interrupted_jobs_again_without_counting_the_attempt(
    how: str,
    sample_app: JobQ,
    start_worker: Callable[..., WorkerHandle],
    jobq: Callable[..., Any],
    tmp_path: Path,
) -> None:
    ids = [submit(sample_app, "sleep", 30, f"j{index}") for index in range(3)]
    grace = "30" if how == "second-signal" else "1"
    worker = start_worker("--procs", "1", "--threads", "2", "--lease", "2", "--grace", grace)
    wait_for(lambda: running(sample_app, ids, 2) and executing(tmp_path, 2), timeout=10)
    children = worker.children()
    assert len(children) == 1

    worker.signal(signal.SIGTERM)
    if how == "second-signal":
        time.sleep(0.3)
        assert worker.process.poll() is None, "stopped before the grace with jobs running"
        worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=6) == 0, worker.output()

    wait_for(lambda: not any(pid_alive(child) for child in children), timeout=5)
    for job_id in ids:
        info = cli_status(jobq, job_id)
        assert info["status"] == "queued", info
        assert info["attempts"] == 0, info
        assert info["worker"] is None
    assert not [tag for tag, _, _ in log_lines(tmp_path) if tag.startswith("end-")]
    assert json.loads(jobq("status", "--json").stdout)["workers"] == []


# -- 5. a job timeout recycles the worker process -----------------------------------------


def test_a_job_timeout_fails_that_job_and_recycles_the_process(
    sample_app: JobQ,
    start_worker: Callable[..., WorkerHandle],
    jobq: Callable[..., Any],
    tmp_path: Path,
) -> None:
    other = submit(sample_app, "sleep", 1.2, "other")
    done = jobq("submit", SLEEP, "10", "slow", "--timeout", "0.5", "--max-attempts", "1")
    assert done.returncode == 0, done.stderr
    slow = int(done.stdout)
    worker = start_worker("--procs", "1", "--threads", "2", "--lease", "2", "--grace", "5")
    wait_for(lambda: len(worker.children()) == 1, timeout=10)
    first_child = worker.children()[0]

    wait_for_status(sample_app, [slow, other], "succeeded", "failed", timeout=15)

    info = cli_status(jobq, slow)
    assert info["status"] == "failed", info
    assert info["error"]["type"] == "JobTimeout"
    assert info["attempts"] == 1
    neighbour = cli_status(jobq, other)
    assert neighbour["status"] == "succeeded", neighbour
    assert neighbour["attempts"] == 1, "the recycle must not count the neighbour's attempt"
    # Both ran in the first process; the neighbour started again in a new one.
    assert pids_of(tmp_path, "start-slow", slow) == [first_child]
    starts = pids_of(tmp_path, "start-other", other)
    assert len(starts) == 2 and starts[0] == first_child and starts[1] != first_child
    assert pids_of(tmp_path, "end-other", other) == [starts[1]]
    assert not pids_of(tmp_path, "end-slow", slow)
    assert worker.process.poll() is None
    assert worker.children() == [starts[1]]
    assert worker.stop(timeout=10) == 0


# -- 6. a poison job ----------------------------------------------------------------------


def test_a_job_that_kills_its_process_fails_with_worker_lost_and_others_succeed(
    sample_app: JobQ,
    start_worker: Callable[..., WorkerHandle],
    jobq: Callable[..., Any],
    tmp_path: Path,
) -> None:
    poison = submit(sample_app, "crash", 3)
    others = [submit(sample_app, "sleep", 0.2, f"j{index}") for index in range(4)]
    others += [submit(sample_app, "add", index, 1) for index in range(4)]
    worker = start_worker("--procs", "1", "--threads", "2", "--lease", "2", "--burst")
    assert worker.wait(timeout=30) == 0, worker.output()

    info = cli_status(jobq, poison)
    assert info["status"] == "failed", info
    assert info["attempts"] == 2 and info["max_attempts"] == 2
    assert info["error"]["type"] == "WorkerLost"
    assert "exit code 3" in info["error"]["message"]
    assert [tag for tag, job_id, _ in log_lines(tmp_path) if job_id == poison] == ["crash"] * 2
    assert statuses(sample_app, others) == dict.fromkeys(others, "succeeded")
    assert [record(sample_app, job_id).result for job_id in others[4:]] == [1, 2, 3, 4]


# -- 7. retries ---------------------------------------------------------------------------


def test_retries_with_backoff_until_success_or_the_last_attempt(
    sample_app: JobQ,
    start_worker: Callable[..., WorkerHandle],
    jobq: Callable[..., Any],
    tmp_path: Path,
) -> None:
    failing = submit(sample_app, "fail", "kaboom")
    flaky = submit(sample_app, "flaky", 3)
    worker = start_worker("--procs", "1", "--threads", "2", "--lease", "2", "--grace", "5")
    wait_for_status(sample_app, [failing, flaky], "succeeded", "failed", timeout=15)

    info = cli_status(jobq, failing)
    assert info["status"] == "failed", info
    assert info["attempts"] == 3
    assert info["error"]["type"] == "ValueError"
    assert info["error"]["message"] == "kaboom"
    assert "ValueError: kaboom" in info["error"]["traceback"]
    assert "raise ValueError(message)" in info["error"]["traceback"]
    assert [tag for tag, job_id, _ in log_lines(tmp_path) if job_id == failing] == ["fail"] * 3

    info = cli_status(jobq, flaky)
    assert info["status"] == "succeeded", info
    assert info["result"] == 3
    assert info["attempts"] == 3
    assert [tag for tag, job_id, _ in log_lines(tmp_path) if job_id == flaky] == [
        "attempt-1",
        "attempt-2",
        "attempt-3",
    ]
    assert worker.stop(timeout=10) == 0


# -- 8. burst -----------------------------------------------------------------------------


@pytest.mark.parametrize("procs", ["0", "2"])
def test_burst_exits_when_nothing_is_runnable_and_skips_delayed_jobs(
    procs: str,
    sample_app: JobQ,
    start_worker: Callable[..., WorkerHandle],
    jobq: Callable[..., Any],
) -> None:
    now = jobq("submit", f"{TASKS}.add", "1", "2")
    later = jobq("submit", f"{TASKS}.add", "2", "3", "--delay", "60")
    assert now.returncode == 0 and later.returncode == 0, (now.stderr, later.stderr)
    now_id, later_id = int(now.stdout), int(later.stdout)
    quick = [submit(sample_app, "echo", index) for index in range(10)]

    worker = start_worker("--procs", procs, "--threads", "2", "--lease", "2", "--burst")
    assert worker.wait(timeout=20) == 0, worker.output()

    info = cli_status(jobq, now_id)
    assert info["status"] == "succeeded" and info["result"] == 3, info
    assert [record(sample_app, job_id).result for job_id in quick] == list(range(10))
    info = cli_status(jobq, later_id)
    assert info["status"] == "scheduled", info
    assert info["attempts"] == 0
    assert info["run_at"] > time.time() + 30
    assert json.loads(jobq("status", "--json").stdout)["workers"] == []


# -- 9. a memory limit with the default threads --------------------------------------------


def test_the_default_threads_start_under_a_memory_limit_and_a_hog_fails_alone(
    sample_app: JobQ,
    start_worker: Callable[..., WorkerHandle],
    jobq: Callable[..., Any],
) -> None:
    """glibc's per-thread malloc arenas once used up --max-memory 600 before any task ran:
    no executor thread could start, and the process crashed in a loop."""
    hog = submit(sample_app, "hog", max_attempts=1)
    sums = [submit(sample_app, "add", index, 1) for index in range(40)]
    worker = start_worker("--procs", "1", "--max-memory", "600", "--burst")
    assert worker.wait(timeout=60) == 0, worker.output()

    threads = WorkerSettings(database="x").threads
    assert f"started: {threads} threads" in worker.output()
    assert "crashed" not in worker.output()
    info = cli_status(jobq, hog)
    assert info["status"] == "failed" and info["error"]["type"] == "MemoryError", info
    assert [record(sample_app, job_id).result for job_id in sums] == list(range(1, 41))
