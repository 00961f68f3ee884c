"""The job state machine, written once for every backend.

What happens to jobs and workers outside the hot path (registering and reaping workers,
handing their jobs back, settling the jobs that wait for others, cancel and retry, and the
records users are shown) is here, in SQL that both backends run. A driver (``SQLiteStore``,
``PostgreSQLStore``) supplies its connections and a :class:`Dialect`: how it writes a
parameter, the clock, a list of ids, a row lock, an index hint. What is truly its own stays
in the driver: claiming and completing (SQLite's one writer, PostgreSQL's SKIP LOCKED and
arrays), submitting, waking other processes, purging, the lost commits of a network.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import InvalidStateError, JobNotFoundError
from ..models import STATUSES, TERMINAL
from .base import Store
from .records import (
    CANCELLED_RUNNING,
    JOB_COLUMNS,
    WORKERS,
    cancelled_waiting,
    count_rows,
    dependency_error,
    job_record,
    presumed_dead,
    process_start,
    worker_lost,
    worker_record,
)

if TYPE_CHECKING:
    from ..records import JobRecord, WorkerRecord

T = TypeVar("T")


@dataclass(frozen=True)
class Dialect:
    """How a backend writes what the core's SQL leaves open. The core writes ``?`` for a
    parameter and ``{now}``, ``{clock}``, ``{greatest}``, ``{lock}``, ``{index_NAME}``."""

    mark: str  # a parameter: "?" or "%s"
    now: str  # the time of this transaction's changes, in unix seconds
    clock: str  # the time at this very statement (PostgreSQL's now() is the transaction's)
    greatest: str  # the larger of two values: MAX (SQLite) or GREATEST
    lock: str  # locks the rows a SELECT reads until the transaction ends ("" with one writer)
    hints: bool  # whether {index_NAME} names the index to use (SQLite's INDEXED BY)
    # How a list of ids is passed: "array" (PostgreSQL's = ANY), "json" (one JSON text that
    # SQLite's json_each reads), "inline" (written out: an SQLite built without JSON). The
    # first two keep one statement text for any list, so prepared statements are reused.
    lists: str

    def ids(self, values: Sequence[int]) -> tuple[str, list[Any]]:
        """``IN`` a list of ids: the SQL after the column, and its parameters."""
        if self.lists == "array":
            return f"= ANY({self.mark})", [list(values)]
        if self.lists == "json":
            return f"IN (SELECT value FROM json_each({self.mark}))", [json.dumps(list(values))]
        return f"IN ({', '.join(str(int(value)) for value in values)})", []


@lru_cache(maxsize=1024)  # the texts are few; a list of ids written out makes more
def _formatted(dialect: Dialect, text: str) -> str:
    class Hints(dict[str, str]):
        def __missing__(self, key: str) -> str:
            if key.startswith("index_"):
                return f"INDEXED BY {key[6:]}" if dialect.hints else ""
            raise KeyError(key)

    values = Hints(
        now=dialect.now, clock=dialect.clock, greatest=dialect.greatest, lock=dialect.lock
    )
    return text.format_map(values).replace("?", dialect.mark)


def release_statement(where: str, *, refund: bool, source: str = "") -> str:
    """Running jobs matched by ``where`` leave their worker, in ONE statement: cancelled if
    someone asked to cancel them, else queued again (``refund``: the attempt given back), or,
    for a worker that died, failed once no attempt is left.

    One statement, not one per outcome: on PostgreSQL under READ COMMITTED an UPDATE that
    waits for a row lock re-reads that row as committed and decides on it. Apart, "cancel
    those asked to" misses a cancel still committing, and the "queue the rest" after it
    waits for that cancel's lock and queues the job anyway. Parameters: the cancel error, the
    lost error (not with ``refund``), then those of ``where``.
    """
    cancelling = "jobs.cancel_requested IS NOT NULL"
    if refund:
        stays = cancelling  # the jobs that end here; the others go back to the queue
        status = f"CASE WHEN {cancelling} THEN 'cancelled' ELSE 'queued' END"
        error = f"CASE WHEN {cancelling} THEN ? ELSE jobs.error END"
        attempts = (
            f"CASE WHEN {stays} THEN jobs.attempts ELSE {{greatest}}(jobs.attempts - 1, 0) END"
        )
        run_at = "jobs.run_at"
    else:
        stays = f"{cancelling} OR jobs.attempts >= jobs.max_attempts"
        status = (
            f"CASE WHEN {cancelling} THEN 'cancelled'"
            " WHEN jobs.attempts >= jobs.max_attempts THEN 'failed' ELSE 'queued' END"
        )
        error = f"CASE WHEN {cancelling} THEN ? ELSE ? END"
        attempts = "jobs.attempts"
        run_at = f"CASE WHEN {stays} THEN jobs.run_at ELSE {{now}} END"
    return f"""
UPDATE jobs SET status = {status},
    error = {error},
    attempts = {attempts},
    run_at = {run_at},
    worker_id = CASE WHEN {stays} THEN jobs.worker_id END,
    started_at = CASE WHEN {stays} THEN jobs.started_at END,
    finished_at = CASE WHEN {stays} THEN {{now}} ELSE jobs.finished_at END
{source}WHERE jobs.status = 'running' AND {where}
RETURNING jobs.id, jobs.status
"""


_RELEASE = {
    refund: release_statement("jobs.worker_id = ?", refund=refund) for refund in (True, False)
}
_RELEASE_CLAIM = release_statement(
    "jobs.id = ? AND jobs.claims = ? AND jobs.worker_id = ?", refund=True
)

# A worker's row; the key decides whether it is new (a worker registering again after it
# was reaped keeps its id).
_REGISTER = """
INSERT INTO workers (id, kind, pid, host, supervisor_pid, queues, threads, process_start,
    started_at, heartbeat_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, {now}, {now})
ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, pid = excluded.pid,
    host = excluded.host, supervisor_pid = excluded.supervisor_pid, queues = excluded.queues,
    threads = excluded.threads, process_start = excluded.process_start,
    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at
"""

_FOUND = "SELECT id, pid, host, process_start, heartbeat_at < {now} - ? FROM workers"

# Each status from the index its jobs are in: no scan of the table's rows.
_COUNTS = (
    "SELECT queue, 'queued', COUNT(*) FROM jobs {index_jobs_queued}"
    " WHERE status = 'queued' GROUP BY queue"
    " UNION ALL SELECT queue, 'deferred', COUNT(*) FROM jobs {index_jobs_deferred}"
    " WHERE status = 'deferred' GROUP BY queue"
    " UNION ALL SELECT queue, 'scheduled', COUNT(*) FROM jobs {index_jobs_scheduled}"
    " WHERE status = 'scheduled' GROUP BY queue"
    " UNION ALL SELECT queue, 'running', COUNT(*) FROM jobs {index_jobs_running}"
    " WHERE status = 'running' GROUP BY queue"
    " UNION ALL SELECT queue, status, COUNT(*) FROM jobs {index_jobs_finished}"
    " WHERE status IN ('succeeded', 'failed', 'cancelled') GROUP BY status, queue"
)

_UNFINISHED = (
    "SELECT id FROM jobs {index_jobs_deferred} WHERE status = 'deferred'"
    " UNION ALL SELECT id FROM jobs {index_jobs_queued} WHERE status = 'queued'"
    " UNION ALL SELECT id FROM jobs {index_jobs_scheduled} WHERE status = 'scheduled'"
    " UNION ALL SELECT id FROM jobs {index_jobs_running} WHERE status = 'running'"
)

# States that hold few jobs at a time, and the partial index that holds just them. Listing
# the others walks the table newest first: most recent jobs are in them.
_FEW = {"running": "jobs_running", "deferred": "jobs_deferred"}


class StoreCore(Store):
    """What every backend does alike, on a driver's connections and :class:`Dialect`."""

    dialect: Dialect

    # -- what a driver provides ---------------------------------------------------------------

    @abc.abstractmethod
    def _write(self) -> AbstractContextManager[Any]:
        """One transaction: a connection, committed when the block ends."""

    @abc.abstractmethod
    def _read(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        """Rows of one query, outside any transaction of ours."""

    def _notify(self, connection: Any) -> None:
        """Wake the processes waiting for a change as this transaction commits (a backend
        whose waiters look for themselves does nothing)."""

    def _retried(self, call: Callable[[], T]) -> T:
        """A call a concurrent transaction may roll back (a deadlock), tried again if the
        backend has such things."""
        return call()

    def _q(self, text: str) -> str:
        """The core's SQL in this backend's dialect."""
        return _formatted(self.dialect, text)

    def _run(self, connection: Any, text: str, parameters: Sequence[Any] = ()) -> Any:
        return connection.execute(self._q(text), parameters)

    # -- workers and recovery -----------------------------------------------------------------

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
        values = (
            worker_id,
            kind,
            pid,
            host,
            supervisor_pid,
            json.dumps(list(queues)) if queues else None,
            threads,
            process_start(pid),
        )
        with self._write() as connection:
            self._run(connection, _REGISTER, values)

    def heartbeat(self, worker_id: str) -> bool:
        with self._write() as connection:
            changed = self._run(
                connection, "UPDATE workers SET heartbeat_at = {now} WHERE id = ?", (worker_id,)
            ).rowcount
        return bool(changed == 1)

    def _release(self, connection: Any, worker_id: str, reason: str, refund: bool) -> int:
        errors = (CANCELLED_RUNNING,) if refund else (CANCELLED_RUNNING, worker_lost(reason))
        rows = self._run(connection, _RELEASE[refund], (*errors, worker_id)).fetchall()
        self._settle_released(connection, rows)
        return len(rows)

    def _settle_released(self, connection: Any, rows: Sequence[tuple[int, str]]) -> None:
        """Jobs waiting for released ones that ended (cancelled, failed) settle now."""
        ended = {job_id: status for job_id, status in rows if status in TERMINAL}
        if ended:
            self._settle(connection, ended)

    def release_worker(self, worker_id: str, *, reason: str, refund: bool) -> int:
        with self._write() as connection:
            count = self._release(connection, worker_id, reason, refund)
            self._run(connection, "DELETE FROM workers WHERE id = ?", (worker_id,))
            if count:
                self._notify(connection)
        return count

    def release_jobs(self, worker_id: str, claims: Sequence[tuple[int, int]]) -> int:
        if not claims:
            return 0
        rows: list[tuple[int, str]] = []
        with self._write() as connection:
            for job_id, claim in claims:
                parameters = (CANCELLED_RUNNING, job_id, claim, worker_id)
                rows += self._run(connection, _RELEASE_CLAIM, parameters).fetchall()
            self._settle_released(connection, rows)
            if rows:
                self._notify(connection)
        return len(rows)

    def reap(self, lease: float, host: str | None = None) -> list[str]:
        rows = self._read(self._q(_FOUND), (lease,))
        dead = [row[0] for row in rows if presumed_dead(row, host)]
        reaped = []
        with self._write() as connection:
            for worker_id in dead:
                # Again under the row's lock: the worker may have heartbeated meanwhile.
                found = f"{_FOUND} WHERE id = ?{{lock}}"
                row = self._run(connection, found, (lease, worker_id)).fetchone()
                reason = presumed_dead(row, host) if row is not None else None
                if reason is None:
                    continue
                self._release(connection, worker_id, reason, refund=False)
                self._run(connection, "DELETE FROM workers WHERE id = ?", (worker_id,))
                reaped.append(worker_id)
            # Safety net: running jobs whose worker row is gone (and past the lease).
            orphans = self._run(
                connection,
                "SELECT DISTINCT worker_id FROM jobs WHERE status = 'running'"
                " AND started_at < {now} - ?"
                " AND NOT EXISTS (SELECT 1 FROM workers WHERE workers.id = jobs.worker_id)",
                (lease,),
            ).fetchall()
            for (worker_id,) in orphans:
                self._release(connection, worker_id, f"worker {worker_id} is gone", False)
                reaped.append(worker_id)
            if reaped:
                self._notify(connection)
        return reaped

    def workers(self) -> list[WorkerRecord]:
        return [worker_record(row) for row in self._read(WORKERS)]

    # -- jobs waiting for others ----------------------------------------------------------------

    def _settle(self, connection: Any, ended: dict[int, str]) -> None:
        """Jobs waiting for ``ended`` (id -> terminal status): release those whose every
        dependency has now succeeded; cancel those whose dependency failed or was cancelled,
        and so on down the chain.

        A job waiting for two jobs that finish in two concurrent transactions (PostgreSQL):
        each deletes its own dependency row and, still seeing the other's, would leave the
        job waiting for ever. So the waiting jobs are locked first, and only then, in new
        statements (new snapshots, taken after the other transaction has committed), their
        rows are deleted and checked for rows left.
        """
        while ended:
            after, after_parameters = self.dialect.ids(list(ended))
            waiting = [
                row[0]
                for row in self._run(
                    connection,
                    f"SELECT DISTINCT job_id FROM job_dependencies WHERE after_id {after}",
                    after_parameters,
                ).fetchall()
            ]
            if not waiting:
                return
            if self.dialect.lock:
                # Job rows before dependency rows, as cancel_job takes them: the other order
                # deadlocks with a cancel of a waiting job.
                jobs, job_parameters = self.dialect.ids(sorted(waiting))
                self._run(
                    connection,
                    f"SELECT id FROM jobs WHERE id {jobs} ORDER BY id{{lock}}",
                    job_parameters,
                )
            edges = self._run(
                connection,
                f"DELETE FROM job_dependencies WHERE after_id {after} RETURNING after_id, job_id",
                after_parameters,
            ).fetchall()
            cancelled: dict[int, str] = {}
            released = []
            for after_id, job_id in edges:
                status = ended[after_id]
                if status == "succeeded":
                    released.append(job_id)
                    continue
                self._run(connection, "DELETE FROM job_dependencies WHERE job_id = ?", (job_id,))
                changed = self._run(
                    connection,
                    "UPDATE jobs SET status = 'cancelled', finished_at = {now}, error = ?"
                    " WHERE id = ? AND status = 'deferred' RETURNING id",
                    (dependency_error(after_id, status), job_id),
                ).fetchall()
                if changed:
                    cancelled[job_id] = "cancelled"
            if released:
                ready, ready_parameters = self.dialect.ids(released)
                self._run(
                    connection,
                    # The clock now, not at the transaction's start: a job submitted
                    # meanwhile has a later run_at than that, and is due.
                    "UPDATE jobs SET status = CASE WHEN run_at > {clock} THEN 'scheduled'"
                    f" ELSE 'queued' END WHERE id {ready} AND status = 'deferred'"
                    " AND NOT EXISTS (SELECT 1 FROM job_dependencies d WHERE d.job_id = jobs.id)",
                    ready_parameters,
                )
            ended = cancelled

    # -- inspecting and managing jobs -----------------------------------------------------------

    def get_job(self, job_id: int) -> JobRecord:
        rows = self._read(self._q(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"), (job_id,))
        if not rows:
            raise JobNotFoundError(f"no job with id {job_id}")
        record = job_record(rows[0])
        if record.status == "deferred":
            waits = "SELECT after_id FROM job_dependencies WHERE job_id = ? ORDER BY after_id"
            record.waiting_for = [row[0] for row in self._read(self._q(waits), (job_id,))]
        return record

    def job_statuses(self, job_ids: Sequence[int]) -> dict[int, str]:
        statuses: dict[int, str] = {}
        ids = list(job_ids)
        for start in range(0, len(ids), 5000):
            chunk, parameters = self.dialect.ids(ids[start : start + 5000])
            rows = self._read(self._q(f"SELECT id, status FROM jobs WHERE id {chunk}"), parameters)
            statuses.update({row[0]: row[1] for row in rows})
        return statuses

    def list_jobs(
        self,
        *,
        status: str | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 50,
    ) -> list[JobRecord]:
        clauses, parameters = [], []
        source = "jobs"
        if status in STATUSES:
            # Written out, not a parameter: a plan made for any status could not use the
            # partial index of this one (the few running jobs among a million finished).
            clauses.append(f"status = '{status}'")
            if status in _FEW:  # few jobs, in their own index: read them, not the whole table
                source = f"jobs {{index_{_FEW[status]}}}"
        elif status is not None:
            clauses.append("status = ?")
            parameters.append(status)
        for column, value in (("queue", queue), ("task", task)):
            if value is not None:
                clauses.append(f"{column} = ?")
                parameters.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT {JOB_COLUMNS} FROM {source}{where} ORDER BY id DESC LIMIT ?"
        return [job_record(row) for row in self._read(self._q(sql), [*parameters, limit])]

    def counts(self) -> dict[str, Any]:
        return count_rows(self._read(self._q(_COUNTS)))

    def unfinished_job_ids(self) -> list[int]:
        return sorted(row[0] for row in self._read(self._q(_UNFINISHED)))

    def cancel_requests(self, worker_id: str) -> list[tuple[int, int]]:
        rows = self._read(
            self._q(
                "SELECT id, claims FROM jobs {index_jobs_running} WHERE worker_id = ?"
                " AND status = 'running' AND cancel_requested IS NOT NULL"
            ),
            (worker_id,),
        )
        return [(row[0], row[1]) for row in rows]

    def _locked(self, connection: Any, job_id: int, columns: str) -> Any:
        """``columns`` of one job, its row locked until the transaction ends (PostgreSQL; SQLite's
        writer holds every row); JobNotFoundError if there is no such job."""
        query = f"SELECT {columns} FROM jobs WHERE id = ?{{lock}}"
        row = self._run(connection, query, (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(f"no job with id {job_id}")
        return row

    def cancel_job(self, job_id: int) -> str:
        return self._retried(lambda: self._cancel_job(job_id))

    def _cancel_job(self, job_id: int) -> str:
        with self._write() as connection:
            status, attempts, previous = self._locked(connection, job_id, "status, attempts, error")
            if status == "running":
                self._run(
                    connection,
                    "UPDATE jobs SET cancel_requested = COALESCE(cancel_requested, {now})"
                    " WHERE id = ?",
                    (job_id,),
                )
                return "cancelling"
            if status in TERMINAL:
                raise InvalidStateError(
                    f"job {job_id} is {status}; only waiting or running jobs can be cancelled"
                )
            self._run(
                connection,
                "UPDATE jobs SET status = 'cancelled', finished_at = {now}, error = ? WHERE id = ?",
                (cancelled_waiting(attempts, previous), job_id),
            )
            self._run(connection, "DELETE FROM job_dependencies WHERE job_id = ?", (job_id,))
            self._settle(connection, {job_id: "cancelled"})
            self._notify(connection)
            return "cancelled"

    def retry_job(self, job_id: int) -> None:
        self._retried(lambda: self._retry_job(job_id))

    def _retry_job(self, job_id: int) -> None:
        with self._write() as connection:
            (status,) = self._locked(connection, job_id, "status")
            if status not in ("failed", "cancelled"):
                raise InvalidStateError(
                    f"job {job_id} is {status}; only failed or cancelled jobs can be retried"
                )
            self._run(
                connection,
                "UPDATE jobs SET status = 'queued', attempts = 0, run_at = {now}, result = NULL,"
                " started_at = NULL, finished_at = NULL, worker_id = NULL,"
                " cancel_requested = NULL WHERE id = ?",
                (job_id,),
            )
            self._notify(connection)
