"""Records that cross the store interface.

The hot path (claim, execute, complete) uses plain slotted dataclasses; what users are shown
of jobs and workers is a pydantic model (``jobq.records``), imported only where a record is
made: a worker never needs pydantic to start (about 50 ms of imports).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError


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


# The task that runs shell commands (jobq submit --cmd): the store keeps an index of its
# waiting jobs for workers that run nothing else.
SHELL_TASK = "jobq.shell"

# Which shell-command jobs a worker claims: "also" (with every other job), "only" (a worker
# without an app of tasks), "never" (a worker that may not run them: a database other users
# can write, without --allow-shell). A worker claims only what it can run.
COMMANDS = ("also", "only", "never")

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


# The longest time any jobq option takes in seconds (a delay, a timeout, a lease, a grace):
# 100 years. A longer one is a mistake (1e12 typed for 1e2), and every use stays within what
# it can take: a run_at shown as a date (datetime stops at year 9999), a wait or a sleep
# (threading.TIMEOUT_MAX and time.sleep stop near 292 years).
MAX_SECONDS = 100 * 365 * 86400
MAX_SECONDS_TEXT = "100 years"


def checked_seconds(name: str, value: object, *, positive: bool = False) -> float:
    """``value`` as the seconds of option ``name``: a finite number from 0 (above 0 when
    ``positive``) to MAX_SECONDS. Anything else (nan, inf, a negative, text, True) raises
    ConfigurationError naming the option."""
    lowest = "above 0" if positive else "from 0"
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not 0 <= value <= MAX_SECONDS  # nan compares false: refused here too
        or (positive and value == 0)
    ):
        raise ConfigurationError(
            f"{name} must be a number of seconds {lowest} to {MAX_SECONDS} "
            f"({MAX_SECONDS_TEXT}), not {value!r}"
        )
    return float(value)


def seconds_text(value: float) -> str:
    """Seconds as a user would write them: 1 for 1.0, 0.5, 1209600 (never 1.2096e+06)."""
    return str(int(value)) if value == int(value) else repr(float(value))


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, plural unless one: "1 job", "3 jobs", "2 processes"."""
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun}es" if noun.endswith(("s", "sh", "ch", "x")) else f"{count} {noun}s"


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
