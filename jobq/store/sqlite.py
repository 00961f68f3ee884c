"""The SQLite driver: jobs and workers as rows in one file, each change one ``BEGIN
IMMEDIATE`` transaction. The state machine is the core's (:mod:`.core`); here are what one
writer at a time does its own way: submitting, claiming and completing, purging.

Connections, schema checks and migrations live in :mod:`.sqlite_connections`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from ..faults import fault
from ..models import SHELL_TASK, TERMINAL, ClaimedJob, NewJob, Outcome
from .core import Dialect, StoreCore
from .records import (
    CANCELLED_RUNNING,
    after_found,
    after_start,
    outcome_chunks,
)
from .sqlite_connections import SQLiteConnections, translate
from .sqlite_files import describe_file

PURGE_CHUNK = 2000  # rows deleted per transaction by purge (a few milliseconds of work)
PURGE_PAUSE = 0.01  # seconds between chunks, for workers waiting on the write lock


_INSERT = (
    "INSERT INTO jobs (task, queue, status, priority, args, kwargs, max_attempts,"
    " timeout, run_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_INSERT_ONE = _INSERT + " RETURNING id"


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


def has_json() -> bool:
    """Whether this process's SQLite has its JSON functions (built in since 3.38; optional,
    and nearly always there, before)."""
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("SELECT value FROM json_each('[1]')").fetchall()
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        connection.close()


class SQLiteStore(SQLiteConnections, StoreCore):
    """The Store interface on one SQLite file: the core's state machine, and the hot path of
    one writer at a time."""

    dialect = Dialect(
        mark="?",
        now="jobq_now()",  # time.time(), registered on each connection
        clock="jobq_now()",
        greatest="MAX",
        lock="",  # one writer: BEGIN IMMEDIATE holds every row
        hints=True,
        lists="json" if has_json() else "inline",
    )

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
        if self.dialect.lists == "json":
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

    # -- purging, describing ---------------------------------------------------------------

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
