"""What the threads of one worker process share, and the producer that fills it.

The blog's producer/consumer, made exact: the fetcher claims jobs only for free slots (one
per executor thread), hands them to the executors through one queue, and the completer
gives a slot back once the outcome it frees is recorded. :class:`Pipeline` is that shared
state (slots, queue, jobs in flight, runs under way, the stop flags) and the store and
completer every thread uses; :class:`Fetcher` is the producer.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ..context import CancelFlag
from ..errors import CorruptDatabaseError, DatabaseError
from ..faults import fault
from ..models import ClaimedJob, counted
from ..store import Store
from ..tasks import Task
from .runs import Pace, Run
from .settings import WorkerSettings

if TYPE_CHECKING:
    from .completer import Completer

log = logging.getLogger("jobq.worker")

STOP_CHECK = 0.05  # seconds an idle fetcher waits for new work before it looks for a stop


class Pipeline:
    """The state the fetcher, the executors, the completer and the watchdog share."""

    def __init__(self, tasks: Mapping[str, Task], settings: WorkerSettings) -> None:
        self.store: Store | None = None
        self.completer: Completer | None = None
        # The hand-over queue from the fetcher (producer) to the executors (consumers). It is
        # bounded by the slots, not by a maxsize: a job is claimed only for a free executor,
        # so it never holds more than `threads` jobs. SimpleQueue (C) costs a fraction of
        # queue.Queue's locks and conditions per job, measurable on short jobs. Jobs of quick
        # tasks travel as runs, several to one executor (see .runs).
        self.inbox: queue.SimpleQueue[ClaimedJob | Run | None] = queue.SimpleQueue()
        self.pace = Pace(frozenset(name for name, task in tasks.items() if not task.batchable))
        self.runs: set[Run] = set()  # runs an executor has started; self.lock
        self.slots = threading.Semaphore(settings.threads)
        self.lock = threading.Lock()
        # (job id, claim) -> (job, monotonic deadline or None, its cancel flag); self.lock
        self.active: dict[tuple[int, int], tuple[ClaimedJob, float | None, CancelFlag]] = {}
        self.abandoned: set[tuple[int, int]] = set()
        self.in_flight = 0  # jobs claimed and not yet handed to the completer
        self.handed_over = 0  # jobs ever handed to the executors (burst: did a flush claim?)
        self.busy_at = time.monotonic()  # when jobs were last handed over (the poll slows after)
        self.stopping = threading.Event()  # stop claiming
        self.finished = threading.Event()  # everything is over; background threads end

    def refill_limit(self, freed: int) -> int:
        """How many jobs the completer may claim for ``freed`` slots: none once stopping."""
        return 0 if self.stopping.is_set() else freed


class Fetcher:
    """The producer: claims jobs for free slots, or waits for work (a commit anywhere, a
    scheduled job coming due, the backstop), and hands back what it holds at a stop."""

    def __init__(
        self,
        pipeline: Pipeline,
        settings: WorkerSettings,
        worker_id: str,
        *,
        on_damage: Callable[[CorruptDatabaseError], None],
        on_crash: Callable[[], None],
    ) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.worker_id = worker_id
        self.on_damage = on_damage
        self.on_crash = on_crash

    def loop(self) -> None:
        stopping = self.pipeline.stopping
        pause = 0.05
        try:
            while not stopping.is_set():
                try:
                    if self.fetch_once():
                        break
                    pause = 0.05
                except CorruptDatabaseError as error:
                    self.on_damage(error)
                    break
                except DatabaseError as error:
                    # Locked or full: nothing was claimed. Wait and try again.
                    log.warning("fetching jobs failed, retrying in %.2f s: %s", pause, error)
                    stopping.wait(pause)
                    pause = min(pause * 2, 2.0)
            self.hand_back_prefetched()
        except Exception:
            # A bug, not a database hiccup: stop this worker so that its supervisor (or the
            # lease) hands its jobs to a fresh process instead of leaving a worker that
            # heartbeats but never claims.
            log.exception("the fetcher of worker %s failed; stopping", self.worker_id)
            self.on_crash()

    def fetch_once(self) -> bool:
        """Claim jobs for the free slots and hand them over, or wait for work.

        Returns True when a burst worker has nothing left to do.
        """
        settings, pipeline = self.settings, self.pipeline
        store = pipeline.store
        assert store is not None
        if not pipeline.slots.acquire(timeout=0.05):
            return False
        free = 1
        while free < settings.batch and pipeline.slots.acquire(blocking=False):
            free += 1
        try:
            store.changed()  # the baseline: any commit after this wakes an idle wait
            jobs = store.claim(self.worker_id, settings.queues, free, commands=settings.commands)
        except BaseException:
            for _ in range(free):
                pipeline.slots.release()
            raise
        for _ in range(free - len(jobs)):
            pipeline.slots.release()
        if jobs:
            self.hand_over(jobs)
            return False
        if settings.burst and self.drained():
            log.info("worker %s: no runnable job left (burst)", self.worker_id)
            pipeline.stopping.set()
            return True
        self.wait_for_work()
        return False

    def hand_over(self, jobs: list[ClaimedJob]) -> None:
        """Give claimed jobs to the executors (each holds a slot already).

        Once a stop has begun nothing new may start: a claim that raced with the stop (the
        completer read its refill limit just before) goes straight back to the queue.
        """
        fault("after_claim")
        pipeline = self.pipeline
        with pipeline.lock:
            stopping = pipeline.stopping.is_set()
            pipeline.in_flight += len(jobs)
            if not stopping:
                pipeline.handed_over += len(jobs)
                pipeline.busy_at = time.monotonic()
                for item in pipeline.pace.group(jobs):
                    pipeline.inbox.put(item)
        if stopping:
            self.hand_back(jobs)

    def drained(self) -> bool:
        """Burst mode: nothing in flight here, outcomes recorded, nothing runnable."""
        pipeline = self.pipeline
        assert pipeline.store is not None and pipeline.completer is not None
        with pipeline.lock:
            if pipeline.in_flight:
                return False
            handed_over = pipeline.handed_over
        pipeline.completer.flush()
        with pipeline.lock:
            # The flush may have refilled slots: those jobs may even have run already, their
            # outcomes (which may release jobs waiting for them) not yet recorded.
            if pipeline.in_flight or pipeline.handed_over != handed_over:
                return False
        settings = self.settings
        runnable = pipeline.store.runnable_count(settings.queues, commands=settings.commands)
        return runnable == 0

    def wait_for_work(self) -> None:
        """Sleep until another connection commits, a scheduled job comes due, or the backstop."""
        settings, pipeline = self.settings, self.pipeline
        store = pipeline.store
        assert store is not None
        now = time.monotonic()
        wake_at = now + settings.backstop
        next_run = store.next_run_at(settings.queues, commands=settings.commands)
        if next_run is not None:
            wake_at = min(wake_at, now + max(next_run - time.time(), settings.poll))
        while not pipeline.stopping.is_set():
            now = time.monotonic()
            remaining = wake_at - now
            if remaining <= 0:
                return
            idle = now - pipeline.busy_at > settings.idle_after
            poll = settings.idle_poll if idle else settings.poll
            # In slices, so that a stop is seen within STOP_CHECK seconds.
            if store.wait_for_change(min(remaining, STOP_CHECK), poll):
                return

    def hand_back_prefetched(self) -> None:
        returned: list[ClaimedJob] = []
        while True:
            try:
                item = self.pipeline.inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Run):
                returned += item.take_pending()
            elif item is not None:
                returned.append(item)
        self.hand_back(returned)

    def hand_back(self, jobs: list[ClaimedJob]) -> None:
        """Queue again jobs claimed but not started (the attempt does not count)."""
        if not jobs:
            return
        pipeline = self.pipeline
        assert pipeline.store is not None
        try:
            pipeline.store.release_jobs(self.worker_id, [(job.id, job.claim) for job in jobs])
            log.info(
                "worker %s handed back %s not started", self.worker_id, counted(len(jobs), "job")
            )
        except DatabaseError as error:  # they are released with the worker at shutdown
            log.warning(
                "could not hand back %s not started yet: %s", counted(len(jobs), "job"), error
            )
        finally:
            # Whatever happened, they are out of this process's hands: a stop must not wait
            # its whole grace for them (the worker's release at its end requeues them).
            with pipeline.lock:
                pipeline.in_flight -= len(jobs)
            for _ in jobs:
                pipeline.slots.release()
