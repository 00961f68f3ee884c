"""Reliability: leases and fencing, with real processes and signals.

A worker that stops heartbeating loses its jobs after the lease, to a worker on any host;
when it comes back (a SIGSTOPped "zombie"), its late outcome changes nothing. Run with ``-s``
to see the figures each test checks.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobq import JobQ
from jobq.records import JobRecord
from tests.support.helpers import (
    TASKS,
    WorkerHandle,
    cli_status,
    pid_alive,
    pids_of,
    record,
    wait_for,
    wait_for_status,
)
from tests.support.postgres import BOTH_BACKENDS

pytestmark = [pytest.mark.slow, BOTH_BACKENDS]

SLEEP = f"{TASKS}.sleep"


def held_by_other_than(app: JobQ, job_id: int, worker_id: str) -> JobRecord | None:
    info = record(app, job_id)
    return info if info.status == "running" and info.worker not in (None, worker_id) else None


# -- 4. a zombie worker is fenced off -----------------------------------------------------


@pytest.mark.parametrize("resume", ["after-the-second-run", "during-the-second-run"])
def test_a_stopped_worker_that_comes_back_late_changes_nothing(
    resume: str,
    sample_app: JobQ,
    start_worker: Callable[..., WorkerHandle],
    jobq: Callable[..., Any],
    tmp_path: Path,
) -> None:
    job_id = sample_app.submit(SLEEP, args=[3, "zombie"]).id
    first = start_worker("--procs", "0", "--threads", "1", "--lease", "1", "--grace", "5")
    wait_for(lambda: pids_of(tmp_path, "start-zombie", job_id) == [first.pid], timeout=15)
    first_id = record(sample_app, job_id).worker
    assert first_id and record(sample_app, job_id).attempts == 1

    first.signal(signal.SIGSTOP)  # alive, holding the job, silent: a zombie
    stopped = time.monotonic()
    second = start_worker("--procs", "0", "--threads", "1", "--lease", "1", "--grace", "5")
    taken = wait_for(lambda: held_by_other_than(sample_app, job_id, first_id), timeout=15)
    assert isinstance(taken, JobRecord)
    second_id = taken.worker
    assert second_id and taken.attempts == 2
    recovered = time.monotonic() - stopped
    assert first.process.poll() is None and pid_alive(first.pid)
    wait_for(
        lambda: pids_of(tmp_path, "start-zombie", job_id) == [first.pid, second.pid], timeout=5
    )

    late = "was taken from worker"
    if resume == "after-the-second-run":
        wait_for_status(sample_app, [job_id], "succeeded", timeout=10)
        done = record(sample_app, job_id)
        first.signal(signal.SIGCONT)
        wait_for(lambda: "changed nothing" in first.output(), timeout=10)
    else:
        first.signal(signal.SIGCONT)
        wait_for(lambda: "changed nothing" in first.output(), timeout=10)
        # The zombie said "succeeded" while the job runs elsewhere: still running there.
        now = record(sample_app, job_id)
        assert now.status == "running" and now.worker == second_id and now.attempts == 2, now
        wait_for_status(sample_app, [job_id], "succeeded", timeout=10)
        done = record(sample_app, job_id)
    wait_for(lambda: len(pids_of(tmp_path, "end-zombie", job_id)) == 2, timeout=5)

    info = cli_status(jobq, job_id)
    print(
        f"\nzombie ({resume}): taken over {recovered:.2f} s after SIGSTOP (lease 1 s);"
        f" job worker {info['worker']}, attempts {info['attempts']}; zombie's worker {first_id}"
    )
    assert info["status"] == "succeeded", info
    assert info["worker"] == second_id != first_id
    assert info["attempts"] == 2
    assert info["result"] == 3
    assert info["finished_at"] == done.finished_at  # the second run's outcome, untouched
    # Both runs finished: the zombie's first when it resumed mid-run, else second.
    ends = pids_of(tmp_path, "end-zombie", job_id)
    assert ends == (
        [first.pid, second.pid] if resume.startswith("during") else [second.pid, first.pid]
    )
    warning = (
        f"job {job_id} was taken from worker {first_id}; its late succeeded outcome changed nothing"
    )
    assert warning in first.output(), first.output()[-2000:]
    assert late not in second.output()
    for worker in (first, second):
        assert worker.stop(timeout=10) == 0, worker.output()[-2000:]
    after = record(sample_app, job_id)
    assert (after.status, after.worker, after.attempts, after.finished_at) == (
        "succeeded",
        second_id,
        2,
        done.finished_at,
    )


# -- 5. a dead host's jobs come back after the lease, not before --------------------------


def test_a_dead_hosts_jobs_are_recovered_by_another_host_after_the_lease(
    sample_app: JobQ,
    start_worker: Callable[..., WorkerHandle],
    jobq: Callable[..., Any],
    tmp_path: Path,
) -> None:
    lease = 2.0
    job_id = sample_app.submit(SLEEP, args=[1.5, "lease"]).id
    host_a = start_worker(
        "--procs", "1", "--threads", "1", "--lease", str(lease), env={"JOBQ_HOSTNAME": "host-a"}
    )
    wait_for(lambda: pids_of(tmp_path, "start-lease", job_id), timeout=15)
    held = record(sample_app, job_id)
    assert held.status == "running" and held.worker and held.worker.startswith("host-a/")
    children = host_a.children()
    assert len(children) == 1

    # The whole host dies: supervisor first (so it cannot give the job back), then its child.
    host_a.signal(signal.SIGKILL)
    os.kill(children[0], signal.SIGKILL)
    killed = time.time()
    assert host_a.wait(timeout=5) == -signal.SIGKILL
    wait_for(lambda: not pid_alive(children[0]), timeout=5)
    last_beat = next(w.heartbeat_at for w in sample_app.store.workers() if w.id == held.worker)
    expires = last_beat + lease
    assert record(sample_app, job_id).status == "running"

    host_b = start_worker(
        "--procs", "1", "--threads", "1", "--lease", str(lease), env={"JOBQ_HOSTNAME": "host-b"}
    )
    wait_for(lambda: any(w.host == "host-b" for w in sample_app.store.workers()), timeout=15)
    up = time.time()
    # Host-b cannot know host-a's processes are dead: it must wait for the lease. Watch the
    # job from host-b's start (whose first act is a reap) to just before the lease expires.
    assert up < expires - 0.3, f"host-b took {up - killed:.2f} s to start: nothing to check"
    samples = []
    while time.time() < expires - 0.15:
        samples.append(record(sample_app, job_id))
        time.sleep(0.02)
    print(
        f"\nhost-b up {up - killed:.2f} s after the kill; job watched until"
        f" {time.time() - killed:.2f} s, the lease expires at {expires - killed:.2f} s"
    )
    assert samples and all(
        (s.status, s.worker, s.attempts) == ("running", held.worker, 1) for s in samples
    ), [(s.status, s.worker) for s in samples]

    host_a_id = str(held.worker)
    taken = wait_for(
        lambda: held_by_other_than(sample_app, job_id, host_a_id), timeout=10, interval=0.01
    )
    assert isinstance(taken, JobRecord)
    recovered = time.time()
    assert taken.worker and taken.worker.startswith("host-b/")
    assert taken.started_at is not None and taken.started_at >= expires
    wait_for_status(sample_app, [job_id], "succeeded", timeout=10)

    info = cli_status(jobq, job_id)
    print(
        f"recovered by {taken.worker} {recovered - killed:.2f} s after the kill,"
        f" {taken.started_at - expires:.2f} s after the lease expired (lease {lease} s)"
    )
    assert info["status"] == "succeeded" and info["result"] == 1.5, info
    assert info["attempts"] == 2
    assert info["worker"] == taken.worker
    assert pids_of(tmp_path, "start-lease", job_id)[0] == children[0]
    assert pids_of(tmp_path, "end-lease", job_id) == [pids_of(tmp_path, "start-lease", job_id)[1]]
    # Host-a is gone from the workers a user sees; host-b is there.
    hosts = {worker["host"] for worker in cli_status(jobq)["workers"]}
    assert hosts == {"host-b"}, hosts
    assert "recovered the jobs of dead workers" in host_b.output()
    assert host_b.stop(timeout=10) == 0, host_b.output()[-2000:]
