"""A stateful property test of the Store: random sequences of operations against a real store.

Hypothesis drives submits, worker registrations, claims, fenced completions (current and
stale), crashes, clean stops, reaps, cancels and retries against a fresh database per example,
while a plain Python model predicts every answer. After every step the whole store is compared
with the model, and the invariants below are checked:

* only legal status transitions happen (``LEGAL``, taken from the store's code and docs);
* ``attempts`` never exceeds ``max_attempts`` (retry gives a job fresh attempts: the counter
  goes back to 0, so a job may *run* more than ``max_attempts`` times in total, by design);
* no job vanishes: every submitted id still exists with a known status;
* a job is ``running`` iff a live (registered) worker holds it, in the model and the store;
* an outcome applies exactly when the model says its fence (job id + worker id + claim
  number, while running) matches.

Stale outcomes (another worker's id, another claim, a replay of any earlier claim) never
apply: the claim number only grows, even when a refund or a retry resets ``attempts``.

Written against the Store interface only. A new backend is one more branch in
:func:`open_backend` (and a name in ``conftest.BACKENDS``).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from jobq.errors import InvalidStateError, JobNotFoundError
from jobq.models import STATUSES, NewJob, Outcome
from jobq.store import Store, open_store
from tests.support import postgres

from .conftest import BACKENDS

Q, S, R = "queued", "scheduled", "running"
OK, FAILED, CANCELLED = "succeeded", "failed", "cancelled"

# Every status change the store may make (a step that leaves a status alone is always fine).
LEGAL = {
    (Q, R),
    (S, R),  # claim
    (S, Q),  # a live worker's claim finds it due (and takes other jobs first)
    (Q, CANCELLED),
    (S, CANCELLED),  # cancel_job
    (R, OK),
    (R, FAILED),
    (R, S),
    (R, Q),  # complete, release_worker, release_jobs, reap
    (R, CANCELLED),  # cancel_job while running, then its outcome or release
    (FAILED, Q),
    (CANCELLED, Q),  # retry_job
}  # nothing leaves succeeded

POOL = ("w1", "w2", "w3")  # worker ids; a reaped worker registers again under its own id
FUTURE = 3600.0  # a delay that never comes due during a test


def open_backend(backend: str, directory: Path, url: str | None) -> Store:
    """A fresh, migrated store of ``backend`` for one example (on PostgreSQL, the test's
    schema emptied: creating one per example would cost most of the test's time)."""
    if backend == "sqlite":
        return open_store(directory / "properties.db")
    if backend == "postgresql" and url is not None:
        postgres.empty_schema(url)
        return open_store(url)
    raise AssertionError(f"no factory for backend {backend!r}: add one here")


@dataclass
class ModelJob:
    id: int
    status: str
    max_attempts: int
    priority: int
    due: bool  # run_at is now or past (only meaningful while waiting)
    attempts: int = 0
    holder: str | None = None  # the worker holding it while running
    claim: int = 0  # the job's claim counter: never reset
    claims: list[tuple[str, int]] = field(default_factory=list)  # every (worker, claim)
    cancel_requested: bool = False  # cancel_job while running: it ends cancelled


class StoreMachine(RuleBasedStateMachine):
    def __init__(self, backend: str, url: str | None = None) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="jobq-props-"))
        self.store = open_backend(backend, self.directory, url)
        self.jobs: dict[int, ModelJob] = {}
        self.live: set[str] = set()
        self.seen: dict[int, str] = {}  # status of each job after the previous step

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- model helpers ---------------------------------------------------------------------

    def held(self, worker: str | None = None) -> list[ModelJob]:
        return [
            job
            for job in self.jobs.values()
            if job.status == R and (worker is None or job.holder == worker)
        ]

    def fence_matches(self, outcome: Outcome) -> bool:
        job = self.jobs.get(outcome.job_id)
        return (
            job is not None
            and job.status == R
            and job.holder == outcome.worker_id
            and job.claim == outcome.claim
        )

    def apply_outcome(self, outcome: Outcome) -> None:
        job = self.jobs[outcome.job_id]
        job.status = outcome.status
        if job.cancel_requested and outcome.status in (Q, S):
            job.status = CANCELLED  # asked to cancel: it does not go back to waiting
        if outcome.refund:
            job.attempts = max(job.attempts - 1, 0)
        if outcome.status in (Q, S):
            job.due = True  # retries are scheduled in the past; a refund keeps the old run_at
        job.holder = None

    def lose(self, worker: str, refund: bool) -> int:
        """release_worker / reap as the model sees it; returns the number of jobs handed back."""
        jobs = self.held(worker)
        for job in jobs:
            job.holder = None
            if job.cancel_requested:
                job.status = CANCELLED
            elif refund:
                job.status, job.attempts, job.due = Q, max(job.attempts - 1, 0), True
            elif job.attempts >= job.max_attempts:
                job.status = FAILED
            else:
                job.status, job.due = Q, True
        self.live.discard(worker)
        return len(jobs)

    @staticmethod
    def outcome(job_id: int, worker: str, claim: int, kind: str) -> Outcome:
        now = time.time()
        if kind == OK:
            return Outcome(job_id, worker, claim, OK, result="1", finished_at=now)
        if kind == FAILED:
            return Outcome(job_id, worker, claim, FAILED, error='{"type": "E"}', finished_at=now)
        if kind == S:  # a retry with backoff already elapsed
            return Outcome(
                job_id, worker, claim, S, error='{"type": "E"}', run_at=now - 1, finished_at=now
            )
        assert kind == Q  # handed back: the attempt does not count
        return Outcome(job_id, worker, claim, Q, refund=True, finished_at=now)

    # -- rules -------------------------------------------------------------------------------

    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        self.register("w1")
        self.register("w2")
        self.submit(data)

    @rule(data=st.data())
    def submit(self, data: st.DataObject) -> None:
        count = data.draw(st.integers(1, 3), label="jobs")
        now = time.time()
        new, waiting = [], []
        for _ in range(count):
            delay = data.draw(st.sampled_from(["now", "past", "future"]), label="when")
            run_at = {
                "now": None,
                "past": now - data.draw(st.floats(0.001, 60)),
                "future": now + FUTURE,
            }[delay]
            max_attempts = data.draw(st.integers(1, 3), label="max_attempts")
            priority = data.draw(st.integers(0, 2), label="priority")
            new.append(
                NewJob(
                    task="t.prop",
                    args="[]",
                    kwargs="{}",
                    priority=priority,
                    max_attempts=max_attempts,
                    run_at=run_at,
                )
            )
            waiting.append(delay != "future")
        ids = self.store.enqueue(new)
        assert len(ids) == count and len(set(ids)) == count
        assert not set(ids) & set(self.jobs), "an id was handed out twice"
        for job_id, job, due in zip(ids, new, waiting, strict=True):
            self.jobs[job_id] = ModelJob(
                job_id, Q if due else S, job.max_attempts, job.priority, due
            )

    @rule(worker=st.sampled_from(POOL))
    def register(self, worker: str) -> None:
        # A heartbeat tells whether the worker's row is still there (False once reaped).
        assert self.store.heartbeat(worker) is (worker in self.live)
        # Registering a live id again (a reaped worker does) keeps the jobs it holds.
        self.store.register_worker(
            worker, kind="worker", pid=1, host="props", supervisor_pid=None, queues=None, threads=2
        )
        self.live.add(worker)

    @rule(data=st.data(), limit=st.integers(0, 4))
    def claim(self, data: st.DataObject, limit: int) -> None:
        # Mostly a live worker; sometimes a dead or unknown one, which must claim nothing.
        live = sorted(self.live)
        if live and data.draw(st.integers(0, 4), label="live?"):
            worker = data.draw(st.sampled_from(live), label="worker")
        else:
            worker = data.draw(st.sampled_from(POOL + ("ghost",)), label="worker")
        runnable = [job for job in self.jobs.values() if job.status in (Q, S) and job.due]
        run_at = {record.id: record.run_at for record in self.store.list_jobs(limit=10**6)}
        runnable.sort(key=lambda job: (-job.priority, run_at[job.id], job.id))
        expected = runnable[:limit] if worker in self.live else []
        claimed = self.store.claim(worker, None, limit)
        assert sorted(job.id for job in claimed) == sorted(job.id for job in expected), (
            f"claim({worker}, {limit}) took {[j.id for j in claimed]}, "
            f"expected {[j.id for j in expected]}"
        )
        for job in claimed:
            model = self.jobs[job.id]
            model.status, model.holder = R, worker
            model.attempts += 1
            model.claim += 1
            model.claims.append((worker, model.claim))
            assert job.attempts == model.attempts and job.max_attempts == model.max_attempts
            assert job.claim == model.claim
        if worker in self.live and limit > 0:
            for model in self.jobs.values():
                if model.status == S and model.due:
                    model.status = Q

    @precondition(lambda self: self.held())
    @rule(data=st.data())
    def complete_held(self, data: st.DataObject) -> None:
        worker = data.draw(st.sampled_from(sorted({job.holder for job in self.held()})))
        mine = sorted(self.held(worker), key=lambda job: job.id)
        chosen = data.draw(
            st.lists(st.sampled_from(mine), min_size=1, max_size=3, unique_by=lambda job: job.id),
            label="jobs",
        )
        outcomes = []
        for job in chosen:
            kinds = [OK, FAILED, Q] + ([S] if job.attempts < job.max_attempts else [])
            kind = data.draw(st.sampled_from(kinds), label="outcome")
            outcomes.append(self.outcome(job.id, worker, job.claim, kind))
        if data.draw(st.booleans(), label="duplicate"):
            outcomes.append(outcomes[0])  # a second outcome for the same attempt: ignored
        self.check_complete(outcomes)

    @precondition(lambda self: any(job.claims for job in self.jobs.values()))
    @rule(data=st.data())
    def complete_stale(self, data: st.DataObject) -> None:
        claimed = sorted((job for job in self.jobs.values() if job.claims), key=lambda j: j.id)
        job = data.draw(st.sampled_from(claimed), label="job")
        # Someone else's worker id, an older or newer claim, or a replay of a past claim.
        candidates = {(other, job.claim) for other in POOL + ("ghost",) if other != job.holder}
        holder = job.holder or "w1"
        candidates |= {(holder, job.claim - 1), (holder, job.claim + 1)}
        candidates |= set(job.claims[:-1])
        worker, claim = data.draw(st.sampled_from(sorted(candidates)), label="fence")
        kind = data.draw(st.sampled_from([OK, FAILED, S, Q]), label="outcome")
        outcome = self.outcome(job.id, worker, claim, kind)
        assert not self.fence_matches(outcome), "a stale outcome must never match the fence"
        assert self.store.complete([outcome]) == [False]

    def check_complete(self, outcomes: list[Outcome]) -> None:
        expected = []
        for outcome in outcomes:  # in order: one transaction, applied one after another
            matches = self.fence_matches(outcome)
            expected.append(matches)
            if matches:
                self.apply_outcome(outcome)
        assert self.store.complete(outcomes) == expected

    @precondition(lambda self: self.live)
    @rule(data=st.data(), refund=st.booleans())
    def stop_worker(self, data: st.DataObject, refund: bool) -> None:
        """refund=False: the process was killed (crash); True: it stopped cleanly."""
        worker = data.draw(st.sampled_from(sorted(self.live)), label="worker")
        expected = self.lose(worker, refund=refund)
        assert self.store.release_worker(worker, reason="gone", refund=refund) == expected

    @precondition(lambda self: self.held())
    @rule(data=st.data())
    def release_prefetched(self, data: st.DataObject) -> None:
        worker = data.draw(st.sampled_from(sorted({job.holder for job in self.held()})))
        ids = data.draw(st.lists(st.sampled_from(sorted(self.jobs)), max_size=3, unique=True))
        # Each with its current claim number, or a stale one (which must change nothing).
        pairs = [
            (job_id, self.jobs[job_id].claim - data.draw(st.integers(0, 1), label="stale"))
            for job_id in ids
        ]
        handed_back = [
            self.jobs[job_id]
            for job_id, claim in pairs
            if self.jobs[job_id].status == R
            and self.jobs[job_id].holder == worker
            and self.jobs[job_id].claim == claim
        ]
        for job in handed_back:
            if job.cancel_requested:
                job.status, job.holder = CANCELLED, None
                continue
            job.status, job.holder, job.attempts, job.due = Q, None, max(job.attempts - 1, 0), True
        assert worker is not None
        assert self.store.release_jobs(worker, pairs) == len(handed_back)

    @precondition(lambda self: self.live)
    @rule(everyone=st.booleans(), come_back=st.booleans())
    def reap(self, everyone: bool, come_back: bool) -> None:
        if not everyone:  # every heartbeat is younger than the lease
            assert self.store.reap(lease=FUTURE) == []
            return
        time.sleep(0.002)  # every heartbeat is now older than a lease of 0
        reaped = self.store.reap(lease=0)
        expected = sorted(self.live)
        for worker in expected:
            self.lose(worker, refund=False)
        assert sorted(reaped) == expected
        if come_back:  # the workers were only slow: each registers again under its id
            for worker in expected:
                self.register(worker)

    @rule(data=st.data(), operation=st.sampled_from(["cancel", "retry"]))
    def cancel_or_retry(self, data: st.DataObject, operation: str) -> None:
        """cancel: a waiting job at once, a running one when its worker stops it; retry: only
        from failed/cancelled."""
        job_id = data.draw(st.sampled_from(sorted(self.jobs) + [10**9]), label="job")
        job = self.jobs.get(job_id)
        call = self.store.cancel_job if operation == "cancel" else self.store.retry_job
        if job is None:
            with pytest.raises(JobNotFoundError):
                call(job_id)
        elif operation == "cancel" and job.status in (Q, S):
            assert call(job_id) == "cancelled"
            job.status = CANCELLED
        elif operation == "cancel" and job.status == R:
            assert call(job_id) == "cancelling"
            job.cancel_requested = True
            assert (job_id, job.claim) in self.store.cancel_requests(job.holder or "")
        elif operation == "retry" and job.status in (FAILED, CANCELLED):
            call(job_id)  # fresh attempts: the counter starts again from 0
            job.status, job.attempts, job.holder, job.due = Q, 0, None, True
            job.cancel_requested = False
        else:
            with pytest.raises(InvalidStateError):
                call(job_id)

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def store_agrees_with_the_model(self) -> None:
        records = {record.id: record for record in self.store.list_jobs(limit=10**6)}
        assert set(records) == set(self.jobs), "a job vanished or appeared"
        live_in_store = {record.id for record in self.store.workers()}
        assert live_in_store == self.live
        for job_id, model in self.jobs.items():
            record = records[job_id]
            assert record.status in STATUSES
            previous = self.seen.get(job_id)
            if previous is not None and previous != record.status:
                assert (previous, record.status) in LEGAL, (
                    f"job {job_id}: illegal transition {previous} -> {record.status}"
                )
            assert (record.status, record.attempts) == (model.status, model.attempts), (
                f"job {job_id}: store {record.status}/{record.attempts}, "
                f"model {model.status}/{model.attempts}"
            )
            assert record.max_attempts == model.max_attempts
            assert 0 <= record.attempts <= record.max_attempts
            # running iff held by a live worker
            assert (model.status == R) == (model.holder is not None and model.holder in self.live)
            if record.status == R:
                assert record.worker == model.holder and record.worker in live_in_store
            if record.status in (Q, S):
                assert record.worker is None
        self.seen = {job_id: record.status for job_id, record in records.items()}
        counts = self.store.counts()["counts"]
        assert sum(counts.values()) == len(self.jobs)
        runnable = sum(1 for job in self.jobs.values() if job.status in (Q, S) and job.due)
        assert self.store.runnable_count(None) == runnable


@pytest.mark.parametrize("backend", BACKENDS)
def test_store_state_machine(backend: str) -> None:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres.fresh_database()) if backend == "postgresql" else None
        run_state_machine_as_test(
            lambda: StoreMachine(backend, url),
            settings=settings(
                max_examples=100,
                stateful_step_count=40,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
