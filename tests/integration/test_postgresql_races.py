"""Concurrent transactions on PostgreSQL (READ COMMITTED) around ``--after``.

Two races that single-threaded tests cannot see, each run many times with two threads
released together by a barrier:

- fan-in: a job waits for A and B, which finish in two concurrent transactions;
- submit-after: a job is submitted to wait for X while X's outcome is being recorded.

Either way the waiting job must end queued (then claimable), never deferred forever.
"""

from __future__ import annotations

import threading
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
