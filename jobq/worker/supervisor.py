"""The supervisor: keeps N worker processes alive, and loses no job when one dies.

It is the blog's ``Pool(5)`` made durable: children are forked (no pickling: they inherit
the app's task registry), watched through their sentinels, and restarted with backoff when
they keep dying. A dead child's jobs are queued again at once. Children get SIGKILL from the
kernel if the supervisor dies (PR_SET_PDEATHSIG), so they never outlive it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import resource
import secrets
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from ..errors import ConfigurationError, CorruptDatabaseError, DatabaseError
from ..models import counted
from ..store import Store, open_store
from ..tasks import Task
from .children import prefer_forkserver
from .patience import HOST, patiently, reap_dead
from .process import WorkerProcess
from .settings import EXIT_CRASHED, EXIT_DAMAGED, EXIT_OK, EXIT_RECYCLE, WorkerSettings

log = logging.getLogger("jobq.supervisor")

_PR_SET_PDEATHSIG = 1
_M_ARENA_MAX = -8  # glibc mallopt(): the most malloc arenas a process may create
QUICK_DEATH = 10.0  # seconds: a child that dies sooner than this counts toward backoff
MAX_RESTART_DELAY = 30.0


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pulse check still catches orphans
        pass


def _few_malloc_arenas() -> None:
    """Before an address-space limit: glibc gives threads malloc arenas of their own, each
    reserving 64 MiB of address space, up to 8 per core. A process of 32 executor threads
    would reserve a gigabyte before any task allocated a byte (under ``--max-memory 600`` no
    thread could start). Two arenas are plenty for threads that mostly take turns on the GIL.
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc: no such arenas
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 2)


def _child_main(
    tasks: Mapping[str, Task],
    settings: WorkerSettings,
    worker_id: str,
    supervisor_pid: int,
    pulse: Any,
    clean: Any,
    commands: Any,
) -> None:
    _die_with_parent()
    if os.getppid() != supervisor_pid:  # the supervisor died before prctl took effect
        os._exit(1)
    prefer_forkserver()  # for tasks' multiprocessing: no fork of this threaded process
    if settings.memory_limit:
        _few_malloc_arenas()
        limit = settings.memory_limit * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def beat() -> None:
        pulse.value = time.monotonic()

    def mark_clean() -> None:
        clean.value = 1

    worker = WorkerProcess(
        tasks,
        settings,
        worker_id,
        child=True,
        supervisor_pid=supervisor_pid,
        pulse=beat,
    )
    for task in tasks.values():
        if task.processes is not None:  # read by the supervisor if this process is killed
            task.processes.published = commands
    worker.install_signals()
    try:
        code = worker.run()
        if code in (EXIT_OK, EXIT_RECYCLE):
            mark_clean()
    except BaseException:
        log.exception("worker %s crashed", worker_id)
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):  # os._exit skips the flush: keep tasks' prints
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class Child:
    slot: int
    process: Any = None
    worker_id: str = ""
    started: float = 0.0
    pulse: Any = None
    clean: Any = None
    commands: Any = None  # process groups of the child's running shell commands (shared)
    failures: int = 0
    restart_at: float | None = 0.0  # monotonic time to (re)start; None: stays down
    done: bool = False  # burst finished, or stopping


class Supervisor:
    def __init__(self, tasks: Mapping[str, Task], settings: WorkerSettings) -> None:
        self.tasks = tasks
        self.settings = settings
        self.context = multiprocessing.get_context("fork")
        self.children = [Child(slot) for slot in range(settings.procs)]
        self.signals = 0
        self.stopping = False
        self.damaged: CorruptDatabaseError | None = None  # found damaged: stop, then raise it
        self.stop_deadline = 0.0
        self.id = f"{HOST}/{os.getpid()}/supervisor-{secrets.token_hex(3)}"
        self.store: Store | None = None

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.signals += 1

    def run(self) -> int:
        """Supervise until stopped. Must run in the main thread (it handles signals)."""
        if threading.current_thread() is not threading.main_thread():
            raise ConfigurationError(
                "a pool of worker processes must be run from the main thread "
                "(use procs=0 to run workers in a thread)"
            )
        settings = self.settings
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        self.store = store = open_store(settings.database)
        try:
            store.register_worker(
                self.id,
                kind="supervisor",
                pid=os.getpid(),
                host=HOST,
                supervisor_pid=None,
                queues=settings.queues,
                threads=0,
            )
            reap_dead(store, settings.lease)
            log.info(
                "supervisor %d starting %s",
                os.getpid(),
                counted(settings.procs, "worker process"),
            )
            self._loop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            try:
                store.release_worker(self.id, reason="supervisor stopped", refund=True)
            except DatabaseError as error:
                log.warning("could not unregister the supervisor: %s", error)
            store.close()
        log.info("supervisor %d stopped", os.getpid())
        if self.damaged is not None:
            raise self.damaged
        return EXIT_OK

    def _loop(self) -> None:
        settings = self.settings
        assert self.store is not None
        next_beat = next_reap = time.monotonic()
        while True:
            now = time.monotonic()
            if self.signals and not self.stopping:
                self._begin_stop()
            if self.stopping and (self.signals > 1 or now >= self.stop_deadline):
                self._kill_all()
                return
            for child in self.children:
                if child.process is not None and child.process.exitcode is not None:
                    self._on_exit(child)
            finishing = self.stopping or (settings.burst and all(c.done for c in self.children))
            ended = all(child.process is None for child in self.children)
            if finishing and ended and (self.stopping or not self._restart_for_burst()):
                return
            if not self.stopping:
                self._start_due(now)
                self._check_pulses(now)
            if now >= next_beat:
                next_beat = now + settings.heartbeat
                self._maintain(now >= next_reap)
                if now >= next_reap:
                    next_reap = now + settings.lease / 2
            sentinels = [child.process.sentinel for child in self.children if child.process]
            if sentinels:
                wait(sentinels, timeout=0.1)
            else:
                time.sleep(0.05)

    # -- children --------------------------------------------------------------------------

    def _spawn(self, child: Child) -> None:
        assert self.store is not None
        child.worker_id = f"{HOST}/{os.getpid()}.{child.slot}-{secrets.token_hex(3)}"
        child.pulse = self.context.RawValue("d", time.monotonic())
        # Set by the child only when jobq itself ends the process: a task calling
        # os._exit(0) must not pass for a clean stop (its jobs' attempts would be refunded).
        child.clean = self.context.RawValue("b", 0)
        child.commands = self.context.RawArray("i", self.settings.threads)
        # No database connection may cross a fork: close ours; it reopens on next use.
        self.store.close()
        process = self.context.Process(
            target=_child_main,
            args=(
                self.tasks,
                self.settings,
                child.worker_id,
                os.getpid(),
                child.pulse,
                child.clean,
                child.commands,
            ),
            name=f"jobq-worker-{child.slot}",
        )
        process.start()
        child.process = process
        child.started = time.monotonic()
        child.restart_at = None
        log.info("started worker process %d (%s)", process.pid, child.worker_id)

    def _start_due(self, now: float) -> None:
        for child in self.children:
            due = child.restart_at is not None and now >= child.restart_at
            if child.process is None and not child.done and due:
                self._spawn(child)

    def _on_exit(self, child: Child) -> None:
        assert self.store is not None
        process = child.process
        code = process.exitcode
        process.join()
        child.process = None
        reason = f"worker process {process.pid} died ({describe_exit(code)})"
        clean = code in (EXIT_OK, EXIT_RECYCLE) and bool(child.clean and child.clean.value)
        if code in (EXIT_OK, EXIT_RECYCLE) and not clean:
            # The process ended behind jobq's back (os._exit in a task): a crash like any other.
            reason = f"worker process {process.pid} exited ({describe_exit(code)}) from a task"
            code = EXIT_CRASHED
        if code == EXIT_DAMAGED:
            self._on_damage(
                CorruptDatabaseError(
                    f"the database {self.settings.database} is damaged (worker process "
                    f"{process.pid} found it so and stopped); see jobq check"
                )
            )
        self._kill_commands(child)  # before its jobs go back: no copy may run on beside a rerun
        released = self._release(child.worker_id, reason, refund=clean)
        if not clean:
            log.warning("%s; %d of its jobs queued again", reason, released)
        if self.stopping or (self.settings.burst and code == EXIT_OK):
            child.done = True
            return
        lived = time.monotonic() - child.started
        if code == EXIT_RECYCLE:
            child.failures = 0
            delay = 0.0
        else:
            child.failures = child.failures + 1 if lived < QUICK_DEATH else 1
            delay = (
                0.0
                if child.failures <= 1
                else min(0.25 * 2 ** (child.failures - 2), MAX_RESTART_DELAY)
            )
        if delay:
            log.warning("worker slot %d keeps dying; restarting in %.1f s", child.slot, delay)
        child.restart_at = time.monotonic() + delay

    def _release(self, worker_id: str, reason: str, refund: bool) -> int:
        store = self.store
        assert store is not None
        try:
            return patiently(
                lambda: store.release_worker(worker_id, reason=reason, refund=refund),
                seconds=self.settings.lease,
                what=f"release the jobs of {worker_id}",
            )
        except DatabaseError:
            return 0  # the lease recovers them later

    def _restart_for_burst(self) -> bool:
        """Burst: every child finished. Start again if jobs became runnable meanwhile
        (for example released by a child that died)."""
        assert self.store is not None
        settings = self.settings
        if self.store.runnable_count(settings.queues, commands=settings.commands) == 0:
            return False
        for child in self.children:
            child.done = False
            child.restart_at = time.monotonic()
        return True

    def _check_pulses(self, now: float) -> None:
        """A child whose pulse thread has not run for a whole lease is stuck (a task holding
        the GIL in C code, say): kill it so its jobs are recovered. The pulse needs no database
        write, so a locked or full database does not make a child look stuck."""
        for child in self.children:
            if child.process is None or child.pulse is None:
                continue
            if now - child.pulse.value > self.settings.lease:
                log.warning("worker process %d is unresponsive; killing it", child.process.pid)
                child.pulse.value = now  # kill once
                self._signal(child, signal.SIGKILL)

    def _maintain(self, reap: bool) -> None:
        assert self.store is not None
        try:
            self.store.heartbeat(self.id)
            if reap:
                reap_dead(self.store, self.settings.lease)
        except CorruptDatabaseError as error:
            self._on_damage(error)
        except DatabaseError as error:
            log.warning("supervisor maintenance failed: %s", error)

    # -- stopping --------------------------------------------------------------------------

    def _on_damage(self, error: CorruptDatabaseError) -> None:
        """Stop the pool: restarting workers on a damaged file would crash-loop for ever
        (and a burst pool would never end)."""
        if self.damaged is None:
            log.error("%s; stopping every worker process", error)
            self.damaged = error
        if not self.stopping:
            self._begin_stop()

    def _signal(self, child: Child, signum: int) -> None:
        if child.process is not None and child.process.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.process.pid, signum)

    def _begin_stop(self) -> None:
        self.stopping = True
        self.stop_deadline = time.monotonic() + self.settings.grace + 5.0
        log.info(
            "stopping: running jobs get %.0f s to finish (signal again to stop now)",
            self.settings.grace,
        )
        for child in self.children:
            child.done = True
            self._signal(child, signal.SIGTERM)

    def _kill_commands(self, child: Child) -> None:
        """Kill the shell commands a dead child was running (their process groups outlive
        it). A group whose members have all exited meanwhile is gone: killpg then fails."""
        slots = child.commands
        if slots is None:
            return
        for index in range(len(slots)):
            group = slots[index]
            if group > 0:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(group, signal.SIGKILL)
                log.warning("killed command process group %d of a dead worker process", group)
                slots[index] = 0

    def _kill_all(self) -> None:
        log.warning("stopping now: killing worker processes; their jobs are queued again")
        for child in self.children:
            self._signal(child, signal.SIGKILL)
        for child in self.children:
            if child.process is not None:
                child.process.join(timeout=5)
                self._kill_commands(child)
                self._release(child.worker_id, "worker stopped by the supervisor", refund=True)
                child.process = None
