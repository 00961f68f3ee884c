"""Two "hosts" share one PostgreSQL database: each a supervisor with its own processes and
connections, told apart by JOBQ_HOSTNAME. They drain one queue together; one host dies
whole (supervisor and children SIGKILLed at once, as when a machine is cut off); the other
recovers its jobs after the lease and finishes every job. Nothing is lost; only jobs in
flight on the dead host run twice.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobq import JobQ
from tests.support import postgres, sample_tasks
from tests.support.helpers import (
    FINISHED,
    WorkerHandle,
    cli_json,
    log_lines,
    pid_alive,
    wait_for,
    wait_for_status,
)

pytestmark = [pytest.mark.slow, *postgres.MARKS]

PROCS, THREADS, LEASE = 2, 4, 3.0


@pytest.fixture
def database() -> Iterator[str]:
    with postgres.fresh_database() as url:
        yield url


def test_two_hosts_drain_one_queue_and_the_survivor_finishes_a_dead_hosts_jobs(
    sample_app: JobQ,
    start_worker: Callable[..., WorkerHandle],
    jobq: Callable[..., object],
    tmp_path: Path,
) -> None:
    ids = [job.id for job in sample_tasks.sleep.submit_many([[0.02, "two"]] * 1500)]
    options = ("--procs", str(PROCS), "--threads", str(THREADS), "--lease", str(LEASE))
    host_a = start_worker(*options, env={"JOBQ_HOSTNAME": "host-a"})
    host_b = start_worker(*options, env={"JOBQ_HOSTNAME": "host-b"})
    wait_for(lambda: len(host_a.children()) == PROCS and len(host_b.children()) == PROCS)
    a_children = host_a.children()

    def ran_on_a() -> int:
        return sum(
            1 for tag, _, pid in log_lines(tmp_path) if tag == "end-two" and pid in a_children
        )

    wait_for(lambda: ran_on_a() >= 100, timeout=30)
    # Host-a vanishes: nothing of it may hand its jobs back.
    for pid in (host_a.pid, *a_children):
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    held = [
        r.id
        for r in sample_app.store.list_jobs(status="running", limit=100)
        if r.worker and r.worker.startswith("host-a/")
    ]
    assert host_a.wait(timeout=5) == -signal.SIGKILL
    wait_for(lambda: not any(pid_alive(pid) for pid in a_children), timeout=5)

    wait_for_status(sample_app, ids, *FINISHED, timeout=120, interval=0.1)
    statuses = Counter(sample_app.store.job_statuses(ids).values())
    starts = Counter(job_id for tag, job_id, _ in log_lines(tmp_path) if tag == "start-two")
    ends = Counter(job_id for tag, job_id, _ in log_lines(tmp_path) if tag == "end-two")
    twice = sorted(job_id for job_id, count in starts.items() if count > 1)
    by_a = ran_on_a()
    print(
        f"\n{len(ids)} jobs: host-a finished {by_a} before it died, held {len(held)} at the"
        f" kill; all done {time.monotonic() - killed:.1f} s after it (lease {LEASE} s);"
        f" ran twice: {len(twice)}"
    )
    assert statuses == {"succeeded": len(ids)}, statuses
    assert set(ends) == set(ids), "a job never ran to its end"
    # Only jobs host-a held when it died ran again, at most one per thread of host-a.
    assert set(twice) <= set(held), (twice, held)
    assert len(twice) <= PROCS * THREADS
    assert by_a >= 100 and sum(ends.values()) - by_a > 0, "both hosts must have drained"
    output = host_b.output()
    assert "recovered the jobs of dead workers" in output
    hosts = {worker["host"] for worker in cli_json(jobq, "status")["workers"]}
    assert hosts == {"host-b"}, hosts
    assert host_b.stop(timeout=15) == 0, output[-2000:]
