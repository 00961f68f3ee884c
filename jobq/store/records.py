"""What every backend writes the same way: the errors stored on cancelled jobs, how a batch
of outcomes is split into statements, and whether a worker's process still exists."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import JobNotFoundError
from ..models import STATUSES, Outcome

if TYPE_CHECKING:
    from ..records import JobRecord, WorkerRecord

GAVE_UP = ("failed", "cancelled")  # a job waiting for one of these never runs

CANCELLED_RUNNING = json.dumps(
    {"type": "Cancelled", "message": "cancelled while running (jobq cancel)", "traceback": None}
)


def cancelled_waiting(attempts: int, previous: str | None) -> str:
    """The error of a job cancelled while waiting; a retry's last error is kept in it."""
    if not attempts:
        message, trace = "cancelled before it ran (jobq cancel)", None
    else:
        last = json.loads(previous) if previous else {}
        message = "cancelled while waiting to retry (jobq cancel)"
        if last:
            message += f"; last error: {last.get('type')}: {last.get('message')}"
        trace = last.get("traceback")
    return json.dumps({"type": "Cancelled", "message": message, "traceback": trace})


def dependency_error(after_id: int, status: str) -> str:
    message = f"job {after_id}, which this job waited for, {status}"
    return json.dumps({"type": "DependencyFailed", "message": message, "traceback": None})


def after_found(wanted: Sequence[int], found: Mapping[int, str]) -> None:
    """Refuse a submit that waits (``--after``) for a job that does not exist."""
    missing = [job_id for job_id in wanted if job_id not in found]
    if missing:
        raise JobNotFoundError(
            f"no job with id {missing[0]} to wait for (after); nothing was submitted"
        )


def after_start(
    after: Sequence[int], found: Mapping[int, str]
) -> tuple[str | None, str | None, list[int]]:
    """How a new job that waits for ``after`` starts, given their statuses: its first status
    ("cancelled", "deferred", or None: queued or scheduled), the error of a cancelled one,
    and the ids it still waits for."""
    for job_id in after:
        if found[job_id] in GAVE_UP:
            return "cancelled", dependency_error(job_id, found[job_id]), []
    waiting = sorted({job_id for job_id in after if found[job_id] != "succeeded"})
    return ("deferred" if waiting else None), None, waiting


def worker_lost(reason: str) -> str:
    return json.dumps({"type": "WorkerLost", "message": reason, "traceback": None})


def load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def outcome_chunks(outcomes: Sequence[Outcome], size: int) -> Iterator[dict[int, int]]:
    """Split outcomes into statements of at most ``size``: {job id: index in ``outcomes``}.

    One outcome per job per statement (an UPDATE ... FROM applies one of several matches,
    unspecified which); a second one for the same job goes in the next, in order.
    """
    pending = list(range(len(outcomes)))
    while pending:
        chunk: dict[int, int] = {}
        later = []
        for index in pending:
            job_id = outcomes[index].job_id
            if job_id in chunk or len(chunk) >= size:
                later.append(index)
            else:
                chunk[job_id] = index
        yield chunk
        pending = later


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (dead, not yet reaped: an orphan waits for init to reap it) is dead to us.
    stat = _stat(pid)
    if stat is None:
        return True  # no /proc (not Linux) or a race: kill(0) said it exists
    return stat[0] not in (b"Z", b"X")


def _stat(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[-1].split()
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """What tells process ``pid`` from a later process given the same pid: the boot it runs
    in and its start time in clock ticks since that boot. None where /proc does not say."""
    stat = _stat(pid)
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            boot = handle.read().strip()
        return f"{boot} {int(stat[19])}" if stat is not None else None
    except (OSError, IndexError, ValueError):
        return None


def process_state(pid: int, start: str | None) -> str:
    """What became of the process a worker registered as (``pid``, ``start``) on this host:
    "gone" (exited, a zombie, or its pid given to a new process since), "frozen" (stopped by
    a signal such as SIGSTOP, or by a debugger) or "running"."""
    if not pid_alive(pid):
        return "gone"
    if start is not None and process_start(pid) not in (None, start):
        return "gone"
    stat = _stat(pid)
    return "frozen" if stat is not None and stat[0] in (b"T", b"t") else "running"


def presumed_dead(row: Sequence[Any], host: str | None) -> str | None:
    """Why a registered worker is dead, or None while it may be alive. ``row``: its id,
    pid, host, process_start and whether its heartbeat is older than a lease. On this host
    (``host``) its process decides: a running one is alive however long its heartbeat is
    held up (by a database locked or full for longer than a lease); a frozen one is dead once
    silent. Elsewhere, the heartbeat is all there is to go by."""
    worker_id, pid, worker_host, start, silent = row
    if host is not None and worker_host == host:
        state = process_state(pid, start)
        if state == "gone":
            return f"worker process {pid} on {host} is gone"
        if state == "frozen" and silent:
            return f"worker process {pid} on {host} is stopped and silent for a lease"
        return None
    return f"worker {worker_id} stopped heartbeating" if silent else None


# The columns job_record reads, in its order; and the workers query both backends share.
JOB_COLUMNS = (
    "id, task, queue, status, priority, attempts, max_attempts, args, kwargs, result, error,"
    " timeout, run_at, created_at, started_at, finished_at, worker_id"
)
WORKERS = (
    "SELECT w.id, w.pid, w.host, w.supervisor_pid, w.queues, w.threads, w.started_at,"
    " w.heartbeat_at, (SELECT COUNT(*) FROM jobs j WHERE j.status = 'running'"
    " AND j.worker_id = w.id) FROM workers w WHERE w.kind = 'worker'"
    " ORDER BY w.started_at, w.id"
)


def job_record(row: Sequence[Any]) -> JobRecord:
    """A row of JOB_COLUMNS as users see it."""
    from ..records import JobRecord  # pydantic, only where a record is shown

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
        result=load(row[9]),
        error=load(row[10]),
        timeout=row[11],
        run_at=row[12],
        created_at=row[13],
        started_at=row[14],
        finished_at=row[15],
        worker=row[16],
    )


def worker_record(row: Sequence[Any]) -> WorkerRecord:
    """A row of the WORKERS query."""
    from ..records import WorkerRecord

    return WorkerRecord(
        id=row[0],
        pid=row[1],
        host=row[2],
        supervisor_pid=row[3],
        queues=load(row[4]),
        threads=row[5],
        started_at=row[6],
        heartbeat_at=row[7],
        running=row[8],
    )


def count_rows(rows: Sequence[tuple[str, str, int]]) -> dict[str, Any]:
    """(queue, status, count) rows as ``Store.counts`` answers."""
    counts = dict.fromkeys(STATUSES, 0)
    queues: dict[str, dict[str, int]] = {}
    for queue, status, count in rows:
        counts[status] += count
        queues.setdefault(queue, dict.fromkeys(STATUSES, 0))[status] = count
    return {"counts": counts, "queues": dict(sorted(queues.items()))}
