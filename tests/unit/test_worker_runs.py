"""Runs under way: a stop sends the jobs not started back to the queue, uncounted; a run that
goes on too long passes its waiting jobs on and hands over the outcomes it holds."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from jobq import JobQ
from jobq.models import ClaimedJob, Outcome
from jobq.worker.completer import Completer as RealCompleter
from jobq.worker.process import WorkerProcess
from jobq.worker.runs import STALL, Run
from jobq.worker.settings import WorkerSettings


class Completer:
    """Records what it is given; hands jobs back at once (the real one, in its thread)."""

    def __init__(self, release: Any) -> None:
        self.recorded: list[tuple[Outcome, ClaimedJob]] = []
        self.release = release

    def submit_many(self, finished: list[tuple[Outcome, ClaimedJob]]) -> None:
        self.recorded += finished

    def hand_back(self, jobs: list[ClaimedJob]) -> None:
        self.release(jobs)


def worker_holding(tmp_path: Path, count: int) -> tuple[JobQ, WorkerProcess, list[ClaimedJob]]:
    app = JobQ(tmp_path / "runs.db")

    @app.task(name="t")
    def quick(number: int) -> int:
        return number

    ids = [job.id for job in quick.submit_many([(n,) for n in range(count)])]
    worker = WorkerProcess(app.tasks, WorkerSettings(database=str(app.database)), "w")
    worker.store = app.store
    worker.completer = Completer(worker.fetcher.hand_back)  # type: ignore[assignment]
    app.store.register_worker(
        "w", kind="worker", pid=1, host="h", supervisor_pid=None, queues=None, threads=4
    )
    jobs = app.store.claim("w", None, count)
    assert [job.id for job in jobs] == ids
    for _ in jobs:
        worker.pipeline.slots.acquire()
    worker.pipeline.in_flight = count
    return app, worker, jobs


def statuses(app: JobQ, jobs: list[ClaimedJob]) -> list[tuple[str, int]]:
    return [(app.store.get_job(job.id).status, app.store.get_job(job.id).attempts) for job in jobs]


def test_an_executor_that_sees_the_stop_hands_back_the_rest_of_its_run(tmp_path: Path) -> None:
    app, worker, jobs = worker_holding(tmp_path, 3)
    run = Run(jobs)
    assert run.next() is jobs[0]  # the first job runs; then the stop comes
    run.finished(Outcome(jobs[0].id, "w", jobs[0].claim, "succeeded", "0"), jobs[0])
    worker.pipeline.stopping.set()
    assert worker.executors.execute_run(run) is True
    completer: Any = worker.completer
    assert [job.id for _, job in completer.recorded] == [jobs[0].id]
    assert statuses(app, jobs[1:]) == [("queued", 0), ("queued", 0)]
    assert worker.pipeline.in_flight == 0


def test_the_waiting_jobs_of_a_stalled_run_go_back_once_a_stop_has_begun(tmp_path: Path) -> None:
    app, worker, jobs = worker_holding(tmp_path, 3)
    run = Run(jobs)
    assert run.next() is jobs[0]  # still running, and long enough to count as stalled
    run.began = time.monotonic() - STALL * 2
    worker.pipeline.runs.add(run)
    worker.pipeline.stopping.set()
    worker.watchdog.runs()
    assert statuses(app, jobs) == [("running", 1), ("queued", 0), ("queued", 0)]
    assert worker.pipeline.inbox.empty()
    assert worker.pipeline.in_flight == 1


def test_without_a_stop_they_go_to_the_other_executors(tmp_path: Path) -> None:
    app, worker, jobs = worker_holding(tmp_path, 3)
    run = Run(jobs)
    assert run.next() is jobs[0]
    run.began = time.monotonic() - STALL * 2
    worker.pipeline.runs.add(run)
    worker.watchdog.runs()
    assert [worker.pipeline.inbox.get_nowait(), worker.pipeline.inbox.get_nowait()] == jobs[1:]
    assert statuses(app, jobs) == [("running", 1)] * 3
    assert worker.pipeline.in_flight == 3


def outcome(job: ClaimedJob) -> Outcome:
    return Outcome(job.id, "w", job.claim, "succeeded", "0", finished_at=time.time())


def test_outcomes_done_in_a_run_are_not_held_back_by_its_last_slow_job(tmp_path: Path) -> None:
    app, worker, jobs = worker_holding(tmp_path, 3)
    run = Run(jobs)
    for job in jobs[:2]:
        assert run.next() is job
        run.finished(outcome(job), job)
    assert run.next() is jobs[2]  # the last job, now slow: nothing waits behind it
    worker.pipeline.runs.add(run)
    worker.watchdog.runs()
    completer: Any = worker.completer
    assert completer.recorded == []  # a fresh run is not stalled
    run.began = time.monotonic() - STALL * 2
    worker.watchdog.runs()
    assert [job.id for _, job in completer.recorded] == [job.id for job in jobs[:2]]
    assert worker.pipeline.in_flight == 1


def test_a_run_that_has_gone_on_too_long_starts_no_more_jobs(tmp_path: Path) -> None:
    """Each job under STALL, the whole run over it: the rest go to other executors."""
    app, worker, jobs = worker_holding(tmp_path, 3)
    run = Run(jobs)
    assert run.next() is jobs[0]
    run.finished(outcome(jobs[0]), jobs[0])
    run.began = time.monotonic() - STALL * 2
    assert run.next() is None
    assert worker.executors.execute_run(run) is True
    assert [worker.pipeline.inbox.get_nowait(), worker.pipeline.inbox.get_nowait()] == jobs[1:]
    completer: Any = worker.completer
    assert [job.id for _, job in completer.recorded] == [jobs[0].id]


def with_real_completer(worker: WorkerProcess) -> RealCompleter:
    assert worker.store is not None
    completer = RealCompleter(
        worker.store,
        worker.tasks,
        on_recorded=worker.pipeline.slots.release,
        release=worker.fetcher.hand_back,
    )
    worker.completer = completer
    completer.start()
    return completer


def test_a_stop_hands_a_run_back_through_the_completer_thread(tmp_path: Path) -> None:
    app, worker, jobs = worker_holding(tmp_path, 3)
    completer = with_real_completer(worker)
    worker.pipeline.stopping.set()
    assert worker.executors.execute_run(Run(jobs)) is True
    assert completer.flush(timeout=10)
    completer.stop(timeout=10)
    assert statuses(app, jobs) == [("queued", 0)] * 3
    assert worker.pipeline.in_flight == 0
    assert worker.pipeline.slots._value == worker.settings.threads  # every slot back


def test_a_failed_hand_back_does_not_keep_the_stop_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, worker, jobs = worker_holding(tmp_path, 2)
    completer = with_real_completer(worker)

    def broken(*_: object) -> int:
        raise RuntimeError("a bug in the store")

    monkeypatch.setattr(app.store, "release_jobs", broken)
    worker.pipeline.stopping.set()
    worker.executors.pass_on(jobs)
    assert completer.flush(timeout=10)
    completer.stop(timeout=10)
    assert worker.pipeline.in_flight == 0  # the worker's release at its end requeues them
    assert worker.pipeline.slots._value == worker.settings.threads
