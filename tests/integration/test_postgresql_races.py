"""Concurrent transactions on PostgreSQL (READ COMMITTED) around ``--after``.

Two races that single-threaded tests cannot see, each run many times with two threads
released together by a barrier:

- fan-in: a job waits for A and B, which finish in two concurrent transactions;
- submit-after: a job is submitted to wait for X while X's outcome is being recorded.

Either way the waiting job must end queued (then claimable), never deferred forever.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jobq.models import NewJob, Outcome
from jobq.store import open_store
from tests.support import postgres

pytestmark = list(postgres.MARKS)

ROUNDS = 100


@pytest.fixture
def store() -> Iterator[Any]:
    with postgres.fresh_database() as url:
        opened = open_store(url)
        for worker in ("w1", "w2"):
            opened.register_worker(
                worker, kind="worker", pid=1, host="h", supervisor_pid=None, queues=None, threads=1
            )
        yield opened
        opened.close()


def together(*calls: Callable[[int], None]) -> None:
    """Run each call for rounds 0..ROUNDS-1, all of them entering each round at once."""
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def loop(call: Callable[[int], None]) -> None:
        try:
            for number in range(ROUNDS):
                barrier.wait(timeout=30)
                call(number)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=loop, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[0]


def succeed(store: Any, worker: str, job: Any) -> None:
    assert store.complete([Outcome(job.id, worker, job.claim, "succeeded", "1")]) == [True]


def test_a_job_waiting_for_two_jobs_that_finish_at_once_is_released(store: Any) -> None:
    rounds = []
    for _ in range(ROUNDS):
        first, second = store.enqueue(
            [NewJob("t", "[]", "{}", queue="a"), NewJob("t", "[]", "{}", queue="b")]
        )
        [waiting] = store.enqueue([NewJob("t", "[]", "{}", queue="c", after=(first, second))])
        rounds.append((first, second, waiting))
    held_a = {job.id: job for job in store.claim("w1", ["a"], ROUNDS)}
    held_b = {job.id: job for job in store.claim("w2", ["b"], ROUNDS)}
    together(
        lambda number: succeed(store, "w1", held_a[rounds[number][0]]),
        lambda number: succeed(store, "w2", held_b[rounds[number][1]]),
    )
    statuses = Counter(store.job_statuses([waiting for _, _, waiting in rounds]).values())
    assert statuses == {"queued": ROUNDS}, statuses
    assert store.unfinished_job_ids() == sorted(waiting for _, _, waiting in rounds)


def test_a_job_submitted_after_a_job_that_is_finishing_is_released(store: Any) -> None:
    targets = store.enqueue([NewJob("t", "[]", "{}", queue="x") for _ in range(ROUNDS)])
    held = {job.id: job for job in store.claim("w1", ["x"], ROUNDS)}
    submitted: list[int] = []
    together(
        lambda number: succeed(store, "w1", held[targets[number]]),
        lambda number: submitted.extend(
            store.enqueue([NewJob("t", "[]", "{}", queue="k", after=(targets[number],))])
        ),
    )
    statuses = Counter(store.job_statuses(submitted).values())
    assert statuses == {"queued": ROUNDS}, statuses


def test_cancelling_a_waiting_job_while_its_dependency_finishes_never_fails(store: Any) -> None:
    """Both take the waiting job's row and its dependency rows: in the same order, or the
    two transactions deadlock and the cancel fails."""
    targets = store.enqueue([NewJob("t", "[]", "{}", queue="x") for _ in range(ROUNDS)])
    waiting = [
        store.enqueue([NewJob("t", "[]", "{}", queue="w", after=(target,))])[0]
        for target in targets
    ]
    held = {job.id: job for job in store.claim("w1", ["x"], ROUNDS)}
    together(
        lambda number: succeed(store, "w1", held[targets[number]]),
        lambda number: store.cancel_job(waiting[number]),
    )
    statuses = Counter(store.job_statuses(waiting).values())
    assert statuses == {"cancelled": ROUNDS}, statuses


RELEASES: dict[str, Callable[[Any, Any], int]] = {
    "a dead worker's jobs": lambda store, job: store.release_worker(
        "w1", reason="worker process 1 on h is gone", refund=False
    ),
    "a stopped worker's jobs": lambda store, job: store.release_worker(
        "w1", reason="worker stopped", refund=True
    ),
    "jobs not started": lambda store, job: store.release_jobs("w1", [(job.id, job.claim)]),
    "the jobs of a reaped worker": lambda store, job: int("w1" in store.reap(0.0)),
}


@pytest.mark.parametrize("release", list(RELEASES))
def test_a_cancel_committing_while_a_workers_jobs_are_released_ends_the_job_cancelled(
    store: Any, release: str
) -> None:
    """``jobq cancel`` of a running job holds the job's row until it commits; a release that
    meets that lock must decide on the row as the cancel leaves it, never queue the job."""
    import psycopg

    [job_id] = store.enqueue([NewJob("t", "[]", "{}", queue="x")])
    [job] = store.claim("w1", ["x"], 1)
    if release == "the jobs of a reaped worker":
        time.sleep(0.05)  # its heartbeat is now older than a lease of 0 s
    outcome: list[Any] = []
    with psycopg.connect(postgres.SERVER) as cancelling:
        cancelling.execute(f'SET search_path TO "{store.schema}"')
        # What cancel_job does to a running job, with its commit held back.
        cancelling.execute(
            "UPDATE jobs SET cancel_requested = date_part('epoch', now()) WHERE id = %s",
            (job_id,),
        )
        releasing = threading.Thread(target=lambda: outcome.append(RELEASES[release](store, job)))
        releasing.start()
        time.sleep(1.0)  # the release now waits for the job's row lock
        assert releasing.is_alive(), "the release did not wait for the cancel's lock"
        cancelling.commit()
    releasing.join(timeout=30)
    assert outcome == [1]
    cancelled = store.get_job(job_id)
    assert cancelled.status == "cancelled", "a cancelled job went back to the queue"
    store.register_worker(  # (again, if the reap took it too)
        "w2", kind="worker", pid=1, host="h", supervisor_pid=None, queues=None, threads=1
    )
    assert store.claim("w2", ["x"], 1) == []
