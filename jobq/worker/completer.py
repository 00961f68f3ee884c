"""The completer: records outcomes in batched, fenced transactions, then runs callbacks.

Executor threads hand outcomes over with ``submit_many`` (the completion callback of the
blog's ``apply_async``); one completer thread writes whatever has piled up in a single
transaction. Under load, outcomes pile up while the previous batch commits (up to one per
executor: a slot is given back only once its outcome is recorded); when idle, a lone outcome
is written at once.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..context import JobContext
from ..faults import fault
from ..models import ClaimedJob, Outcome
from ..store import Store
from ..tasks import Task
from .execute import describe
from .patience import patiently

log = logging.getLogger("jobq.worker")

MAX_BATCH = 500  # outcomes per transaction
_STOP = object()


class _HandBack:
    """Jobs claimed but not started, to go back to the queue (see ``Completer.hand_back``)."""

    __slots__ = ("jobs",)

    def __init__(self, jobs: list[ClaimedJob]) -> None:
        self.jobs = jobs


class Refill:
    """How the completer takes new work for the slots its outcomes free, in the same
    transaction (see ``Store.complete_and_claim``)."""

    def __init__(
        self,
        worker_id: str,
        queues: Sequence[str] | None,
        limit: Callable[[int], int],
        hand_over: Callable[[list[ClaimedJob]], None],
        commands_only: bool = False,
    ) -> None:
        self.worker_id = worker_id
        self.queues = queues
        self.commands_only = commands_only
        self.limit = limit  # slots freed -> how many jobs to claim now (0 while stopping)
        self.hand_over = hand_over  # gives claimed jobs to the executors


class Completer:
    def __init__(
        self,
        store: Store,
        tasks: Mapping[str, Task],
        on_recorded: Callable[[int], None] | None = None,
        refill: Refill | None = None,
        release: Callable[[list[ClaimedJob]], None] | None = None,
    ) -> None:
        self.store = store
        self.tasks = tasks
        self.on_recorded = on_recorded
        self.refill = refill
        self.release = release  # queues jobs claimed but not started again, in this thread
        self.on_crash: Callable[[], None] | None = None  # called if recording itself fails
        self.inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="jobq-completer", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def submit_many(self, finished: list[tuple[Outcome, ClaimedJob]]) -> None:
        """Outcomes to record (several at once: one wake-up of the completer thread)."""
        self.inbox.put(finished if len(finished) > 1 else finished[0])

    def hand_back(self, jobs: list[ClaimedJob]) -> None:
        """Queue again jobs claimed but not started, from the completer's thread: it holds a
        database session already, where an executor would have to open one."""
        self.inbox.put(_HandBack(jobs))

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything submitted so far is recorded."""
        done = threading.Event()
        self.inbox.put(done)
        return done.wait(timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Record what is pending, then end the thread."""
        self.inbox.put(_STOP)
        self.thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self.inbox.get()
            batch: list[tuple[Outcome, ClaimedJob]] = []
            markers: list[threading.Event] = []
            returned: list[ClaimedJob] = []
            stop = False
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    markers.append(item)
                elif isinstance(item, _HandBack):
                    returned += item.jobs
                elif isinstance(item, list):
                    batch += item
                else:
                    batch.append(item)
                if stop or len(batch) >= MAX_BATCH:
                    break
                try:
                    item = self.inbox.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    self._record(batch)
                except Exception:  # noqa: BLE001 - a bug: stop the worker, never wedge it
                    log.exception("the completer failed; stopping the worker")
                    if self.on_crash is not None:
                        self.on_crash()
            if returned and self.release is not None:
                try:
                    self.release(returned)
                except Exception:  # noqa: BLE001 - they go back with the worker at its end
                    log.exception("could not hand back %d jobs yet", len(returned))
            for marker in markers:
                marker.set()
            if stop:
                return

    def _record(self, batch: list[tuple[Outcome, ClaimedJob]]) -> None:
        refill = self.refill
        outcomes = [outcome for outcome, _ in batch]

        def record() -> tuple[list[bool], list[ClaimedJob]]:
            if refill is None:
                return self.store.complete(outcomes), []
            # The slots these outcomes free are refilled in the same commit.
            return self.store.complete_and_claim(
                outcomes,
                refill.worker_id,
                refill.queues,
                refill.limit(len(batch)),
                commands_only=refill.commands_only,
            )

        # Keep the outcomes however long it takes: they are recorded once the database
        # takes writes again (locked, full).
        applied, jobs = patiently(record, seconds=math.inf, what=f"record {len(batch)} outcomes")
        fault("after_complete")
        if jobs:
            assert refill is not None
            refill.hand_over(jobs)
        for (outcome, job), ok in zip(batch, applied, strict=True):
            if not ok:
                log.warning(
                    "job %s was taken from worker %s; its late %s outcome changed nothing",
                    outcome.job_id,
                    outcome.worker_id,
                    outcome.status,
                )
                continue
            if outcome.status in ("succeeded", "failed"):
                self._callback(outcome, job)
        freed = len(batch) - len(jobs)
        if self.on_recorded is not None and freed:
            self.on_recorded(freed)

    def _callback(self, outcome: Outcome, job: ClaimedJob) -> None:
        task = self.tasks.get(job.task)
        if task is None:
            return
        callback = task.on_success if outcome.status == "succeeded" else task.on_failure
        if callback is None:
            return
        context = JobContext(
            job.id, job.task, job.queue, job.attempts, job.max_attempts, outcome.worker_id
        )
        argument = outcome.extra if outcome.status == "succeeded" else describe(outcome)
        try:
            callback(context, argument)
        except BaseException:  # noqa: BLE001 - even SystemExit: the completer must live on
            log.exception("the %s callback of job %s raised; the outcome stands", task.name, job.id)
