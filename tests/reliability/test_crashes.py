"""Reliability: worker processes die (SIGKILL from outside, a fault point, a poison job) and
no accepted job is lost; only jobs in flight at a crash run twice.

Every test runs the real ``jobq worker`` with real signals and counts real executions from
the sample tasks' log (JOBQ_TEST_LOG). Run with ``-s`` to see the figures each test checks.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from jobq import JobQ
from jobq.faults import POINTS
from tests.support import sample_tasks
from tests.support.helpers import (
    FINISHED,
    TASKS,
    WorkerHandle,
    cli_json,
    log_lines,
    pid_alive,
    wait_for,
    wait_for_status,
)
from tests.support.postgres import BOTH_BACKENDS

pytestmark = [pytest.mark.slow, BOTH_BACKENDS]


def runs(tmp_path: Path, tag: str | None = None) -> list[tuple[str, int, int]]:
    """(tag, job id, pid) of every execution the sample tasks logged (of ``tag`` only, if
    given), in log order."""
    return [line for line in log_lines(tmp_path) if tag is None or line[0] == tag]


def run_counts(tmp_path: Path, tag: str) -> Counter[int]:
    """Job id -> how many times it really ran."""
    return Counter(job_id for _, job_id, _ in runs(tmp_path, tag))


def integrity(jobq: Callable[..., Any]) -> str:
    """What ``jobq check`` says of the database (``PRAGMA integrity_check``)."""
    return str(cli_json(jobq, "check")["integrity"])


def drain(app: JobQ, ids: Sequence[int], timeout: float) -> None:
    """Wait (bounded) until none of ``ids`` is queued, scheduled or running."""
    wait_for_status(app, ids, *FINISHED, timeout=timeout, interval=0.05)


# -- 1. kill chaos ------------------------------------------------------------------------

THREADS = 4


def test_random_sigkills_of_worker_processes_lose_no_job(
    sample_app: JobQ,
    start_worker: Callable[..., WorkerHandle],
    jobq: Callable[..., Any],
    tmp_path: Path,
) -> None:
    rng = random.Random(20240611)
    worker = start_worker("--procs", "5", "--threads", str(THREADS), "--lease", "30")
    wait_for(lambda: len(worker.children()) == 5, timeout=15)

    # The jobs arrive while the processes die: one worker drains 2000 touches in well under
    # a second, so submitting them all first would leave nothing in flight to kill.
    ids: list[int] = []
    killed: list[int] = []
    started = time.monotonic()
    for tick in range(45):
        batch = sample_tasks.touch.submit_many([[n] for n in range(tick * 45, tick * 45 + 45)])
        ids += [job.id for job in batch]
        time.sleep(rng.uniform(0.0, 0.02))  # let the claims land, then kill mid-flight
        victim = worker.kill_random_child(rng)
        if victim is not None:
            killed.append(victim)
        time.sleep(0.18)
    chaos = time.monotonic() - started

    drain(sample_app, ids, timeout=60)
    drained = time.monotonic() - started - chaos

    summary = cli_json(jobq, "status")
    statuses = sample_app.store.job_statuses(ids)
    counts = run_counts(tmp_path, "touch")
    executions = sum(counts.values())
    duplicates = executions - len(counts)
    bound = len(killed) * THREADS
    died = worker.output().count(" died (killed by SIGKILL)")
    print(
        f"\nchaos {chaos:.1f} s, drain {drained:.1f} s: jobs {len(ids)}, kills {len(killed)}"
        f" (supervisor saw {died} deaths), executions {executions}, duplicates {duplicates},"
        f" bound kills*threads {bound}"
    )
    assert len(ids) == 2025
    assert len(killed) >= 10, "the chaos hardly killed anything"
    # Nothing lost, everything done, as `jobq status` shows it.
    assert summary["counts"]["succeeded"] == len(ids), summary["counts"]
    assert sum(summary["counts"].values()) == len(ids), summary["counts"]
    assert set(statuses.values()) == {"succeeded"}
    # At least once: every job really ran; duplicates only for jobs in flight at a kill.
    assert set(counts) == set(ids), f"never ran: {sorted(set(ids) - set(counts))[:10]}"
    attempts = {r.id: r.attempts for r in sample_app.store.list_jobs(limit=len(ids) + 10)}
    assert all(counts[job_id] <= attempts[job_id] for job_id in ids), "a run not counted"
    assert duplicates <= bound, (duplicates, bound)
    # A run that was not the last of its job happened in a process we killed: a process
    # that lived never ran a job whose outcome it then failed to record.
    last_pid: dict[int, int] = {}
    repeated_in: list[int] = []
    for _, job_id, pid in runs(tmp_path, "touch"):
        if job_id in last_pid:
            repeated_in.append(last_pid[job_id])
        last_pid[job_id] = pid
    per_kill = {pid: repeated_in.count(pid) for pid in set(repeated_in)}
    print(f"duplicates per killed process: max {max(per_kill.values(), default=0)}")
    assert set(per_kill) <= set(killed), set(per_kill) - set(killed)
    # ...and at most one per thread: a process holds no more jobs than it has threads, even
    # when its completer lags behind its executors.
    assert max(per_kill.values(), default=0) <= THREADS, per_kill
    assert integrity(jobq) == "ok"

    assert worker.process.poll() is None, "the supervisor died with its children"
    children = worker.children()
    assert worker.stop(timeout=15) == 0, worker.output()[-2000:]
    assert not any(pid_alive(child) for child in children)


# -- 2. a crash at each step of a job's life ----------------------------------------------


JOBS = 200


@pytest.mark.parametrize("point", POINTS)
def test_a_crash_at_any_step_loses_no_job_and_reruns_unrecorded_ones(
    point: str,
    sample_app: JobQ,
    start_worker: Callable[..., WorkerHandle],
    jobq: Callable[..., Any],
    tmp_path: Path,
) -> None:
    # 200 jobs, about 10-15 deaths: more, and the supervisor's restart backoff (doubling for
    # each quick death of a slot) makes the drain time heavy-tailed (300: once 33 s).
    ids = [job.id for job in sample_tasks.touch.submit_many([[n] for n in range(JOBS)])]
    worker = start_worker(
        "--procs", "3", "--threads", "2", "--lease", "30", env={"JOBQ_FAULTS": f"{point}=0.05"}
    )
    started = time.monotonic()
    drain(sample_app, ids, timeout=60)
    deaths = worker.output().count(" died (killed by SIGKILL)")
    # A point met once per batch (after_claim, after_complete) can, rarely, miss 200 times.
    for _ in range(3):
        if deaths:
            break
        more = sample_tasks.touch.submit_many([[n] for n in range(len(ids), len(ids) + 100)])
        ids += [job.id for job in more]
        drain(sample_app, ids, timeout=30)
        deaths = worker.output().count(" died (killed by SIGKILL)")
    elapsed = time.monotonic() - started

    counts = run_counts(tmp_path, "touch")
    executions = sum(counts.values())
    records = {job_id: sample_app.store.get_job(job_id) for job_id in ids}
    rerun = sum(1 for count in counts.values() if count > 1)
    print(
        f"\n{point}: {len(ids)} jobs in {elapsed:.1f} s, worker deaths {deaths},"
        f" executions {executions}, duplicates {executions - len(counts)} ({rerun} jobs ran"
        f" more than once), max attempts {max(r.attempts for r in records.values())}"
    )
    assert deaths >= 1, "the fault point never fired"
    assert "died" in worker.output()
    assert {r.status for r in records.values()} == {"succeeded"}
    assert sorted(r.result for r in records.values()) == list(range(len(ids)))
    assert cli_json(jobq, "status")["counts"]["succeeded"] == len(ids)
    # Never zero times, and never a run the attempts did not count.
    for job_id, info in records.items():
        assert 1 <= counts[job_id] <= info.attempts, (info, counts[job_id])
    assert integrity(jobq) == "ok"
    assert worker.process.poll() is None
    assert worker.stop(timeout=15) == 0, worker.output()[-2000:]


# -- 3. poison jobs -----------------------------------------------------------------------


def test_poison_jobs_fail_after_their_attempts_and_bystanders_succeed(
    sample_app: JobQ,
    start_worker: Callable[..., WorkerHandle],
    jobq: Callable[..., Any],
    tmp_path: Path,
) -> None:
    worker = start_worker("--procs", "2", "--threads", "2", "--lease", "30", "--max-memory", "600")
    started = time.monotonic()
    # A job that kills its process: the other jobs that process was running pay an attempt
    # too (nobody can tell which job killed it), so the bystanders get plenty of attempts.
    segfault = sample_app.submit(f"{TASKS}.segfault").id
    near_crash = [job.id for job in sample_tasks.touch.submit_many([[n] for n in range(25)])]
    drain(sample_app, [segfault, *near_crash], timeout=30)
    # A job over the memory limit: an ordinary failure, its process lives on. Submitted once
    # the segfaults are over, or dying with them would charge it an attempt as well.
    hog = sample_app.submit(f"{TASKS}.hog").id
    near_hog = [job.id for job in sample_tasks.touch.submit_many([[n] for n in range(25)])]
    drain(sample_app, [hog, *near_hog], timeout=30)
    elapsed = time.monotonic() - started

    crashed = cli_json(jobq, "status", str(segfault))
    assert crashed["status"] == "failed", crashed
    assert crashed["attempts"] == 2 and crashed["max_attempts"] == 2, crashed
    assert crashed["error"]["type"] == "WorkerLost", crashed["error"]
    assert "SIGSEGV" in crashed["error"]["message"], crashed["error"]
    assert [tag for tag, job_id, _ in runs(tmp_path) if job_id == segfault] == ["segfault"] * 2

    hogged = cli_json(jobq, "status", str(hog))
    assert hogged["status"] == "failed", hogged
    assert hogged["attempts"] == 2, hogged
    assert hogged["error"]["type"] == "MemoryError", hogged["error"]
    assert "MemoryError" in hogged["error"]["traceback"]
    assert [tag for tag, job_id, _ in runs(tmp_path) if job_id == hog] == ["hog"] * 2

    others = near_crash + near_hog
    records = {job_id: sample_app.store.get_job(job_id) for job_id in others}
    counts = run_counts(tmp_path, "touch")
    charged = {job_id: r.attempts for job_id, r in records.items() if r.attempts > 1}
    deaths = worker.output().count(" died (")
    print(
        f"\npoison: {elapsed:.1f} s, worker deaths {deaths} (SIGSEGV"
        f" {worker.output().count('(killed by SIGSEGV)')}), bystanders {len(others)},"
        f" charged an extra attempt {len(charged)} {charged},"
        f" ran twice {sum(1 for c in counts.values() if c > 1)}"
    )
    assert deaths == 2, "only the segfaults kill a process; MemoryError does not"
    assert {r.status for r in records.values()} == {"succeeded"}
    assert all(1 <= counts[job_id] <= records[job_id].attempts for job_id in others)
    # A death charges the jobs its process held: at most the other thread's one.
    extra = sum(attempts - 1 for attempts in charged.values())
    print(f"extra attempts charged to bystanders {extra}, bound deaths*(threads-1) {deaths}")
    assert extra <= deaths * (2 - 1), charged
    assert not any(job_id in charged for job_id in near_hog)
    assert worker.process.poll() is None
    assert worker.stop(timeout=15) == 0, worker.output()[-2000:]
