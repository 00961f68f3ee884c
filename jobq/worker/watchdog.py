"""The worker's main thread, every 20 ms: cancel requests, job timeouts, runs gone on long.

What it finds it hands to the worker's own machinery: flags a job's cancel; records a
timed-out job's outcome, then recycles the process (a thread cannot be killed), or with
procs=0 abandons the thread and starts another; passes on the jobs waiting behind a run that
has gone on too long, and hands over the outcomes it holds (see .runs).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ..errors import DatabaseError
from ..models import counted
from .execute import cancelled_outcome, timeout_outcome

if TYPE_CHECKING:
    from .process import WorkerProcess

log = logging.getLogger("jobq.worker")

CANCEL_CHECK = 0.2  # seconds between looks for cancel requests while jobs run


class Watchdog:
    """The periodic checks of one worker process (run by its main thread)."""

    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker
        self.next_cancel_check = 0.0

    def check(self) -> None:
        self.cancellations()
        self.timeouts()
        self.runs()

    def cancellations(self) -> None:
        """Every CANCEL_CHECK seconds while jobs run: flag those ``jobq cancel`` asked to stop.

        A shell command is stopped by its runner (SIGTERM, then SIGKILL after the grace). A
        Python task sees ``current_job().cancelled``; if it has not returned after the grace,
        it is stopped like a timed-out one (its process is recycled).
        """
        worker = self.worker
        now = time.monotonic()
        if now < self.next_cancel_check or not worker.pipeline.active:
            return
        self.next_cancel_check = now + CANCEL_CHECK
        assert worker.store is not None
        try:
            requested = set(worker.store.cancel_requests(worker.worker_id))
        except DatabaseError as error:
            log.warning("could not look for cancelled jobs: %s", error)
            return
        with worker.pipeline.lock:
            for key in requested & set(worker.pipeline.active):
                job, deadline, cancel = worker.pipeline.active[key]
                if cancel.is_set():
                    continue
                cancel.set()
                log.info("job %s: cancel requested; stopping it", job.id)
                task = worker.tasks.get(job.task)
                if task is None or not task.stops_itself:
                    limit = now + worker.settings.cancel_grace
                    worker.pipeline.active[key] = (job, min(deadline or limit, limit), cancel)

    def timeouts(self) -> None:
        worker = self.worker
        now = time.monotonic()
        with worker.pipeline.lock:
            expired = [
                (job, cancel.is_set())
                for job, deadline, cancel in worker.pipeline.active.values()
                if deadline is not None and deadline <= now
            ]
            if not expired:
                return
            for job, _ in expired:
                del worker.pipeline.active[(job.id, job.claim)]
                worker.pipeline.abandoned.add((job.id, job.claim))
        assert worker.store is not None and worker.completer is not None
        for job, cancelled in expired:
            if cancelled:
                log.warning(
                    "job %s ignored its cancel for %s s", job.id, worker.settings.cancel_grace
                )
                outcome = cancelled_outcome(job, worker.worker_id)
            else:
                log.warning("job %s ran past its timeout of %s s", job.id, job.timeout)
                outcome = timeout_outcome(job, worker.worker_id, worker.tasks.get(job.task))
            worker.executors.record([(outcome, job)])  # out of flight once in the completer's inbox
        if not worker.child:
            for _ in expired:
                worker.executors.start()
            return
        # A thread cannot be killed: recycle the process, by the worker's one way of stopping
        # at once. The timeouts are recorded (above); the other running jobs go back to the
        # queue without counting their attempt, and their commands stop: abandoned first, so
        # that neither their being killed nor a late end is recorded as their outcome.
        with worker.pipeline.lock:
            worker.pipeline.abandoned.update(worker.pipeline.active)
        worker.recycle()

    def runs(self) -> None:
        """A run that has gone on for STALL seconds (its current job turned out slow) hands
        the jobs waiting behind it to other executors, and its outcomes to the completer."""
        worker = self.worker
        with worker.pipeline.lock:
            if not worker.pipeline.runs:
                return
            now = time.monotonic()
            stalled = [run for run in worker.pipeline.runs if run.stalled(now)]
        for run in stalled:
            waiting = run.take_pending()
            worker.executors.pass_on(waiting)
            worker.executors.record(run.take_done())
            if waiting:
                log.info(
                    "%s waited behind a slow job of a run; handed on", counted(len(waiting), "job")
                )
