"""What every backend writes the same way: the errors stored on cancelled jobs, how a batch
of outcomes is split into statements, and whether a worker's process still exists."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

from ..models import Outcome

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
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux) or a race: kill(0) said it exists
    return state not in (b"Z", b"X")
