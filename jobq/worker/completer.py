"""The completer: records outcomes in batched, fenced transactions; callbacks run after.

Executor threads hand outcomes over with ``submit_many`` (the completion callback of the
blog's ``apply_async``); one completer thread writes whatever has piled up in a single
transaction. Under load, outcomes pile up while the previous batch commits (up to one per
executor: a slot is given back only once its outcome is recorded); when idle, a lone outcome
is written at once. Users' ``on_success``/``on_failure`` callbacks run on a thread of their
own once their outcomes are recorded, so a callback that blocks holds up other callbacks,
never the recording of outcomes or the slots they free.
"""

from __future__ import annotations

import functools
import logging
import math
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..context import JobContext
from ..errors import CorruptDatabaseError, DatabaseError
from ..faults import fault
from ..models import ClaimedJob, Outcome, counted
from ..store import Store
from ..tasks import Task
from .execute import describe, error_json, failure
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
        commands: str = "also",
    ) -> None:
        self.worker_id = worker_id
        self.queues = queues
        self.commands = commands
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
        # Called with the error if recording itself fails (a bug, or a damaged database).
        self.on_crash: Callable[[Exception], None] | None = None
        self.inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="jobq-completer", daemon=True)
        # Recorded outcomes whose task has a callback, for the callbacks thread (None: stop).
        self.callbacks: queue.SimpleQueue[tuple[Outcome, ClaimedJob] | None] = queue.SimpleQueue()
        self.callback_thread = threading.Thread(
            target=self._run_callbacks, name="jobq-callbacks", daemon=True
        )

    def start(self) -> None:
        self.thread.start()
        self.callback_thread.start()

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
        """Record what is pending, run the callbacks of what was recorded (up to ``timeout``
        seconds each for both), then end the threads."""
        self.inbox.put(_STOP)
        self.thread.join(timeout)
        self.callbacks.put(None)
        self.callback_thread.join(timeout)
        if self.callback_thread.is_alive():
            log.warning("a completion callback is still running; the worker stops without it")

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
                except CorruptDatabaseError as error:
                    if self.on_crash is not None:
                        self.on_crash(error)
                except Exception as error:  # noqa: BLE001 - a bug: stop the worker, never wedge it
                    log.exception("the completer failed; stopping the worker")
                    if self.on_crash is not None:
                        self.on_crash(error)
            if returned and self.release is not None:
                try:
                    self.release(returned)
                except Exception:  # noqa: BLE001 - they go back with the worker at its end
                    log.exception("could not hand back %s yet", counted(len(returned), "job"))
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
                commands=refill.commands,
            )

        try:
            # Keep the outcomes however long it takes: they are recorded once the database
            # takes writes again (locked, full).
            applied, jobs = patiently(
                record, seconds=math.inf, what=f"record {len(batch)} outcomes"
            )
        except DatabaseError:
            raise
        except Exception:  # noqa: BLE001 - the database refused a value, not the batch
            log.exception(
                "recording %s failed; recording them one by one", counted(len(batch), "outcome")
            )
            applied, jobs = self._record_apart(batch), []
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
            if outcome.status in ("succeeded", "failed") and self._callback_of(outcome, job):
                self.callbacks.put((outcome, job))
        freed = len(batch) - len(jobs)
        if self.on_recorded is not None and freed:
            self.on_recorded(freed)

    def _record_apart(self, batch: list[tuple[Outcome, ClaimedJob]]) -> list[bool]:
        """Record each outcome in a transaction of its own: one the database will not take
        (a value a bug let through the payload checks) fails its job alone, once, and never
        takes the rest of the batch with it."""
        applied = []
        for index, (outcome, job) in enumerate(batch):
            try:
                applied += patiently(
                    functools.partial(self.store.complete, [outcome]),
                    seconds=math.inf,
                    what=f"record the outcome of job {outcome.job_id}",
                )
                continue
            except DatabaseError:
                raise
            except Exception as error:  # noqa: BLE001 - this outcome only
                message = f"the outcome of job {job.id} cannot be stored: {error}"
            log.error("%s; the job fails", message)
            refused = failure(
                job, outcome.worker_id, error_json("PayloadError", message), retry_at=None
            )
            batch[index] = (refused, job)
            applied += patiently(
                functools.partial(self.store.complete, [refused]),
                seconds=math.inf,
                what=f"record the failure of job {job.id}",
            )
        return applied

    def _callback_of(self, outcome: Outcome, job: ClaimedJob) -> Callable[..., Any] | None:
        task = self.tasks.get(job.task)
        if task is None:
            return None
        return task.on_success if outcome.status == "succeeded" else task.on_failure

    def _run_callbacks(self) -> None:
        while True:
            item = self.callbacks.get()
            if item is None:
                return
            self._callback(*item)

    def _callback(self, outcome: Outcome, job: ClaimedJob) -> None:
        task = self.tasks[job.task]
        callback = self._callback_of(outcome, job)
        assert callback is not None
        context = JobContext(
            job.id, job.task, job.queue, job.attempts, job.max_attempts, outcome.worker_id
        )
        argument = outcome.extra if outcome.status == "succeeded" else describe(outcome)
        try:
            callback(context, argument)
        except BaseException:  # noqa: BLE001 - even SystemExit: the completer must live on
            log.exception("the %s callback of job %s raised; the outcome stands", task.name, job.id)
