"""The SQLite store: jobs and workers as rows, each change one ``BEGIN IMMEDIATE`` transaction.

Connections, schema checks and migrations live in :mod:`.sqlite_connections`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import (
    InvalidStateError,
    JobNotFoundError,
)
from ..faults import fault
from ..models import SHELL_TASK, TERMINAL, ClaimedJob, NewJob, Outcome
from .base import Store
from .records import (
    CANCELLED_RUNNING,
    JOB_COLUMNS,
    WORKERS,
    after_found,
    after_start,
    cancelled_waiting,
    count_rows,
    dependency_error,
    job_record,
    outcome_chunks,
    presumed_dead,
    process_start,
    worker_lost,
    worker_record,
)
from .sqlite_connections import SQLiteConnections, translate
from .sqlite_files import describe_file

if TYPE_CHECKING:
    from ..records import JobRecord, WorkerRecord

PURGE_CHUNK = 2000  # rows deleted per transaction by purge (a few milliseconds of work)
PURGE_PAUSE = 0.01  # seconds between chunks, for workers waiting on the write lock


_INSERT = (
    "INSERT INTO jobs (task, queue, status, priority, args, kwargs, max_attempts,"
    " timeout, run_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_INSERT_ONE = _INSERT + " RETURNING id"

# States that hold few jobs at a time, and the partial index that holds just them. Listing
# the others walks the table newest first: most recent jobs are in them.
_FEW = {"running": "jobs_running", "deferred": "jobs_deferred"}


# The jobs_finished index's condition, written out whole so that SQLite can use the index.
_FINISHED = "status IN ('succeeded', 'failed', 'cancelled')"

# Queued jobs: every one (jobs_queued); the shell commands alone, for a worker without an
# app of tasks (jobs_queued_commands: a partial index only they enter); all but them, for a
# worker that may not run them. Each in two orders: queue by queue, and in claim order across
# every queue (the *_in_order index). The task condition, for the scheduled jobs.
_QUEUED = {
    "also": ("jobs_queued", "status = 'queued'"),
    "only": ("jobs_queued_commands", f"status = 'queued' AND task = '{SHELL_TASK}'"),
    "never": ("jobs_queued", f"status = 'queued' AND task <> '{SHELL_TASK}'"),
}
_TASKS = {
    "also": "",
    "only": f" AND task = '{SHELL_TASK}'",
    "never": f" AND task <> '{SHELL_TASK}'",
}

# Claim order. For named queues, a walk of each one's part of the index (stopping after
# :limit), merged; for every queue, one walk in claim order, whatever the number of queues.
_CANDIDATES = {
    commands: f"""
SELECT id, priority, run_at FROM jobs INDEXED BY {index}
WHERE queue = ? AND {waiting}
ORDER BY priority DESC, run_at, id
LIMIT ?
"""
    for commands, (index, waiting) in _QUEUED.items()
}

_CANDIDATES_IN_ORDER = {
    commands: f"""
SELECT id, priority, run_at FROM jobs INDEXED BY {index}_in_order
WHERE {waiting}
ORDER BY priority DESC, run_at, id
LIMIT ?
"""
    for commands, (index, waiting) in _QUEUED.items()
}

# Scheduled jobs whose time has come join their queue (in the claim's own transaction).
_PROMOTE = """
UPDATE jobs SET status = 'queued'
WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_scheduled
             WHERE status = 'scheduled' AND run_at <= ?)
"""

_DUE_EXISTS = (
    "SELECT 1 FROM jobs INDEXED BY jobs_scheduled WHERE status = 'scheduled' AND run_at <= ?"
    " LIMIT 1"
)

_TAKE = """
UPDATE jobs SET status = 'running', worker_id = ?, attempts = attempts + 1,
    claims = claims + 1, started_at = ?, finished_at = NULL
WHERE id IN (SELECT value FROM json_each(?)) AND status = 'queued'
RETURNING id, task, queue, args, kwargs, attempts, max_attempts, timeout, priority, claims
"""

# Fenced: an outcome applies only while its job is still running, held by this worker, under
# this claim. A whole batch is one statement; RETURNING names the jobs it changed. A job asked
# to cancel that would go back to waiting (a retry, a refund) ends cancelled instead.
_COMPLETE = """
WITH outcome(id, worker, claim, status, result, error, finished_at, run_at, refund) AS (
    VALUES {values}
)
UPDATE jobs SET status = CASE WHEN jobs.cancel_requested IS NOT NULL
        AND outcome.status NOT IN ('succeeded', 'failed', 'cancelled')
        THEN 'cancelled' ELSE outcome.status END,
    result = outcome.result,
    error = CASE WHEN jobs.cancel_requested IS NOT NULL
        AND outcome.status NOT IN ('succeeded', 'failed', 'cancelled') THEN ?
        WHEN outcome.refund THEN jobs.error ELSE outcome.error END,
    finished_at = CASE WHEN jobs.cancel_requested IS NOT NULL
        AND outcome.status NOT IN ('succeeded', 'failed', 'cancelled') THEN ?
        ELSE outcome.finished_at END,
    run_at = COALESCE(outcome.run_at, jobs.run_at),
    attempts = MAX(jobs.attempts - outcome.refund, 0),
    worker_id = CASE WHEN outcome.status IN ('succeeded', 'failed', 'cancelled')
        THEN jobs.worker_id ELSE NULL END
FROM outcome
WHERE jobs.id = outcome.id AND jobs.status = 'running' AND jobs.worker_id = outcome.worker
    AND jobs.claims = outcome.claim
RETURNING jobs.id, jobs.status
"""
_COMPLETE_CHUNK = 500  # outcomes per statement: 9 parameters each, far below SQLite's limit


class SQLiteStore(SQLiteConnections, Store):
    """The Store interface on one SQLite file."""

    # -- submitting ------------------------------------------------------------------------

    def enqueue(self, jobs: Sequence[NewJob]) -> list[int]:
        now = time.time()
        rows = []
        for job in jobs:
            run_at = now if job.run_at is None else job.run_at
            status = "scheduled" if run_at > now else "queued"
            rows.append(
                (
                    job.task,
                    job.queue,
                    status,
                    job.priority,
                    job.args,
                    job.kwargs,
                    job.max_attempts,
                    job.timeout,
                    run_at,
                    now,
                )
            )
        connection = self._connection()
        if len(rows) == 1 and not jobs[0].after and not connection.in_transaction:
            # One statement outside BEGIN/COMMIT is its own transaction: SQLite takes the write
            # lock as the INSERT starts, waiting in the busy handler exactly as BEGIN IMMEDIATE
            # does (no read snapshot is held yet, so it cannot fail on a stale one), and
            # commits when it ends. Two statements fewer per submit.
            try:
                return [int(connection.execute(_INSERT, rows[0]).lastrowid or 0)]
            except sqlite3.Error as error:
                raise translate(error, self.path) from None
        with self._write() as connection:
            if any(job.after for job in jobs):
                return self._enqueue_after(connection, jobs, rows, now)
            # executemany cannot return ids; ids are assigned in order inside one transaction.
            connection.executemany(_INSERT, rows)
            last = connection.execute("SELECT last_insert_rowid()").fetchone()[0]
        return list(range(last - len(rows) + 1, last + 1))

    def _enqueue_after(
        self,
        connection: sqlite3.Connection,
        jobs: Sequence[NewJob],
        rows: list[tuple[Any, ...]],
        now: float,
    ) -> list[int]:
        """Insert jobs some of which wait for others (``after``): deferred, or settled now."""
        wanted = sorted({job_id for job in jobs for job_id in job.after})
        statuses: dict[int, str] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            found = connection.execute(f"SELECT id, status FROM jobs WHERE id IN ({marks})", chunk)
            statuses.update(found.fetchall())
        after_found(wanted, statuses)
        ids = []
        for job, row in zip(jobs, rows, strict=True):
            status, error, waiting = after_start(job.after, statuses)
            values = list(row)
            if status is not None:
                values[2] = status
            job_id = connection.execute(_INSERT_ONE, values).fetchone()[0]
            ids.append(job_id)
            if error is not None:
                connection.execute(
                    "UPDATE jobs SET finished_at = ?, error = ? WHERE id = ?", (now, error, job_id)
                )
            elif waiting:
                connection.executemany(
                    "INSERT OR IGNORE INTO job_dependencies (after_id, job_id) VALUES (?, ?)",
                    [(after_id, job_id) for after_id in waiting],
                )
        return ids

    # -- the worker's hot path -------------------------------------------------------------

    def claim(
        self,
        worker_id: str,
        queues: Sequence[str] | None,
        limit: int,
        *,
        commands: str = "also",
    ) -> list[ClaimedJob]:
        if limit <= 0:
            return []
        with self._write() as connection:
            return self._claim(connection, worker_id, queues, limit, commands)

    def complete(self, outcomes: Sequence[Outcome]) -> list[bool]:
        with self._write() as connection:
            return self._complete(connection, outcomes)

    def complete_and_claim(
        self,
        outcomes: Sequence[Outcome],
        worker_id: str,
        queues: Sequence[str] | None,
        limit: int,
        *,
        commands: str = "also",
    ) -> tuple[list[bool], list[ClaimedJob]]:
        if not outcomes and limit <= 0:
            return [], []
        with self._write() as connection:
            applied = self._complete(connection, outcomes)
            jobs = []
            if limit > 0:
                jobs = self._claim(connection, worker_id, queues, limit, commands)
        return applied, jobs

    def _claim(
        self,
        connection: sqlite3.Connection,
        worker_id: str,
        queues: Sequence[str] | None,
        limit: int,
        commands: str,
    ) -> list[ClaimedJob]:
        if not connection.execute("SELECT 1 FROM workers WHERE id = ?", (worker_id,)).fetchone():
            return []  # reaped: a claim would hold jobs nobody runs or recovers
        now = time.time()
        if connection.execute(_DUE_EXISTS, (now,)).fetchone():
            connection.execute(_PROMOTE, (now,))
        if not queues:
            candidates = connection.execute(_CANDIDATES_IN_ORDER[commands], (limit,)).fetchall()
        else:
            # The best :limit of each queue, merged: the best :limit overall are among them.
            candidates = []
            for name in queues:
                found = connection.execute(_CANDIDATES[commands], (name, limit)).fetchall()
                candidates += found
            if len(queues) > 1:
                candidates.sort(key=lambda row: (-row[1], row[2], row[0]))
                del candidates[limit:]
        if not candidates:
            return []
        ids = ",".join(str(row[0]) for row in candidates)
        if self._has_json(connection):
            # The ids as one JSON parameter: one prepared statement, whatever the batch size.
            rows = connection.execute(_TAKE, (worker_id, now, f"[{ids}]")).fetchall()
        else:  # an SQLite built without its JSON functions (before 3.38 they were optional)
            take = _TAKE.replace("SELECT value FROM json_each(?)", ids)
            rows = connection.execute(take, (worker_id, now)).fetchall()
        jobs = [ClaimedJob(*row) for row in rows]
        for job in jobs:
            job.started_at = now
        jobs.sort(key=lambda job: (-job.priority, job.id))
        return jobs

    def _has_json(self, connection: sqlite3.Connection) -> bool:
        known = getattr(self, "_json_functions", None)
        if known is None:
            try:
                connection.execute("SELECT value FROM json_each('[1]')").fetchall()
                known = True
            except sqlite3.OperationalError:
                known = False
            self._json_functions = known
        return known

    def _complete(self, connection: sqlite3.Connection, outcomes: Sequence[Outcome]) -> list[bool]:
        applied = [False] * len(outcomes)
        ended: dict[int, str] = {}  # jobs this batch finished: those waiting for them settle
        for chunk in outcome_chunks(outcomes, _COMPLETE_CHUNK):
            parameters: list[Any] = []
            for index in chunk.values():
                outcome = outcomes[index]
                parameters += (
                    outcome.job_id,
                    outcome.worker_id,
                    outcome.claim,
                    outcome.status,
                    outcome.result,
                    outcome.error,
                    outcome.finished_at if outcome.status in TERMINAL else None,
                    outcome.run_at,
                    1 if outcome.refund else 0,
                )
            values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
            sql = _COMPLETE.format(values=values)
            parameters += (CANCELLED_RUNNING, time.time())  # the two ? after the VALUES
            rows = connection.execute(sql, parameters).fetchall()
            for job_id, status in rows:
                applied[chunk[job_id]] = True
                if status in TERMINAL:
                    ended[job_id] = status
            fault("mid_complete")
        if ended:
            self._settle(connection, ended)
        return applied

    def _settle(self, connection: sqlite3.Connection, ended: dict[int, str]) -> None:
        """Jobs waiting for ``ended`` (id -> terminal status): release those whose every
        dependency has now succeeded; cancel those whose dependency failed or was cancelled,
        and so on down the chain."""
        now = time.time()
        while ended:
            ids = list(ended)
            edges: list[tuple[int, int]] = []
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                edges += connection.execute(
                    f"SELECT after_id, job_id FROM job_dependencies WHERE after_id IN ({marks})",
                    chunk,
                ).fetchall()
            cancelled: dict[int, str] = {}
            for after_id, job_id in edges:
                status = ended[after_id]
                if status == "succeeded":
                    connection.execute(
                        "DELETE FROM job_dependencies WHERE after_id = ? AND job_id = ?",
                        (after_id, job_id),
                    )
                    connection.execute(
                        "UPDATE jobs SET status = CASE WHEN run_at > ? THEN 'scheduled'"
                        " ELSE 'queued' END WHERE id = ? AND status = 'deferred' AND NOT EXISTS"
                        " (SELECT 1 FROM job_dependencies WHERE job_id = ?)",
                        (now, job_id, job_id),
                    )
                    continue
                connection.execute("DELETE FROM job_dependencies WHERE job_id = ?", (job_id,))
                changed = connection.execute(
                    "UPDATE jobs SET status = 'cancelled', finished_at = ?, error = ?"
                    " WHERE id = ? AND status = 'deferred'",
                    (now, dependency_error(after_id, status), job_id),
                ).rowcount
                if changed:
                    cancelled[job_id] = "cancelled"
            ended = cancelled

    def changed(self) -> bool:
        connection = self._connection()
        try:
            version = connection.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as error:
            raise translate(error, self.path) from None
        previous, self._local.data_version = self._local.data_version, version
        return version != previous

    def _queue_filter(self, queues: Sequence[str] | None) -> tuple[str, list[str]]:
        if not queues:
            return "", []
        return f" AND queue IN ({', '.join('?' * len(queues))})", list(queues)

    def next_run_at(self, queues: Sequence[str] | None, *, commands: str = "also") -> float | None:
        where, parameters = self._queue_filter(queues)
        index, waiting = _QUEUED[commands]
        task = _TASKS[commands]
        # A queued job is runnable now; its run_at is when it was submitted or came due.
        rows = self._read(
            "SELECT MIN(run_at) FROM (SELECT MIN(run_at) AS run_at FROM jobs"
            f" INDEXED BY {index} WHERE {waiting}{where}"
            " UNION ALL SELECT MIN(run_at) FROM jobs INDEXED BY jobs_scheduled"
            f" WHERE status = 'scheduled'{task}{where})",
            parameters * 2,
        )
        return rows[0][0]

    def runnable_count(self, queues: Sequence[str] | None, *, commands: str = "also") -> int:
        where, parameters = self._queue_filter(queues)
        index, waiting = _QUEUED[commands]
        task = _TASKS[commands]
        rows = self._read(
            f"SELECT (SELECT COUNT(*) FROM jobs INDEXED BY {index} WHERE {waiting}{where})"
            " + (SELECT COUNT(*) FROM jobs INDEXED BY jobs_scheduled"
            f" WHERE status = 'scheduled' AND run_at <= ?{task}{where})",
            [*parameters, time.time(), *parameters],
        )
        return int(rows[0][0])

    # -- workers and recovery --------------------------------------------------------------

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
        now, start = time.time(), process_start(pid)
        with self._write() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO workers (id, kind, pid, host, supervisor_pid, queues,"
                " threads, process_start, started_at, heartbeat_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    worker_id,
                    kind,
                    pid,
                    host,
                    supervisor_pid,
                    json.dumps(list(queues)) if queues else None,
                    threads,
                    start,
                    now,
                    now,
                ),
            )

    def heartbeat(self, worker_id: str) -> bool:
        with self._write() as connection:
            cursor = connection.execute(
                "UPDATE workers SET heartbeat_at = ? WHERE id = ?", (time.time(), worker_id)
            )
        return cursor.rowcount == 1

    def _release(
        self, connection: sqlite3.Connection, worker_id: str, reason: str, refund: bool
    ) -> int:
        now = time.time()
        # A job someone asked to cancel ends cancelled, whatever became of its worker.
        cancelled = connection.execute(
            "UPDATE jobs SET status = 'cancelled', finished_at = ?, error = ?"
            " WHERE status = 'running' AND worker_id = ? AND cancel_requested IS NOT NULL"
            " RETURNING id",
            (now, CANCELLED_RUNNING, worker_id),
        ).fetchall()
        if cancelled:
            self._settle(connection, {row[0]: "cancelled" for row in cancelled})
        if refund:
            cursor = connection.execute(
                "UPDATE jobs SET status = 'queued', attempts = MAX(attempts - 1, 0),"
                " worker_id = NULL, started_at = NULL"
                " WHERE status = 'running' AND worker_id = ?",
                (worker_id,),
            )
            return cursor.rowcount + len(cancelled)
        error = worker_lost(reason)
        failed = connection.execute(
            "UPDATE jobs SET status = 'failed', error = ?, finished_at = ?"
            " WHERE status = 'running' AND worker_id = ? AND attempts >= max_attempts"
            " RETURNING id",
            (error, now, worker_id),
        ).fetchall()
        if failed:
            self._settle(connection, {row[0]: "failed" for row in failed})
        queued = connection.execute(
            "UPDATE jobs SET status = 'queued', error = ?, worker_id = NULL, run_at = ?"
            " WHERE status = 'running' AND worker_id = ?",
            (error, now, worker_id),
        ).rowcount
        return len(cancelled) + len(failed) + queued

    def release_worker(self, worker_id: str, *, reason: str, refund: bool) -> int:
        with self._write() as connection:
            count = self._release(connection, worker_id, reason, refund)
            connection.execute("DELETE FROM workers WHERE id = ?", (worker_id,))
        return count

    def release_jobs(self, worker_id: str, claims: Sequence[tuple[int, int]]) -> int:
        if not claims:
            return 0
        fenced = [(job_id, claim, worker_id) for job_id, claim in claims]
        with self._write() as connection:
            cancelled = []
            for job_id, claim, worker in fenced:
                cancelled += connection.execute(
                    "UPDATE jobs SET status = 'cancelled', finished_at = ?, error = ?"
                    " WHERE id = ? AND claims = ? AND status = 'running' AND worker_id = ?"
                    " AND cancel_requested IS NOT NULL RETURNING id",
                    (time.time(), CANCELLED_RUNNING, job_id, claim, worker),
                ).fetchall()
            if cancelled:
                self._settle(connection, {row[0]: "cancelled" for row in cancelled})
            cursor = connection.executemany(
                "UPDATE jobs SET status = 'queued', attempts = MAX(attempts - 1, 0),"
                " worker_id = NULL, started_at = NULL"
                " WHERE id = ? AND claims = ? AND status = 'running' AND worker_id = ?",
                fenced,
            )
        return cursor.rowcount + len(cancelled)

    def reap(self, lease: float, host: str | None = None) -> list[str]:
        now = time.time()
        found = "SELECT id, pid, host, process_start, heartbeat_at < ? FROM workers"
        dead = [row[0] for row in self._read(found, (now - lease,)) if presumed_dead(row, host)]
        reaped = []
        with self._write() as connection:
            for worker_id in dead:
                # Again inside the lock: the worker may have heartbeated meanwhile.
                row = connection.execute(
                    f"{found} WHERE id = ?", (now - lease, worker_id)
                ).fetchone()
                reason = presumed_dead(row, host) if row is not None else None
                if reason is None:
                    continue
                self._release(connection, worker_id, reason, refund=False)
                connection.execute("DELETE FROM workers WHERE id = ?", (worker_id,))
                reaped.append(worker_id)
            # Safety net: running jobs whose worker row is gone (and past the lease).
            orphans = connection.execute(
                "SELECT DISTINCT worker_id FROM jobs WHERE status = 'running'"
                " AND started_at < ? AND worker_id NOT IN (SELECT id FROM workers)",
                (now - lease,),
            ).fetchall()
            for (worker_id,) in orphans:
                self._release(connection, worker_id, f"worker {worker_id} is gone", False)
                reaped.append(worker_id)
        return reaped

    def workers(self) -> list[WorkerRecord]:
        return [worker_record(row) for row in self._read(WORKERS)]

    # -- inspecting and managing jobs ------------------------------------------------------

    def get_job(self, job_id: int) -> JobRecord:
        rows = self._read(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise JobNotFoundError(f"no job with id {job_id}")
        record = job_record(rows[0])
        if record.status == "deferred":
            waits = "SELECT after_id FROM job_dependencies WHERE job_id = ? ORDER BY after_id"
            record.waiting_for = [row[0] for row in self._read(waits, (job_id,))]
        return record

    def job_statuses(self, job_ids: Sequence[int]) -> dict[int, str]:
        statuses: dict[int, str] = {}
        ids = list(job_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = self._read(f"SELECT id, status FROM jobs WHERE id IN ({marks})", chunk)
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
        for column, value in (("status", status), ("queue", queue), ("task", task)):
            if value is not None:
                clauses.append(f"{column} = ?")
                parameters.append(value)
        source = "jobs"
        if status in _FEW:  # few jobs, in their own index: read them, not the whole table
            source = f"jobs INDEXED BY {_FEW[status]}"
            clauses.append(f"status = '{status}'")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(
            f"SELECT {JOB_COLUMNS} FROM {source}{where} ORDER BY id DESC LIMIT ?",
            [*parameters, limit],
        )
        return [job_record(row) for row in rows]

    def counts(self) -> dict[str, Any]:
        # Each status from the index its jobs are in: no scan of the table's rows.
        rows = self._read(
            "SELECT queue, 'queued', COUNT(*) FROM jobs INDEXED BY jobs_queued"
            " WHERE status = 'queued' GROUP BY queue"
            " UNION ALL SELECT queue, 'deferred', COUNT(*) FROM jobs INDEXED BY jobs_deferred"
            " WHERE status = 'deferred' GROUP BY queue"
            " UNION ALL SELECT queue, 'scheduled', COUNT(*) FROM jobs INDEXED BY jobs_scheduled"
            " WHERE status = 'scheduled' GROUP BY queue"
            " UNION ALL SELECT queue, 'running', COUNT(*) FROM jobs INDEXED BY jobs_running"
            " WHERE status = 'running' GROUP BY queue"
            " UNION ALL SELECT queue, status, COUNT(*) FROM jobs INDEXED BY jobs_finished"
            f" WHERE {_FINISHED} GROUP BY status, queue"
        )
        return count_rows(rows)

    def retry_job(self, job_id: int) -> None:
        self._transition(
            job_id,
            ("failed", "cancelled"),
            "retried",
            "UPDATE jobs SET status = 'queued', attempts = 0, run_at = ?, result = NULL,"
            " started_at = NULL, finished_at = NULL, worker_id = NULL,"
            " cancel_requested = NULL WHERE id = ?",
        )

    def unfinished_job_ids(self) -> list[int]:
        rows = self._read(
            "SELECT id FROM jobs INDEXED BY jobs_deferred WHERE status = 'deferred'"
            " UNION ALL SELECT id FROM jobs INDEXED BY jobs_queued WHERE status = 'queued'"
            " UNION ALL SELECT id FROM jobs INDEXED BY jobs_scheduled WHERE status = 'scheduled'"
            " UNION ALL SELECT id FROM jobs INDEXED BY jobs_running WHERE status = 'running'"
        )
        return sorted(row[0] for row in rows)

    def cancel_job(self, job_id: int) -> str:
        with self._write() as connection:
            row = connection.execute(
                "SELECT status, attempts, error FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if row is None:
                raise JobNotFoundError(f"no job with id {job_id}")
            status, attempts, previous = row
            if status == "running":
                connection.execute(
                    "UPDATE jobs SET cancel_requested = COALESCE(cancel_requested, ?) WHERE id = ?",
                    (time.time(), job_id),
                )
                return "cancelling"
            if status in TERMINAL:
                raise InvalidStateError(
                    f"job {job_id} is {status}; only waiting or running jobs can be cancelled"
                )
            connection.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?, error = ? WHERE id = ?",
                (time.time(), cancelled_waiting(attempts, previous), job_id),
            )
            connection.execute("DELETE FROM job_dependencies WHERE job_id = ?", (job_id,))
            self._settle(connection, {job_id: "cancelled"})
            return "cancelled"

    def cancel_requests(self, worker_id: str) -> list[tuple[int, int]]:
        rows = self._read(
            "SELECT id, claims FROM jobs INDEXED BY jobs_running WHERE worker_id = ?"
            " AND status = 'running' AND cancel_requested IS NOT NULL",
            (worker_id,),
        )
        return [(row[0], row[1]) for row in rows]

    def _transition(self, job_id: int, allowed: tuple[str, str], verb: str, sql: str) -> None:
        """An operator's change of one job, allowed only from ``allowed`` statuses; ``sql``
        takes (now, id)."""
        with self._write() as connection:
            row = connection.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFoundError(f"no job with id {job_id}")
            if row[0] not in allowed:
                raise InvalidStateError(
                    f"job {job_id} is {row[0]}; only {' or '.join(allowed)} jobs can be {verb}"
                )
            connection.execute(sql, (time.time(), job_id))

    def purge(self, statuses: Sequence[str], older_than: float) -> int:
        # In chunks, each its own short transaction, with a pause between them: deleting a
        # million rows at once would hold the write lock for seconds, and back-to-back
        # chunks would starve workers (SQLite's busy handler sleeps while we re-take the lock).
        # The job with the highest id is never deleted: SQLite gives a new row the highest
        # id + 1, so deleting it would hand its id to the next job.
        marks = ", ".join("?" * len(statuses))
        sql = (
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_finished"
            f" WHERE {_FINISHED} AND status IN ({marks}) AND finished_at < ?"
            f" AND id < (SELECT MAX(id) FROM jobs) LIMIT {PURGE_CHUNK})"
        )
        parameters = (*statuses, time.time() - older_than)
        deleted = 0
        connection = self._connection()
        # Where SQLite is built to overwrite deleted rows (Debian's is), every freed page would
        # be written again, zeroed: deleting would need as much room in the WAL as the jobs
        # took, and on a full disk purge could not free anything. FAST zeroes what is written
        # anyway (the rows' own pages), not the overflow pages large arguments and results
        # took; those are reused by later jobs. The file is readable by its owner alone.
        secure = connection.execute("PRAGMA secure_delete").fetchone()[0]
        connection.execute("PRAGMA secure_delete = FAST")
        try:
            while True:
                with self._write() as connection:
                    count = connection.execute(sql, parameters).rowcount
                deleted += count
                if count < PURGE_CHUNK:
                    break
                time.sleep(PURGE_PAUSE)
        finally:
            connection.execute(f"PRAGMA secure_delete = {int(secure)}")
        return deleted

    def describe(self, *, integrity: bool = False) -> dict[str, Any]:
        return {
            "backend": "sqlite",
            "path": str(self.path.resolve()),
            "synchronous": self.synchronous.lower(),
            "busy_timeout_ms": self.busy_timeout_ms,
            "sqlite_version": sqlite3.sqlite_version,
            **describe_file(self.path, integrity=integrity),
        }
