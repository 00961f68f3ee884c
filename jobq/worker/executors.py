"""The consumers: executor threads that take jobs (or runs of quick ones) from the pipeline,
run them, and hand their outcomes to the completer."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping

from ..context import CancelFlag
from ..faults import fault
from ..models import ClaimedJob, Outcome
from ..tasks import Task
from .execute import describe_error, error_json, execute, failure
from .pipeline import Pipeline
from .runs import Run

log = logging.getLogger("jobq.worker")


class Executors:
    """The executor threads of one worker process, one per slot."""

    def __init__(self, pipeline: Pipeline, tasks: Mapping[str, Task], worker_id: str) -> None:
        self.pipeline = pipeline
        self.tasks = tasks
        self.worker_id = worker_id
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        thread = threading.Thread(
            target=self._loop, name=f"jobq-executor-{len(self.threads)}", daemon=True
        )
        self.threads.append(thread)
        thread.start()

    def _loop(self) -> None:
        while True:
            item = self.pipeline.inbox.get()
            if item is None:
                return
            if isinstance(item, Run):
                if not self.execute_run(item):
                    return
                continue
            if self.pipeline.stopping.is_set():  # claimed before the stop, not started: not to be
                self.pass_on([item])
                continue
            outcome = self.execute(item)
            if outcome is None:
                return
            self.record([(outcome, item)])

    def execute(self, job: ClaimedJob) -> Outcome | None:
        """Run one job in this thread; None if its timeout came first (then the watchdog has
        recorded it and another thread has taken this one's place: this one must end)."""
        deadline = None
        task = self.tasks.get(job.task)
        if job.timeout and not (task is not None and task.stops_itself):
            deadline = time.monotonic() + job.timeout
        key = (job.id, job.claim)
        cancel = CancelFlag()
        with self.pipeline.lock:
            self.pipeline.active[key] = (job, deadline, cancel)
        fault("before_task")
        if log.isEnabledFor(logging.DEBUG):  # a drain of quick jobs pays one check a job
            log.debug("job %s (%s) started, attempt %d/%d", *_about(job))
        started = time.perf_counter()
        try:
            outcome = execute(self.tasks, job, self.worker_id, cancel)
        except BaseException as error:  # noqa: BLE001 - a bug in jobq, not in the task
            # Never let an executor die holding a slot and a running job.
            log.exception("executing job %s failed inside jobq", job.id)
            message = f"jobq could not run the job: {describe_error(error)}"
            outcome = failure(
                job, self.worker_id, error_json("WorkerError", message), retry_at=None
            )
        seconds = time.perf_counter() - started
        self.pipeline.pace.record(job.task, seconds)
        fault("after_task")
        with self.pipeline.lock:
            self.pipeline.active.pop(key, None)
            abandoned = key in self.pipeline.abandoned
            self.pipeline.abandoned.discard(key)
        if abandoned:
            # Timed out and already recorded; a fresh thread took this one's place.
            log.warning("job %s finished after its timeout; outcome discarded", job.id)
            return None
        _say(job, outcome, seconds)
        return outcome

    def execute_run(self, run: Run) -> bool:
        """Run the jobs of ``run`` in turn and hand their outcomes over together. Once the
        run has gone on for STALL seconds, or a stop has begun, the jobs not started go on
        to other executors, or back to the queue. False if this thread must end (abandoned).
        """
        with self.pipeline.lock:
            self.pipeline.runs.add(run)
        alive = True
        try:
            while not self.pipeline.stopping.is_set():
                job = run.next()
                if job is None:
                    break
                outcome = self.execute(job)
                if outcome is None:
                    alive = False
                    break
                run.finished(outcome, job)
        finally:
            with self.pipeline.lock:
                self.pipeline.runs.discard(run)
            self.record(run.take_done())
            self.pass_on(run.take_pending())
        return alive

    def record(self, finished: list[tuple[Outcome, ClaimedJob]]) -> None:
        """Hand outcomes to the completer; only then are their jobs out of flight (a stop
        that sees in_flight == 0 must find every outcome already in the completer's inbox)."""
        if not finished:
            return
        assert self.pipeline.completer is not None
        self.pipeline.completer.submit_many(finished)
        with self.pipeline.lock:
            self.pipeline.in_flight -= len(finished)

    def record_runs(self) -> None:
        """Hand over the outcomes the runs under way hold (before a flush or a stop)."""
        with self.pipeline.lock:
            runs = list(self.pipeline.runs)
        for run in runs:
            self.record(run.take_done())

    def pass_on(self, jobs: list[ClaimedJob]) -> None:
        """Jobs claimed but not started: to the other executors; once a stop has begun, back
        to the queue, through the completer (whose thread writes anyway: an executor or the
        main thread would need a database session of its own)."""
        if not jobs:
            return
        with self.pipeline.lock:
            stopping = self.pipeline.stopping.is_set()
            if not stopping:
                for job in jobs:
                    self.pipeline.inbox.put(job)
        if stopping:
            assert self.pipeline.completer is not None
            self.pipeline.completer.hand_back(jobs)


def _about(job: ClaimedJob) -> tuple[int, str, int, int]:
    return job.id, job.task, job.attempts, job.max_attempts


def _say(job: ClaimedJob, outcome: Outcome, seconds: float) -> None:
    """One line for what an attempt came to: a failure or a retry always (warning, info),
    a success at debug only (a line per quick job would cost a drain its speed)."""
    if outcome.status == "succeeded":
        if log.isEnabledFor(logging.DEBUG):
            log.debug("job %s (%s) succeeded on attempt %d/%d in %.3f s", *_about(job), seconds)
        return
    if outcome.status not in ("failed", "scheduled"):
        return
    error = json.loads(outcome.error) if outcome.error else {}
    why = f"{error.get('type', 'Error')}: {error.get('message', '')}"
    if outcome.status == "failed":
        log.warning(
            "job %s (%s) failed on attempt %d/%d after %.3f s: %s", *_about(job), seconds, why
        )
    else:
        log.info(
            "job %s (%s) will be tried again: attempt %d/%d failed after %.3f s: %s",
            *_about(job),
            seconds,
            why,
        )
