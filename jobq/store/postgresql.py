"""The PostgreSQL driver: the same jobs and workers as SQLite, shared by workers on many hosts.
The state machine is the core's (:mod:`.core`); here is what many writers at once do their
own way.

Claims take rows with ``FOR UPDATE SKIP LOCKED``, so concurrent workers never wait for each
other's jobs; a batch of outcomes is one fenced ``UPDATE ... FROM unnest(...)``. Every time
is the database's clock (:data:`NOW`): hosts' clocks never meet. Connections, the schema and
LISTEN/NOTIFY live in :mod:`.postgresql_connections`.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..errors import (
    ConnectionLostError,
    DatabaseBusyError,
)
from ..faults import fault
from ..models import SHELL_TASK, TERMINAL, ClaimedJob, NewJob, Outcome, counted
from .config import DatabaseConfig
from .core import Dialect, StoreCore, release_statement
from .postgresql_connections import NOW, PostgreSQLConnections
from .records import (
    CANCELLED_RUNNING,
    after_found,
    after_start,
    outcome_chunks,
)

T = TypeVar("T")
log = logging.getLogger("jobq.store")

PURGE_CHUNK = 5000  # rows deleted per transaction by purge
PURGE_PAUSE = 0.01  # seconds between chunks

_ENDED = "('succeeded', 'failed', 'cancelled')"

# A delay (seconds from now, by the submitting host's reckoning) becomes a time on the
# database's clock. Rows come back in the order of the arrays (WITH ORDINALITY).
_INSERT = f"""
INSERT INTO jobs (task, queue, status, priority, args, kwargs, max_attempts, timeout,
    run_at, created_at)
SELECT task, queue,
    CASE WHEN status IS NOT NULL THEN status WHEN delay > 0 THEN 'scheduled' ELSE 'queued' END,
    priority, args, kwargs, max_attempts, timeout, {NOW} + GREATEST(COALESCE(delay, 0), 0), {NOW}
FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::text[], %s::text[],
    %s::bigint[], %s::float8[], %s::float8[]) WITH ORDINALITY
    AS new(task, queue, status, priority, args, kwargs, max_attempts, timeout, delay, position)
ORDER BY position
RETURNING id
"""

# A submit without dependencies: one statement in a transaction of its own, waking the
# listeners as it commits (one round trip instead of BEGIN, INSERT, NOTIFY, COMMIT).
_SUBMIT = f"""
WITH new AS ({_INSERT}), wake AS (SELECT pg_notify(%s, ''))
SELECT new.id FROM new, wake ORDER BY new.id
"""

# Scheduled jobs whose time has come join their queue, in the claim's own transaction.
_PROMOTE = f"""
UPDATE jobs SET status = 'queued'
WHERE id IN (SELECT id FROM jobs WHERE status = 'scheduled' AND run_at <= {NOW}
             AND EXISTS (SELECT 1 FROM workers WHERE id = %s)
             ORDER BY run_at LIMIT 1000 FOR UPDATE SKIP LOCKED)
"""

# The best queued jobs no other transaction holds, taken in one statement. A reaped worker
# (its row gone) takes nothing: it would hold jobs that nobody runs or recovers.
_TAKE = f"""
UPDATE jobs SET status = 'running', worker_id = %(worker)s, attempts = attempts + 1,
    claims = claims + 1, started_at = {NOW}, finished_at = NULL, claim_token = %(token)s
WHERE id IN (
    SELECT id FROM jobs
    WHERE status = 'queued'{{where}}
        AND EXISTS (SELECT 1 FROM workers WHERE id = %(worker)s)
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
RETURNING id, task, queue, args, kwargs, attempts, max_attempts, timeout, priority, claims,
    started_at
"""

# Fenced like SQLite's: an outcome applies only while its job is running, held by this worker,
# under this claim. A job asked to cancel that would go back to waiting ends cancelled. The
# same statement wakes the listeners. The jobs that waited for the finished ones are settled
# by later statements: this one's snapshot may predate a dependency row that an enqueue it
# waited for (FOR SHARE) has just committed.
_COMPLETE = f"""
WITH done AS (
    UPDATE jobs SET status = CASE WHEN jobs.cancel_requested IS NOT NULL
            AND outcome.status NOT IN {_ENDED} THEN 'cancelled' ELSE outcome.status END,
        result = outcome.result,
        error = CASE WHEN jobs.cancel_requested IS NOT NULL AND outcome.status NOT IN {_ENDED}
            THEN %s WHEN outcome.refund THEN jobs.error ELSE outcome.error END,
        finished_at = CASE WHEN outcome.status IN {_ENDED} OR jobs.cancel_requested IS NOT NULL
            THEN {NOW} END,
        run_at = CASE WHEN outcome.delay IS NULL THEN jobs.run_at
            ELSE {NOW} + GREATEST(outcome.delay, 0) END,
        attempts = GREATEST(jobs.attempts - CASE WHEN outcome.refund THEN 1 ELSE 0 END, 0),
        worker_id = CASE WHEN outcome.status IN {_ENDED} THEN jobs.worker_id END,
        claim_token = %s
    FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::text[], %s::text[], %s::text[],
        %s::float8[], %s::boolean[]) AS outcome(id, worker, claim, status, result, error, delay,
        refund)
    WHERE jobs.id = outcome.id AND jobs.status = 'running' AND jobs.worker_id = outcome.worker
        AND jobs.claims = outcome.claim
    RETURNING jobs.id, jobs.status
),
wake AS (SELECT pg_notify(%s, '') WHERE EXISTS (SELECT 1 FROM done))
SELECT done.id, done.status FROM done LEFT JOIN wake ON true
"""
_COMPLETE_CHUNK = 1000

# A claim cut off at its commit may have taken jobs nobody knows it holds. Its token is kept
# until a transaction that handed such jobs back has committed, and UNSURE_FOR seconds more
# (outcomes sent again are recognised by it meanwhile); at most UNSURE_MAX tokens are kept.
UNSURE_FOR = 300.0
UNSURE_MAX = 10_000


# Jobs of lost claims: handed back, or cancelled if someone asked to cancel them meanwhile.
_RECOVER = release_statement("jobs.claim_token = ANY(?)", refund=True)


def _delay(at: float | None) -> float | None:
    """A host's absolute time as seconds from now (the database adds its own now)."""
    return None if at is None else at - time.time()


def _columns(jobs: Sequence[NewJob], statuses: Sequence[str | None]) -> list[list[Any]]:
    """The new jobs as the arrays _INSERT unnests, one per column."""
    columns: list[list[Any]] = [[] for _ in range(9)]
    for job, status in zip(jobs, statuses, strict=True):
        values = (
            job.task,
            job.queue,
            status,
            job.priority,
            job.args,
            job.kwargs,
            job.max_attempts,
            job.timeout,
            _delay(job.run_at),
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return columns


class PostgreSQLStore(PostgreSQLConnections, StoreCore):
    """The Store interface on one PostgreSQL database (jobq's own schema in it): the core's
    state machine, and claims and outcomes for many hosts at once."""

    dialect = Dialect(
        mark="%s",
        now=NOW,
        clock="date_part('epoch', clock_timestamp())",
        greatest="GREATEST",
        lock=" FOR UPDATE",
        hints=False,
        lists="array",
    )

    def __init__(
        self, config: DatabaseConfig, *, create: bool = True, migrate: bool = True
    ) -> None:
        self._unsure: dict[int, float] = {}  # token of a lost commit -> when to forget it
        self._unsure_lock = threading.Lock()
        super().__init__(config, create=create, migrate=migrate)

    def _guarded(self, work: Callable[[Any, int], T]) -> T:
        """``work(connection, token)`` in one transaction that makes up for earlier commits
        lost with their connection; if this one is lost too, its token is remembered."""
        token = secrets.randbits(63)
        begun = False  # a failed connect or BEGIN sent nothing: nothing to be unsure of
        try:
            with self._write() as connection:
                begun = True
                recovered = self._recover(connection)
                result = work(connection, token)
        except ConnectionLostError:
            if not begun:
                raise
            with self._unsure_lock:
                self._unsure[token] = math.inf  # until a recovery with it has committed
                if len(self._unsure) > UNSURE_MAX:  # drop recovered ones first, oldest first
                    by_age = sorted(self._unsure, key=lambda known: self._unsure[known])
                    for known in by_age[: len(self._unsure) - UNSURE_MAX]:
                        del self._unsure[known]
            raise
        if recovered:
            until = time.monotonic() + UNSURE_FOR
            with self._unsure_lock:
                for used in recovered:
                    if used in self._unsure:
                        self._unsure[used] = min(self._unsure[used], until)
        return result

    def _unsure_tokens(self) -> list[int]:
        if not self._unsure:
            return []
        now = time.monotonic()
        with self._unsure_lock:
            for token, until in list(self._unsure.items()):
                if until < now:
                    del self._unsure[token]
            return list(self._unsure)

    def _recover(self, connection: Any) -> list[int]:
        """Hand back the jobs of lost claims; returns the tokens it looked for."""
        tokens = self._unsure_tokens()
        if not tokens:
            return []
        rows = self._run(connection, _RECOVER, (CANCELLED_RUNNING, tokens)).fetchall()
        if rows:
            log.warning(
                "handing back %s claimed by a commit lost with its connection",
                counted(len(rows), "job"),
            )
            self._settle_released(connection, rows)
            self._notify(connection)
        return tokens

    # -- submitting ------------------------------------------------------------------------

    def enqueue(self, jobs: Sequence[NewJob]) -> list[int]:
        if not jobs:
            return []
        if not any(job.after for job in jobs):
            columns = _columns(jobs, [None] * len(jobs))
            return [row[0] for row in self._read(_SUBMIT, [*columns, self.channel])]
        return self._retried(lambda: self._enqueue_after(jobs))

    def _enqueue_after(self, jobs: Sequence[NewJob]) -> list[int]:
        with self._write() as connection:
            found, statuses = self._after_statuses(connection, jobs)
            rows = connection.execute(_INSERT, _columns(jobs, statuses)).fetchall()
            ids = sorted(row[0] for row in rows)  # identities follow the insert order
            self._record_after(connection, jobs, ids, found)
            self._notify(connection)
        return ids

    def _retried(self, call: Callable[[], T]) -> T:
        """A library call that a concurrent transaction can deadlock (PostgreSQL then rolls
        one of them back): tried again, up to three times in all. Workers retry their own."""
        for attempt in range(3):
            try:
                return call()
            except DatabaseBusyError:
                if attempt == 2:
                    raise
                time.sleep(0.02 * (attempt + 1))
        raise AssertionError("unreachable")

    @staticmethod
    def _after_statuses(
        connection: Any, jobs: Sequence[NewJob]
    ) -> tuple[dict[int, str], list[str | None]]:
        """The status of each job waited for, and each new job's first status: deferred,
        cancelled, or None (queued or scheduled).

        The jobs waited for are locked (FOR SHARE) until this commits: one finishing meanwhile
        settles after us and sees our dependency rows.
        """
        wanted = sorted({job_id for job in jobs for job_id in job.after})
        found = dict(
            connection.execute(
                "SELECT id, status FROM jobs WHERE id = ANY(%s) ORDER BY id FOR SHARE",
                (wanted,),
            ).fetchall()
        )
        after_found(wanted, found)
        return found, [after_start(job.after, found)[0] for job in jobs]

    @staticmethod
    def _record_after(
        connection: Any,
        jobs: Sequence[NewJob],
        ids: list[int],
        found: dict[int, str],
    ) -> None:
        for job, job_id in zip(jobs, ids, strict=True):
            _, error, waiting = after_start(job.after, found)
            if error is not None:
                connection.execute(
                    f"UPDATE jobs SET finished_at = {NOW}, error = %s WHERE id = %s",
                    (error, job_id),
                )
            elif waiting:
                connection.execute(
                    "INSERT INTO job_dependencies (after_id, job_id)"
                    " SELECT unnest(%s::bigint[]), %s ON CONFLICT DO NOTHING",
                    (waiting, job_id),
                )

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
        return self._guarded(
            lambda connection, token: self._claim(
                connection, token, worker_id, queues, limit, commands
            )
        )

    def complete(self, outcomes: Sequence[Outcome]) -> list[bool]:
        return self._guarded(lambda connection, token: self._complete(connection, token, outcomes))

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

        def both(connection: Any, token: int) -> tuple[list[bool], list[ClaimedJob]]:
            applied = self._complete(connection, token, outcomes)
            jobs = []
            if limit > 0:
                jobs = self._claim(connection, token, worker_id, queues, limit, commands)
            return applied, jobs

        return self._guarded(both)

    def _claim(
        self,
        connection: Any,
        token: int,
        worker_id: str,
        queues: Sequence[str] | None,
        limit: int,
        commands: str,
    ) -> list[ClaimedJob]:
        connection.execute(_PROMOTE, (worker_id,))
        where, parameters = self._filter(queues, commands)
        parameters.update(worker=worker_id, limit=limit, token=token)
        rows = connection.execute(_TAKE.format(where=where), parameters).fetchall()
        jobs = [ClaimedJob(*row) for row in rows]
        jobs.sort(key=lambda job: (-job.priority, job.id))
        return jobs

    @staticmethod
    def _filter(queues: Sequence[str] | None, commands: str) -> tuple[str, dict[str, Any]]:
        where, parameters = "", dict[str, Any]()
        if commands == "only":
            where += f" AND task = '{SHELL_TASK}'"
        elif commands == "never":
            where += f" AND task <> '{SHELL_TASK}'"
        if queues and len(queues) == 1:
            where += " AND queue = %(queue)s"
            parameters["queue"] = queues[0]
        elif queues:
            where += " AND queue = ANY(%(queues)s)"
            parameters["queues"] = list(queues)
        return where, parameters

    def _complete(self, connection: Any, token: int, outcomes: Sequence[Outcome]) -> list[bool]:
        applied = [False] * len(outcomes)
        ended: dict[int, str] = {}  # jobs this batch finished: those waiting for them settle
        for chunk in outcome_chunks(outcomes, _COMPLETE_CHUNK):
            columns: list[list[Any]] = [[] for _ in range(8)]
            for index in sorted(chunk.values(), key=lambda i: outcomes[i].job_id):
                outcome = outcomes[index]
                values = (
                    outcome.job_id,
                    outcome.worker_id,
                    outcome.claim,
                    outcome.status,
                    outcome.result,
                    outcome.error,
                    _delay(outcome.run_at),
                    outcome.refund,
                )
                for column, value in zip(columns, values, strict=True):
                    column.append(value)
            parameters = [CANCELLED_RUNNING, token, *columns, self.channel]
            for job_id, status in connection.execute(_COMPLETE, parameters):
                applied[chunk[job_id]] = True
                if status in TERMINAL:
                    ended[job_id] = status
            self._landed_before(connection, outcomes, chunk, applied)
            fault("mid_complete")
        if ended:
            self._settle(connection, ended)
        return applied

    def _landed_before(
        self,
        connection: Any,
        outcomes: Sequence[Outcome],
        chunk: dict[int, int],
        applied: list[bool],
    ) -> None:
        """Outcomes that did not apply because they already had: a completion whose commit
        was cut off with its connection, sent again. Its job no longer runs, under the same
        claim, and carries the token of that lost commit."""
        tokens = self._unsure_tokens()
        missed = [index for index in chunk.values() if not applied[index]]
        if not tokens or not missed:
            return
        rows = connection.execute(
            "SELECT jobs.id FROM jobs JOIN unnest(%s::bigint[], %s::bigint[]) AS sent(id, claim)"
            " ON jobs.id = sent.id AND jobs.claims = sent.claim"
            " WHERE jobs.status <> 'running' AND jobs.claim_token = ANY(%s)",
            (
                [outcomes[index].job_id for index in missed],
                [outcomes[index].claim for index in missed],
                tokens,
            ),
        ).fetchall()
        for (job_id,) in rows:
            applied[chunk[job_id]] = True
        if rows:
            log.info(
                "%s recorded by a commit lost with its connection", counted(len(rows), "outcome")
            )

    def next_run_at(self, queues: Sequence[str] | None, *, commands: str = "also") -> float | None:
        where, parameters = self._filter(queues, commands)
        # A queued job is runnable now; else the earliest scheduled one, as seconds from the
        # database's now, made a time on this host's clock.
        rows = self._read(
            f"SELECT CASE WHEN EXISTS (SELECT 1 FROM jobs WHERE status = 'queued'{where})"
            f" THEN 0 ELSE (SELECT MIN(run_at) FROM jobs WHERE status = 'scheduled'{where})"
            f" - {NOW} END",
            parameters,
        )
        return None if rows[0][0] is None else time.time() + rows[0][0]

    def runnable_count(self, queues: Sequence[str] | None, *, commands: str = "also") -> int:
        where, parameters = self._filter(queues, commands)
        rows = self._read(
            f"SELECT (SELECT COUNT(*) FROM jobs WHERE status = 'queued'{where})"
            " + (SELECT COUNT(*) FROM jobs WHERE status = 'scheduled'"
            f" AND run_at <= {NOW}{where})",
            parameters,
        )
        return int(rows[0][0])

    # -- purging, describing ---------------------------------------------------------------

    def purge(self, statuses: Sequence[str], older_than: float) -> int:
        # In chunks, each its own short transaction: one huge DELETE would hold its locks and
        # bloat the WAL at once. PostgreSQL never hands out an id twice (an identity column).
        query = (
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs"
            f" WHERE status IN {_ENDED} AND status = ANY(%s) AND finished_at < {NOW} - %s"
            f" LIMIT {PURGE_CHUNK})"
        )
        deleted = 0
        while True:
            count = self._execute(query, (list(statuses), older_than))
            deleted += count
            if count < PURGE_CHUNK:
                return deleted
            time.sleep(PURGE_PAUSE)

    def describe(self, *, integrity: bool = False) -> dict[str, Any]:
        tables = ("jobs", "job_dependencies", "workers", "jobq_migrations")
        counts = {table: self._read(f"SELECT COUNT(*) FROM {table}")[0][0] for table in tables}
        facts: dict[str, Any] = {
            "backend": "postgresql",
            "url": self.where,
            "schema": self.schema,
            "schema_version": self.schema_version(),
            "server_version": self._read("SHOW server_version")[0][0],
            "size_bytes": self._read(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relkind = 'r'",
                (self.schema,),
            )[0][0],
            "tables": counts,
        }
        if integrity:
            # PostgreSQL checksums and checks its own pages; the counts above read every row
            # of every table, which would have raised on a damaged one.
            facts["integrity"] = "ok"
        return facts
