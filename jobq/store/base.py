"""The store interface: everything the library, the worker and the CLI ask of a database.

A backend implements :class:`Store`. Nothing outside ``jobq.store`` writes SQL. Every method
that changes rows is one transaction: it happens whole or not at all.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..models import ClaimedJob, NewJob, Outcome

if TYPE_CHECKING:
    from ..records import JobRecord, WorkerRecord


class Store(abc.ABC):
    """A database of jobs and workers, safe to use from many threads of one process.

    A store opened in one process must not be used after a fork: call :meth:`close` in the
    parent and open a new store in the child (stores detect a fork and reconnect).
    """

    url: str

    # -- schema ------------------------------------------------------------------------------

    @abc.abstractmethod
    def migrate(self, target: int | None = None) -> list[int]:
        """Apply pending migrations (up to ``target``, default all); return the versions
        applied (empty when up to date)."""

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The highest migration version recorded in the database (0 for a new one)."""

    # -- submitting --------------------------------------------------------------------------

    @abc.abstractmethod
    def enqueue(self, jobs: Sequence[NewJob]) -> list[int]:
        """Insert jobs in one transaction; return their ids in order.

        A job with ``after`` ids starts ``deferred`` until they have all succeeded (``queued``
        at once if they already have; ``cancelled`` at once if one failed or was cancelled).
        An id that does not exist raises JobNotFoundError and nothing is inserted.
        """

    # -- the worker's hot path ---------------------------------------------------------------

    @abc.abstractmethod
    def claim(
        self,
        worker_id: str,
        queues: Sequence[str] | None,
        limit: int,
        *,
        commands: str = "also",
    ) -> list[ClaimedJob]:
        """Take up to ``limit`` runnable jobs for ``worker_id``; mark them running.

        Runnable: ``queued`` or ``scheduled`` with ``run_at`` now or past, in ``queues`` (all
        queues when ``None``), highest priority first, then oldest ``run_at``, then lowest id.
        ``commands``: whether shell-command jobs are claimed too ("also"), alone ("only":
        a worker without an app of tasks) or not at all ("never": a worker that may not run
        them).
        """

    @abc.abstractmethod
    def complete(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Record outcomes in one transaction; return, per outcome, whether it applied.

        Each update is fenced: it applies only while the job is ``running`` and held by the
        outcome's worker, so a worker whose job was taken away changes nothing.
        """

    @abc.abstractmethod
    def complete_and_claim(
        self,
        outcomes: Sequence[Outcome],
        worker_id: str,
        queues: Sequence[str] | None,
        limit: int,
        *,
        commands: str = "also",
    ) -> tuple[list[bool], list[ClaimedJob]]:
        """``complete(outcomes)`` then ``claim(worker_id, queues, limit)``, in ONE transaction.

        A busy worker records what finished and takes new work for the freed slots with a
        single commit: half the write transactions of doing both apart.
        """

    @abc.abstractmethod
    def changed(self) -> bool:
        """Cheaply tell whether another connection committed since the last call.

        May answer True spuriously. A commit is seen by the next call (SQLite), or by a call
        once the server has delivered its notification, milliseconds later (PostgreSQL):
        callers poll.
        """

    def wait_for_change(
        self, timeout: float, poll: float = 0.001, *, growing: bool = False
    ) -> bool:
        """Wait up to ``timeout`` seconds for :meth:`changed` to answer True; return whether
        it did. This default asks every ``poll`` seconds (``growing``: the pause doubles up to
        50 ms, for a caller to whom tens of milliseconds do not matter); a backend that can be
        told of commits (PostgreSQL's LISTEN) sleeps until one arrives."""
        deadline = time.monotonic() + timeout
        longest = max(poll, 0.05) if growing else poll
        while True:
            if self.changed():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(poll, remaining))
            poll = min(poll * 2, longest)

    @abc.abstractmethod
    def next_run_at(self, queues: Sequence[str] | None, *, commands: str = "also") -> float | None:
        """The earliest ``run_at`` of a waiting job in ``queues``, or None."""

    @abc.abstractmethod
    def runnable_count(self, queues: Sequence[str] | None, *, commands: str = "also") -> int:
        """How many waiting jobs in ``queues`` could be claimed now."""

    # -- workers and recovery ----------------------------------------------------------------

    @abc.abstractmethod
    def register_worker(
        self,
        worker_id: str,
        *,
        kind: str,
        pid: int,
        host: str,
        supervisor_pid: int | None,
        queues: Sequence[str] | None,
        threads: int,
    ) -> None:
        """Record a live worker (or supervisor) process."""

    @abc.abstractmethod
    def heartbeat(self, worker_id: str) -> bool:
        """Refresh a worker's heartbeat; return False when its row is gone (it was reaped)."""

    @abc.abstractmethod
    def release_worker(self, worker_id: str, *, reason: str, refund: bool) -> int:
        """Hand back every job ``worker_id`` still holds and forget the worker.

        ``refund=True``: the jobs did not really run (prefetched, or stopped by a recycle); they
        go back to ``queued`` and the attempt is not counted. ``refund=False``: the process died
        while running them; the attempt counts, and a job with no attempt left ends ``failed``
        with a :class:`~jobq.errors.WorkerLost` error. Returns the number of jobs handed back.
        """

    @abc.abstractmethod
    def release_jobs(self, worker_id: str, claims: Sequence[tuple[int, int]]) -> int:
        """Hand back jobs a worker claimed but never started, without counting the attempt.

        ``claims`` are (job id, claim number) pairs (``ClaimedJob.id``, ``ClaimedJob.claim``):
        fenced like an outcome, so a stale copy never hands back a later claim of the job.
        """

    @abc.abstractmethod
    def reap(self, lease: float, host: str | None = None) -> list[str]:
        """Recover the jobs of workers whose heartbeat is older than ``lease`` seconds.

        With ``host``, workers on that host whose process no longer exists are recovered at
        once, without waiting for the lease. Returns the ids of the workers reaped.
        """

    @abc.abstractmethod
    def workers(self) -> list[WorkerRecord]:
        """Live worker processes, oldest first."""

    # -- inspecting and managing jobs ------------------------------------------------------

    @abc.abstractmethod
    def get_job(self, job_id: int) -> JobRecord:
        """One job; raises :class:`~jobq.errors.JobNotFoundError`."""

    @abc.abstractmethod
    def job_statuses(self, job_ids: Sequence[int]) -> dict[int, str]:
        """The status of each of ``job_ids`` that exists."""

    @abc.abstractmethod
    def list_jobs(
        self,
        *,
        status: str | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 50,
    ) -> list[JobRecord]:
        """Jobs matching the filters, newest first."""

    @abc.abstractmethod
    def counts(self) -> dict[str, Any]:
        """``{"counts": {status: n}, "queues": {queue: {status: n}}}`` over all jobs."""

    @abc.abstractmethod
    def retry_job(self, job_id: int) -> None:
        """Queue a ``failed`` or ``cancelled`` job again with fresh attempts."""

    @abc.abstractmethod
    def unfinished_job_ids(self) -> list[int]:
        """Ids of every job not yet finished (deferred, queued, scheduled or running)."""

    @abc.abstractmethod
    def cancel_job(self, job_id: int) -> str:
        """Cancel a waiting job (``cancelled``), or ask a running job's worker to stop it
        (``cancelling``: the worker records it cancelled). Returns which. Jobs that were
        waiting for it (``--after``) are cancelled too."""

    @abc.abstractmethod
    def cancel_requests(self, worker_id: str) -> list[tuple[int, int]]:
        """(job id, claim) of the jobs ``worker_id`` runs that ``cancel_job`` asked to stop."""

    @abc.abstractmethod
    def purge(self, statuses: Sequence[str], older_than: float) -> int:
        """Delete finished jobs in ``statuses`` that finished more than ``older_than`` s ago."""

    @abc.abstractmethod
    def describe(self, *, integrity: bool = False) -> dict[str, Any]:
        """Facts about the database for operators: location, schema version, sizes, row
        counts per table; with ``integrity``, the result of an integrity check ("ok")."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close this process's connections."""
