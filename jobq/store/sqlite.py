"""The SQLite store: jobs and workers as rows, each change one ``BEGIN IMMEDIATE`` transaction.

Connections, schema checks and migrations live in :mod:`.sqlite_connections`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import (
    InvalidStateError,
    JobNotFoundError,
)
from ..faults import fault
from ..models import STATUSES, TERMINAL, ClaimedJob, JobRecord, NewJob, Outcome, WorkerRecord
from .base import Store
from .sqlite_connections import SQLiteConnections, translate

PURGE_CHUNK = 2000  # rows deleted per transaction by purge (a few milliseconds of work)
PURGE_PAUSE = 0.01  # seconds between chunks, for workers waiting on the write lock

_JOB_COLUMNS = (
    "id, task, queue, status, priority, attempts, max_attempts, args, kwargs, result, error,"
    " timeout, run_at, created_at, started_at, finished_at, worker_id"
)

_CLAIM = """
UPDATE jobs SET status = 'running', worker_id = :worker, attempts = attempts + 1,
    claims = claims + 1, started_at = :now, finished_at = NULL
WHERE id IN (
    SELECT id FROM jobs INDEXED BY {index}
    WHERE status IN ('queued', 'scheduled') AND run_at <= :now {queues}
    ORDER BY priority DESC, run_at, id
    LIMIT :limit
) AND EXISTS (SELECT 1 FROM workers WHERE id = :worker)
RETURNING id, task, queue, args, kwargs, attempts, max_attempts, timeout, priority, claims
"""

# Fenced: applies only while the job is still running and held by this worker.
_COMPLETE = """
UPDATE jobs SET status = :status,
    result = :result,
    error = CASE WHEN :refund THEN error ELSE :error END,
    finished_at = :finished_at,
    run_at = COALESCE(:run_at, run_at),
    attempts = MAX(attempts - :refund, 0),
    worker_id = CASE WHEN :status IN ('succeeded', 'failed', 'cancelled')
        THEN worker_id ELSE NULL END
WHERE id = :id AND status = 'running' AND worker_id = :worker AND claims = :claim
"""


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


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
        sql = (
            "INSERT INTO jobs (task, queue, status, priority, args, kwargs, max_attempts,"
            " timeout, run_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
        )
        with self._write() as connection:
            if len(rows) == 1:
                return [connection.execute(sql, rows[0]).fetchone()[0]]
            # executemany cannot return ids; ids are assigned in order inside one transaction.
            connection.executemany(sql.removesuffix(" RETURNING id"), rows)
            last = connection.execute("SELECT last_insert_rowid()").fetchone()[0]
        return list(range(last - len(rows) + 1, last + 1))

    # -- the worker's hot path -------------------------------------------------------------

    def claim(self, worker_id: str, queues: Sequence[str] | None, limit: int) -> list[ClaimedJob]:
        if limit <= 0:
            return []
        with self._write() as connection:
            return self._claim(connection, worker_id, queues, limit)

    def complete(self, outcomes: Sequence[Outcome]) -> list[bool]:
        with self._write() as connection:
            return self._complete(connection, outcomes)

    def complete_and_claim(
        self,
        outcomes: Sequence[Outcome],
        worker_id: str,
        queues: Sequence[str] | None,
        limit: int,
    ) -> tuple[list[bool], list[ClaimedJob]]:
        if not outcomes and limit <= 0:
            return [], []
        with self._write() as connection:
            applied = self._complete(connection, outcomes)
            jobs = self._claim(connection, worker_id, queues, limit) if limit > 0 else []
        return applied, jobs

    def _claim(
        self,
        connection: sqlite3.Connection,
        worker_id: str,
        queues: Sequence[str] | None,
        limit: int,
    ) -> list[ClaimedJob]:
        now = time.time()
        parameters: dict[str, Any] = {"worker": worker_id, "now": now, "limit": limit}
        filter_sql = ""
        # Name the index: without statistics the planner may pick jobs_status and sort every
        # waiting job on each claim. One queue walks its own index in claim order; several
        # queues walk the all-queue index in claim order and skip other queues' rows.
        index = "jobs_waiting_any_queue"
        if queues:
            names = [f":q{number}" for number in range(len(queues))]
            filter_sql = f"AND queue IN ({', '.join(names)})"
            parameters.update({f"q{number}": queue for number, queue in enumerate(queues)})
            if len(queues) == 1:
                index = "jobs_waiting"
        sql = _CLAIM.format(index=index, queues=filter_sql)
        rows = connection.execute(sql, parameters).fetchall()
        jobs = [ClaimedJob(*row) for row in rows]
        for job in jobs:
            job.started_at = now
        jobs.sort(key=lambda job: (-job.priority, job.id))
        return jobs

    def _complete(self, connection: sqlite3.Connection, outcomes: Sequence[Outcome]) -> list[bool]:
        applied = []
        for outcome in outcomes:
            cursor = connection.execute(
                _COMPLETE,
                {
                    "id": outcome.job_id,
                    "worker": outcome.worker_id,
                    "claim": outcome.claim,
                    "status": outcome.status,
                    "result": outcome.result,
                    "error": outcome.error,
                    "finished_at": outcome.finished_at if outcome.status in TERMINAL else None,
                    "run_at": outcome.run_at,
                    "refund": 1 if outcome.refund else 0,
                },
            )
            applied.append(cursor.rowcount == 1)
            fault("mid_complete")
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

    def next_run_at(self, queues: Sequence[str] | None) -> float | None:
        where, parameters = self._queue_filter(queues)
        rows = self._read(
            "SELECT MIN(run_at) FROM jobs INDEXED BY jobs_due"
            f" WHERE status IN ('queued', 'scheduled'){where}",
            parameters,
        )
        return rows[0][0]

    def runnable_count(self, queues: Sequence[str] | None) -> int:
        where, parameters = self._queue_filter(queues)
        rows = self._read(
            "SELECT COUNT(*) FROM jobs INDEXED BY jobs_due WHERE status IN ('queued', 'scheduled')"
            f" AND run_at <= ?{where}",
            [time.time(), *parameters],
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
        now = time.time()
        with self._write() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO workers (id, kind, pid, host, supervisor_pid, queues,"
                " threads, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    worker_id,
                    kind,
                    pid,
                    host,
                    supervisor_pid,
                    json.dumps(list(queues)) if queues else None,
                    threads,
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
        if refund:
            cursor = connection.execute(
                "UPDATE jobs SET status = 'queued', attempts = MAX(attempts - 1, 0),"
                " worker_id = NULL, started_at = NULL"
                " WHERE status = 'running' AND worker_id = ?",
                (worker_id,),
            )
            return cursor.rowcount
        now = time.time()
        error = json.dumps({"type": "WorkerLost", "message": reason, "traceback": None})
        failed = connection.execute(
            "UPDATE jobs SET status = 'failed', error = ?, finished_at = ?"
            " WHERE status = 'running' AND worker_id = ? AND attempts >= max_attempts",
            (error, now, worker_id),
        ).rowcount
        queued = connection.execute(
            "UPDATE jobs SET status = 'queued', error = ?, worker_id = NULL, run_at = ?"
            " WHERE status = 'running' AND worker_id = ?",
            (error, now, worker_id),
        ).rowcount
        return failed + queued

    def release_worker(self, worker_id: str, *, reason: str, refund: bool) -> int:
        with self._write() as connection:
            count = self._release(connection, worker_id, reason, refund)
            connection.execute("DELETE FROM workers WHERE id = ?", (worker_id,))
        return count

    def release_jobs(self, worker_id: str, claims: Sequence[tuple[int, int]]) -> int:
        if not claims:
            return 0
        with self._write() as connection:
            cursor = connection.executemany(
                "UPDATE jobs SET status = 'queued', attempts = MAX(attempts - 1, 0),"
                " worker_id = NULL, started_at = NULL"
                " WHERE id = ? AND claims = ? AND status = 'running' AND worker_id = ?",
                [(job_id, claim, worker_id) for job_id, claim in claims],
            )
        return cursor.rowcount

    def reap(self, lease: float, host: str | None = None) -> list[str]:
        now = time.time()
        rows = self._read("SELECT id, pid, host, heartbeat_at FROM workers")
        dead = []
        for worker_id, pid, worker_host, heartbeat_at in rows:
            if heartbeat_at < now - lease:
                dead.append((worker_id, f"worker {worker_id} stopped heartbeating"))
            elif host is not None and worker_host == host and not _pid_alive(pid):
                dead.append((worker_id, f"worker process {pid} on {host} is gone"))
        reaped = []
        with self._write() as connection:
            for worker_id, reason in dead:
                # Re-check inside the lock: the worker may have heartbeated meanwhile.
                row = connection.execute(
                    "SELECT heartbeat_at, pid, host FROM workers WHERE id = ?", (worker_id,)
                ).fetchone()
                if row is None:
                    continue
                if row[0] >= now - lease and not (host == row[2] and not _pid_alive(row[1])):
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
        rows = self._read(
            "SELECT w.id, w.pid, w.host, w.supervisor_pid, w.queues, w.threads, w.started_at,"
            " w.heartbeat_at, (SELECT COUNT(*) FROM jobs j WHERE j.status = 'running'"
            " AND j.worker_id = w.id) FROM workers w WHERE w.kind = 'worker'"
            " ORDER BY w.started_at, w.id"
        )
        return [
            WorkerRecord(
                id=row[0],
                pid=row[1],
                host=row[2],
                supervisor_pid=row[3],
                queues=_load(row[4]),
                threads=row[5],
                started_at=row[6],
                heartbeat_at=row[7],
                running=row[8],
            )
            for row in rows
        ]

    # -- inspecting and managing jobs ------------------------------------------------------

    @staticmethod
    def _record(row: Sequence[Any]) -> JobRecord:
        return JobRecord(
            id=row[0],
            task=row[1],
            queue=row[2],
            status=row[3],
            priority=row[4],
            attempts=row[5],
            max_attempts=row[6],
            args=json.loads(row[7]),
            kwargs=json.loads(row[8]),
            result=_load(row[9]),
            error=_load(row[10]),
            timeout=row[11],
            run_at=row[12],
            created_at=row[13],
            started_at=row[14],
            finished_at=row[15],
            worker=row[16],
        )

    def get_job(self, job_id: int) -> JobRecord:
        rows = self._read(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise JobNotFoundError(f"no job with id {job_id}")
        return self._record(rows[0])

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
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(
            f"SELECT {_JOB_COLUMNS} FROM jobs{where} ORDER BY id DESC LIMIT ?",
            [*parameters, limit],
        )
        return [self._record(row) for row in rows]

    def counts(self) -> dict[str, Any]:
        rows = self._read("SELECT queue, status, COUNT(*) FROM jobs GROUP BY queue, status")
        counts = dict.fromkeys(STATUSES, 0)
        queues: dict[str, dict[str, int]] = {}
        for queue, status, count in rows:
            counts[status] += count
            queues.setdefault(queue, dict.fromkeys(STATUSES, 0))[status] = count
        return {"counts": counts, "queues": dict(sorted(queues.items()))}

    def retry_job(self, job_id: int) -> None:
        self._transition(
            job_id,
            ("failed", "cancelled"),
            "retried",
            "UPDATE jobs SET status = 'queued', attempts = 0, run_at = ?, result = NULL,"
            " started_at = NULL, finished_at = NULL, worker_id = NULL WHERE id = ?",
        )

    def cancel_job(self, job_id: int) -> None:
        self._transition(
            job_id,
            ("queued", "scheduled"),
            "cancelled",
            "UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE id = ?",
        )

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
        marks = ", ".join("?" * len(statuses))
        sql = (
            f"DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE status IN ({marks})"
            f" AND finished_at < ? LIMIT {PURGE_CHUNK})"
        )
        parameters = (*statuses, time.time() - older_than)
        deleted = 0
        while True:
            with self._write() as connection:
                count = connection.execute(sql, parameters).rowcount
            deleted += count
            if count < PURGE_CHUNK:
                return deleted
            time.sleep(PURGE_PAUSE)

    def describe(self, *, integrity: bool = False) -> dict[str, Any]:
        import sqlite_utils  # only operators' `jobq check` needs it: keep it off workers

        connection = self._connection()
        database = sqlite_utils.Database(connection)
        wal = Path(f"{self.path}-wal")
        facts: dict[str, Any] = {
            "backend": "sqlite",
            "path": str(self.path.resolve()),
            "schema_version": self.schema_version(),
            "journal_mode": database.journal_mode,
            "synchronous": self.synchronous.lower(),
            "busy_timeout_ms": self.busy_timeout_ms,
            "sqlite_version": sqlite3.sqlite_version,
            "size_bytes": self.path.stat().st_size,
            "wal_bytes": wal.stat().st_size if wal.exists() else 0,
            "tables": {table.name: table.count for table in database.tables},
        }
        if integrity:
            rows = self._read("PRAGMA integrity_check")
            facts["integrity"] = "; ".join(str(row[0]) for row in rows)
        return facts


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (dead, not yet reaped: an orphan waits for init to reap it) is dead to us.
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux) or a race: kill(0) said it exists
    return state not in (b"Z", b"X")
