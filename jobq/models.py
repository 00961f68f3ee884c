"""Records that cross the store interface.

The hot path (claim, execute, complete) uses plain slotted dataclasses; what users are shown
of jobs and workers is a pydantic model (``jobq.records``), imported only where a record is
made: a worker never needs pydantic to start (about 50 ms of imports).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Status(str, enum.Enum):
    DEFERRED = "deferred"  # waiting for other jobs (--after) to succeed
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


TERMINAL = (Status.SUCCEEDED.value, Status.FAILED.value, Status.CANCELLED.value)
STATUSES = tuple(status.value for status in Status)


@dataclass(slots=True)
class NewJob:
    """A validated job, ready to insert. ``args`` and ``kwargs`` are JSON text."""

    task: str
    args: str
    kwargs: str
    queue: str = "default"
    priority: int = 0
    max_attempts: int = 3
    timeout: float | None = None
    run_at: float | None = None  # unix seconds; None means now
    after: tuple[int, ...] = ()  # ids of jobs that must succeed first


@dataclass(slots=True)
class ClaimedJob:
    """A job a worker holds. ``attempts`` already counts this attempt."""

    id: int
    task: str
    queue: str
    args: str
    kwargs: str
    attempts: int
    max_attempts: int
    timeout: float | None
    priority: int = 0
    claim: int = 0  # the job's claim counter for this claim: the token outcomes are fenced on
    started_at: float = 0.0


@dataclass(slots=True)
class Outcome:
    """What happened to one attempt of a claimed job.

    ``status`` is the job's next status: ``succeeded``, ``failed``, ``scheduled`` (a retry
    after ``run_at``) or ``queued`` (handed back without counting the attempt).
    """

    job_id: int
    worker_id: str
    claim: int  # the claim this outcome belongs to (ClaimedJob.claim): part of the fence
    status: str
    result: str | None = None  # JSON text
    error: str | None = None  # JSON text: {"type", "message", "traceback"}
    run_at: float | None = None
    refund: bool = False  # give the attempt back (the job did not really run)
    finished_at: float = 0.0
    extra: Any = field(default=None, compare=False)  # carried to callbacks, never stored


def seconds_text(value: float) -> str:
    """Seconds as a user would write them: 1 for 1.0, 0.5, 1209600 (never 1.2096e+06)."""
    return str(int(value)) if value == int(value) else repr(float(value))


def record_class(module: str, name: str) -> Any:
    """``JobRecord`` or ``WorkerRecord`` (jobq.records: pydantic, imported on first use), for
    the ``__getattr__`` of a module that offers them; AttributeError for any other name."""
    if name in ("JobRecord", "WorkerRecord"):
        from . import records

        return getattr(records, name)
    raise AttributeError(f"module {module!r} has no attribute {name!r}")


def __getattr__(name: str) -> Any:
    # The records moved to jobq.records; code and pickles that name them here find them.
    return record_class(__name__, name)
