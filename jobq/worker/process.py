"""One worker process: a producer thread, M consumer threads and a completer, put together.

The fetcher (producer, .pipeline) claims jobs in batches, never more than there are idle
executor threads, into the pipeline's queue (jobs of quick tasks as runs: see .runs); the
executors (consumers, .executors) run them and hand the outcomes to the completer
(.completer); the main thread watches timeouts, cancel requests and runs (.watchdog) and
signals. This module starts them, registers and heartbeats the worker, and stops it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import CorruptDatabaseError, DatabaseError
from ..models import counted
from ..store import Store, open_store
from ..tasks import Task
from .children import end_leftover_children
from .completer import Completer, Refill
from .executors import Executors
from .patience import HOST, patiently, reap_dead
from .pipeline import Fetcher, Pipeline
from .settings import EXIT_CRASHED, EXIT_DAMAGED, EXIT_OK, EXIT_RECYCLE, WorkerSettings
from .watchdog import Watchdog

log = logging.getLogger("jobq.worker")


class WorkerProcess:
    """Runs jobs in threads of the current process until stopped.

    ``child=True`` means this process belongs to a supervisor: a job timeout recycles the
    whole process (exit code EXIT_RECYCLE). ``child=False`` (``procs=0``) runs inside the
    caller's process, which must never be exited: a timed-out job's thread is abandoned and
    replaced instead.
    """

    def __init__(
        self,
        tasks: Mapping[str, Task],
        settings: WorkerSettings,
        worker_id: str,
        *,
        child: bool = False,
        supervisor_pid: int | None = None,
        pulse: Callable[[], None] | None = None,
    ) -> None:
        self.tasks = tasks
        self.settings = settings
        self.worker_id = worker_id
        self.child = child
        self.supervisor_pid = supervisor_pid
        self.pulse = pulse
        # What the threads share (slots, the hand-over queue, jobs in flight, the stop flags,
        # the store and the completer), and the producer that fills it.
        self.pipeline = Pipeline(tasks, settings)
        self.fetcher = Fetcher(
            self.pipeline,
            settings,
            worker_id,
            on_damage=self._on_damage,
            on_crash=self._on_fetcher_crash,
        )
        self.stop_requests = 0
        # A job outlived its timeout (or its cancel's grace) in a supervised process: a thread
        # cannot be killed, so the process stops at once and exits EXIT_RECYCLE to be replaced.
        self.recycling = False
        self.crashed = False  # the fetcher died of a bug: exit non-zero
        self.damaged: CorruptDatabaseError | None = None  # the database file is damaged: stop
        self.executors = Executors(self.pipeline, tasks, worker_id)
        self.heart: threading.Thread | None = None
        self.watchdog = Watchdog(self)

    @property
    def store(self) -> Store | None:
        return self.pipeline.store

    @store.setter
    def store(self, store: Store | None) -> None:
        self.pipeline.store = store

    @property
    def completer(self) -> Completer | None:
        return self.pipeline.completer

    @completer.setter
    def completer(self, completer: Completer | None) -> None:
        self.pipeline.completer = completer

    def recycle(self) -> None:
        """Stop at once and exit EXIT_RECYCLE (the main loop takes the one way of stopping):
        the watchdog found a job it cannot stop, in a process its supervisor replaces."""
        self.recycling = True
        self.pipeline.stopping.set()

    def _on_fetcher_crash(self) -> None:
        self.crashed = True
        self.pipeline.stopping.set()

    # -- life cycle ------------------------------------------------------------------------

    def request_stop(self, *_: Any) -> None:
        """Graceful stop (SIGTERM): stop claiming, let running jobs finish within the grace.

        A second request stops at once, except in a supervised child: SIGTERM sent to the
        whole process group (systemd's default) reaches the child from the shell and again
        from its supervisor, and that must stay one graceful stop. The supervisor decides
        when to stop at once, and then kills its children itself.
        """
        # A signal handler: it runs in the main thread between bytecodes, so it must not take
        # self.pipeline.lock (the main thread may hold it). Only the main thread reads the counter.
        if not (self.child and self.stop_requests):
            self.stop_requests += 1
        self.pipeline.stopping.set()

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        # Past a file size limit, writes should fail with an error the store reports and
        # retries, not kill the process.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        if self.child:
            # Ctrl-C reaches the whole process group; the supervisor decides for its children.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        else:
            signal.signal(signal.SIGINT, self.request_stop)

    def run(self) -> int:
        settings = self.settings
        if self.pulse is not None:
            threading.Thread(target=self._pulse_loop, name="jobq-pulse", daemon=True).start()
        self.store = store = open_store(settings.database)
        self._register(patience=settings.lease)
        if not self.child:
            # No supervisor did it: recover at once the jobs of dead workers on this host.
            try:
                reap_dead(store, settings.lease)
            except DatabaseError as error:
                log.warning("could not look for dead workers yet: %s", error)
        # A slot comes back once its job's outcome is recorded, not when it is handed over:
        # a process never holds more than `threads` unrecorded jobs, however far the
        # completer falls behind, so a crash reruns at most `threads` jobs.
        # The completer also refills the slots its outcomes free, in the same transaction
        # (one commit per batch instead of two); the fetcher claims when slots sit idle.
        refill = Refill(
            self.worker_id,
            settings.queues,
            self.pipeline.refill_limit,
            self.fetcher.hand_over,
            settings.commands,
        )
        self.completer = Completer(
            store,
            self.tasks,
            on_recorded=self.pipeline.slots.release,
            refill=refill,
            release=self.fetcher.hand_back,
        )
        self.completer.on_crash = self._on_completer_crash
        self.completer.start()
        for _ in range(settings.threads):
            self.executors.start()
        fetcher = threading.Thread(target=self.fetcher.loop, name="jobq-fetcher", daemon=True)
        fetcher.start()
        self.heart = threading.Thread(
            target=self._heartbeat_loop, name="jobq-heartbeat", daemon=True
        )
        self.heart.start()
        log.info(
            "worker %s started: %s, queues %s",
            self.worker_id,
            counted(settings.threads, "thread"),
            ",".join(settings.queues or ("*",)),
        )
        deadline: float | None = None
        forced = False
        while True:
            self.watchdog.check()
            if self.recycling:
                forced = True
                break
            if self.pipeline.stopping.is_set():
                if deadline is None:
                    deadline = time.monotonic() + settings.grace
                with self.pipeline.lock:
                    idle = self.pipeline.in_flight == 0
                if idle and not fetcher.is_alive():
                    break
                if self.stop_requests > 1 or time.monotonic() >= deadline:
                    forced = True
                    break
            self.pipeline.finished.wait(0.02)
        return self._shut_down(forced, fetcher)

    def _shut_down(self, forced: bool, fetcher: threading.Thread) -> int:
        assert self.store is not None and self.completer is not None
        fetcher.join(timeout=5)
        # The sentinels, forced or not: an executor still busy takes its one when its job
        # ends (with procs=0 an idle one would otherwise wait for good in the caller's process).
        for _ in self.executors.threads:
            self.pipeline.inbox.put(None)
        # Forced: jobs may still be running. Outcomes already held by runs are recorded; a
        # job that ends after this is requeued (refunded) below, as a running one is.
        self.executors.record_runs()
        self.completer.stop(timeout=30)
        self.pipeline.finished.set()  # the heartbeat ends, and so cannot register us again
        if self.heart is not None:
            self.heart.join(timeout=5)
        if forced:
            # Their jobs go back to the queue (refunded) just below: no copy may run on. The
            # completer has stopped, so no "killed" outcome can be recorded for them.
            self.stop_commands()
        try:
            released = self._release_held()
        finally:
            self.store.close()
        if self.child:  # a process of jobq's own: every other process in it is a task's
            end_leftover_children()
        if self.recycling:
            log.warning(
                "worker %s recycles its process after a job timeout or an ignored cancel; "
                "%s queued again",
                self.worker_id,
                counted(released, "other running job"),
            )
            return EXIT_RECYCLE
        if forced:
            log.warning(
                "worker %s stopped at once; %s queued again",
                self.worker_id,
                counted(released, "running job"),
            )
        else:
            log.info("worker %s stopped", self.worker_id)
        if self.damaged is not None:
            return EXIT_DAMAGED
        return EXIT_CRASHED if self.crashed else EXIT_OK

    def _release_held(self) -> int:
        """Queue again whatever this worker still holds (cut short by us, not by the job: the
        attempt does not count) and forget the worker; wait out a locked database up to a
        lease. Returns how many jobs went back."""
        assert self.store is not None
        store = self.store
        try:
            return patiently(
                lambda: self._hand_all_back(store),
                seconds=self.settings.lease,
                what="hand the jobs back",
            )
        except DatabaseError as error:
            log.error(
                "worker %s could not hand its jobs back (%s); they are recovered once this "
                "process has exited (by any worker on this host, or after the lease elsewhere)%s",
                self.worker_id,
                error,
                "" if self.child else ", or when a try in the background gets through",
            )
            if not self.child:  # a process that may live on long after its worker ended
                threading.Thread(
                    target=self._release_later, name="jobq-release", daemon=True
                ).start()
            return 0

    def _hand_all_back(self, store: Store) -> int:
        return store.release_worker(
            self.worker_id, reason="worker stopped before the job finished", refund=True
        )

    def _release_later(self) -> None:
        """Keep handing the jobs back until the database takes it (or the process ends): on
        its host, a worker whose process lives is never presumed dead."""
        store = open_store(self.settings.database)
        try:
            while True:
                try:
                    self._hand_all_back(store)
                    return
                except DatabaseError:
                    time.sleep(self.settings.heartbeat)
        finally:
            store.close()

    def _on_completer_crash(self, error: Exception) -> None:
        if isinstance(error, CorruptDatabaseError):
            self._on_damage(error)
        self.crashed = True
        self.pipeline.stopping.set()

    def _on_damage(self, error: CorruptDatabaseError) -> None:
        """Stop: a damaged database stays damaged, and retrying would spin for ever. Outcomes
        not recorded are lost with the file's damage; the jobs it holds are as the file is."""
        with self.pipeline.lock:
            first = self.damaged is None
            self.damaged = error
        if first:
            log.error("%s; worker %s stops", error, self.worker_id)
        self.pipeline.stopping.set()

    def _register(self, patience: float) -> None:
        """Record this worker, waiting out a locked database for up to ``patience`` s."""
        assert self.store is not None
        store = self.store
        patiently(
            lambda: store.register_worker(
                self.worker_id,
                kind="worker",
                pid=os.getpid(),
                host=HOST,
                supervisor_pid=self.supervisor_pid,
                queues=self.settings.queues,
                threads=self.settings.threads,
            ),
            seconds=patience,
            what=f"register worker {self.worker_id}",
            give_up=self.pipeline.stopping.is_set,
        )

    def stop_commands(self) -> None:
        for task in self.tasks.values():
            if task.processes is not None:
                task.processes.stop_all()

    def _pulse_loop(self) -> None:
        """Tell the supervisor this process is responsive, until it ends (shutting down too).
        Its own thread, with no database write before it: a heartbeat held up by a locked or
        full database must not get a healthy process killed. Only a process in which no
        Python thread runs (a task holding the GIL in C code) stops pulsing."""
        assert self.pulse is not None
        while True:
            self.pulse()
            time.sleep(self.settings.heartbeat)

    def _heartbeat_loop(self) -> None:
        settings = self.settings
        store = self.store
        assert store is not None
        next_reap = time.monotonic() + settings.lease / 2
        while not self.pipeline.finished.wait(settings.heartbeat):
            try:
                if not store.heartbeat(self.worker_id):
                    # We were presumed dead and our jobs queued again; carry on as a new worker.
                    log.warning("worker %s was reaped; registering again", self.worker_id)
                    self._register(patience=0)
                if time.monotonic() >= next_reap:
                    next_reap = time.monotonic() + settings.lease / 2
                    reap_dead(store, settings.lease)
            except CorruptDatabaseError as error:
                self._on_damage(error)
                return
            except DatabaseError as error:
                log.warning("heartbeat failed: %s", error)
