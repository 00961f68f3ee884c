"""Processes a task starts, in real worker processes: a multiprocessing.Pool, as the tutorial
writes one, and a process a task starts and never waits for."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from jobq import JobQ
from tests.support import sample_tasks
from tests.support.helpers import WorkerHandle, pid_alive, record, wait_for, wait_for_status

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("procs", ["2", "0"])
def test_tasks_running_a_multiprocessing_pool_use_a_fork_server_and_all_finish(
    procs: str, sample_app: JobQ, start_worker: Callable[..., WorkerHandle]
) -> None:
    """A Pool forked from a threaded process can inherit a lock held by another thread and
    hang (1 job in 40 did); from a fork server it cannot."""
    ids = [sample_tasks.pooled.submit(50).id for _ in range(40)]
    worker = start_worker("--procs", procs, "--threads", "8")
    wait_for_status(sample_app, ids, "succeeded", timeout=90)
    results = {tuple(record(sample_app, job_id).result) for job_id in ids}
    print(f"\n--procs {procs}: 40 pool jobs succeeded; results {results}")
    assert results == {("forkserver", sum(n * n for n in range(50)))}
    assert worker.stop(timeout=20) == 0


def test_a_process_a_task_leaves_running_ends_with_its_worker_process_and_is_named(
    sample_app: JobQ, start_worker: Callable[..., WorkerHandle]
) -> None:
    job_id = sample_tasks.leaves_a_process.submit(120).id
    worker = start_worker("--procs", "1", "--threads", "2")
    wait_for_status(sample_app, [job_id], "succeeded", timeout=30)
    left = record(sample_app, job_id).result
    assert isinstance(left, int) and pid_alive(left)
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    gone = wait_for(lambda: not pid_alive(left), timeout=10)
    output = worker.output()
    print(f"\nleft process {left} gone after the stop: {gone}")
    assert f"tasks left 1 process running (pids {left})" in output, output[-2000:]
