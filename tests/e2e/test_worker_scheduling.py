"""Which job runs next: a busy worker prefetches nothing, so urgent work is never stuck
behind slow jobs it grabbed early."""

from __future__ import annotations

from typing import Any

import pytest

from jobq import JobQ
from tests.support import sample_tasks
from tests.support.helpers import TASKS, all_have, record, wait_for

pytestmark = pytest.mark.slow


def test_a_busy_worker_starts_an_urgent_job_at_its_next_free_slot(
    sample_app: JobQ, start_worker: Any
) -> None:
    slow = [
        sample_app.submit(f"{TASKS}.sleep", args=[0.3, f"slow-{number}"]).id for number in range(8)
    ]
    worker = start_worker("--procs", "1", "--threads", "2")
    wait_for(lambda: sum(record(sample_app, job).status == "running" for job in slow) == 2)
    urgent = sample_app.submit(f"{TASKS}.echo", args=["urgent"], priority=5).id
    wait_for(lambda: all_have(sample_app, [urgent, *slow], "succeeded"), timeout=20)
    started = {job: record(sample_app, job).started_at for job in slow}
    urgent_started = record(sample_app, urgent).started_at
    first_two = sorted(started, key=started.__getitem__)[:2]
    later = [job for job in slow if job not in first_two]
    # The urgent job took the first slot that came free: before every slow job that was
    # still waiting when it arrived (a worker that prefetched would have run those first);
    # one claim can take it together with a slow job, with the same start time.
    assert urgent_started is not None
    assert all(urgent_started <= started[job] for job in later), (urgent_started, started)
    worker.stop(timeout=10)


def test_jobs_run_by_priority_then_submission_order(sample_app: JobQ, start_worker: Any) -> None:
    low = [sample_app.submit(f"{TASKS}.echo", args=[number]).id for number in range(3)]
    high = sample_app.submit(f"{TASKS}.echo", args=["high"], priority=9).id
    worker = start_worker("--procs", "1", "--threads", "1", "--burst")
    assert worker.wait(timeout=20) == 0
    order = sorted([*low, high], key=lambda job: record(sample_app, job).started_at or 0)
    assert order == [high, *low]


def test_quick_jobs_are_not_held_up_behind_one_of_them_that_turns_slow(
    sample_app: JobQ, start_worker: Any
) -> None:
    """Jobs of a task that has been quick share one executor (a run); when one of them turns
    slow, the jobs waiting behind it go to the other executors within milliseconds."""
    worker = start_worker("--procs", "1", "--threads", "4")
    warm = [job.id for job in sample_tasks.pause.submit_many([(0,)] * 20)]
    wait_for(lambda: all_have(sample_app, warm, "succeeded"), timeout=20)
    # One transaction, so that one claim takes the slow job and three quick ones together.
    slow, *quick = [job.id for job in sample_tasks.pause.submit_many([(4,)] + [(0,)] * 10)]
    wait_for(lambda: all_have(sample_app, quick, "succeeded"), timeout=2.5)
    assert record(sample_app, slow).status == "running"
    # Whether the pool grouped them depends on how quick the warm-up jobs ran on a loaded
    # machine (a job preempted for milliseconds counts as slow for a while), so the log line
    # is not asserted; tests/unit/test_worker_runs.py covers the hand-on deterministically.
    worker.stop(timeout=10)
