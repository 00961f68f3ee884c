"""A commit whose answer is lost with the connection: the store makes up for it.

The transaction committed, but the worker only saw an error. A claim then holds jobs that no
thread knows of; an outcome sent again finds its job already finished. Simulated exactly:
the transaction commits, then the call raises ConnectionLostError.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from jobq.errors import ConnectionLostError
from jobq.models import NewJob, Outcome
from jobq.store import open_store
from tests.support import postgres

pytestmark = list(postgres.MARKS)


@pytest.fixture
def store() -> Iterator[Any]:
    with postgres.fresh_database() as url:
        opened = open_store(url)
        opened.register_worker(
            "w1", kind="worker", pid=1, host="h", supervisor_pid=None, queues=None, threads=4
        )
        yield opened
        opened.close()


@contextmanager
def answer_lost(store: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The next transaction commits, then its call fails as if the connection dropped."""
    original = store._write

    @contextmanager
    def committed_then_cut() -> Iterator[Any]:
        with original() as connection:
            yield connection
        monkeypatch.setattr(store, "_write", original)
        raise ConnectionLostError("the connection dropped after the commit")

    monkeypatch.setattr(store, "_write", committed_then_cut)
    with pytest.raises(ConnectionLostError):
        yield


def test_jobs_taken_by_a_claim_whose_answer_was_lost_are_claimed_again(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = store.enqueue([NewJob("t", "[]", "{}") for _ in range(3)])
    with answer_lost(store, monkeypatch):
        store.claim("w1", None, 2)
    assert sorted(store.job_statuses(ids).values()) == ["queued", "running", "running"]
    # The next claim hands the two unknown jobs back first, then takes them as its own.
    claimed = store.claim("w1", None, 5)
    assert sorted(job.id for job in claimed) == ids
    assert {job.attempts for job in claimed} == {1}  # the lost claim's attempt is not counted
    assert set(store.job_statuses(ids).values()) == {"running"}


def test_an_outcome_whose_answer_was_lost_counts_as_recorded_when_sent_again(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = store.enqueue([NewJob("t", "[]", "{}") for _ in range(2)])
    jobs = store.claim("w1", None, 2)
    outcomes = [
        Outcome(job.id, "w1", job.claim, "succeeded", "1", finished_at=time.time()) for job in jobs
    ]
    with answer_lost(store, monkeypatch):
        store.complete(outcomes)
    assert set(store.job_statuses(ids).values()) == {"succeeded"}
    # Sent again: already there, so recorded (its callback runs), not "taken away".
    assert store.complete(outcomes) == [True, True]
    # An outcome that really lost its job still says so.
    stale = Outcome(ids[0], "w1", jobs[0].claim + 1, "failed", error="{}", finished_at=0.0)
    assert store.complete([stale]) == [False]


def test_a_lost_complete_and_claim_is_made_up_for_on_both_counts(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, *rest = store.enqueue([NewJob("t", "[]", "{}") for _ in range(3)])
    [job] = store.claim("w1", None, 1)
    outcome = Outcome(job.id, "w1", job.claim, "succeeded", "1", finished_at=time.time())
    with answer_lost(store, monkeypatch):
        store.complete_and_claim([outcome], "w1", None, 2)
    applied, claimed = store.complete_and_claim([outcome], "w1", None, 2)
    assert applied == [True]
    assert sorted(job.id for job in claimed) == rest
    assert store.get_job(first).status == "succeeded"


def test_a_lost_claims_job_that_someone_cancelled_ends_cancelled(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    [job_id] = store.enqueue([NewJob("t", "[]", "{}")])
    with answer_lost(store, monkeypatch):
        store.claim("w1", None, 1)
    assert store.cancel_job(job_id) == "cancelling"
    assert store.claim("w1", None, 1) == []  # handed back as cancelled, not claimed again
    record = store.get_job(job_id)
    assert record.status == "cancelled" and record.error["type"] == "Cancelled"
