"""The exceptions jobq raises, in one tree: every one derives from :class:`JobQError`.

    JobQError
    +-- ConfigurationError
    +-- DatabaseError
    |   +-- DatabaseBusyError
    |   +-- ConnectionLostError
    |   +-- CorruptDatabaseError
    |   +-- SchemaVersionError
    +-- PayloadError
    +-- ArgumentError
    +-- UnknownTaskError
    +-- JobNotFoundError
    +-- InvalidStateError
    +-- ShellRefused
    +-- CommandError
    +-- Retry
    +-- JobFailedError
    |   +-- JobTimeout
    |   +-- WorkerLost
    |   +-- WorkerError
    +-- JobCancelledError
        +-- Cancelled
        +-- DependencyFailed

The error jobq stores with a job that it failed or cancelled itself has one of these names as
its ``type`` (a task's own exception keeps its own name): ``Job.result()`` raises the class of
that name, so ``except JobTimeout`` catches a job that ran out of time.
"""

from __future__ import annotations

from typing import Any


class JobQError(Exception):
    """Base class of every error jobq raises on purpose."""


class ConfigurationError(JobQError):
    """Raised when a database URL, an app reference or an option cannot be used."""


class DatabaseError(JobQError):
    """Raised when the database cannot be opened, read or written."""


class DatabaseBusyError(DatabaseError):
    """Raised when the database stayed locked by another process past the busy timeout.

    Nothing was written; the call can be retried.
    """


class ConnectionLostError(DatabaseError):
    """Raised when the connection to a database server failed (it restarted, the network
    dropped). A write cut off at its commit may or may not have happened; jobq's own calls
    make up for either case once they reconnect."""


class CorruptDatabaseError(DatabaseError):
    """Raised when the database file is damaged ("database disk image is malformed", "file
    is not a database"). Retrying cannot help: workers stop instead of retrying, and
    ``jobq check`` says what is wrong. Restore a backup (docs/guarantees.md)."""


class SchemaVersionError(DatabaseError):
    """Raised when the database was migrated by a newer jobq than this one."""


class PayloadError(JobQError):
    """Raised when arguments or a result cannot be stored as JSON or are too large."""


class ArgumentError(JobQError):
    """Raised when arguments do not fit the task's signature or type hints."""


class UnknownTaskError(JobQError):
    """Raised when ``JobQ.task_named`` (and so ``jobq submit --app``) is asked for a task the
    app does not have; recorded as the error of a job whose task a worker's app does not
    know."""


class JobNotFoundError(JobQError):
    """Raised when no job has the given id."""


class InvalidStateError(JobQError):
    """Raised when an operation does not apply to a job in its current status."""


class ShellRefused(JobQError):
    """Raised when a shell command may not run here (a database other users can write,
    without ``--allow-shell``); recorded as the error of such a command's job."""


class CommandError(JobQError):
    """Raised (and recorded) when a shell command ends with a non-zero exit code or a
    signal, or is stopped."""


class Retry(JobQError):
    """Raised inside a task to run it again later.

    The attempt counts toward ``max_attempts``. ``delay`` is in seconds; ``None`` uses the
    task's exponential backoff.
    """

    def __init__(self, delay: float | None = None, reason: str = "") -> None:
        if delay is not None and (
            isinstance(delay, bool) or not isinstance(delay, (int, float)) or not delay >= 0
        ):
            raise TypeError(f"Retry(delay=...) takes seconds >= 0 or None, not {delay!r}")
        self.delay = delay
        self.reason = reason
        super().__init__(reason or (f"retry in {delay} s" if delay is not None else "retry"))


class JobFailedError(JobQError):
    """Raised by ``Job.result()`` when the job ended ``failed``. ``error`` is what was
    stored: ``type``, ``message`` and ``traceback``."""

    def __init__(self, job_id: int, error: dict[str, Any] | None) -> None:
        self.job_id = job_id
        self.error = error or {}
        kind = self.error.get("type", "Error")
        message = self.error.get("message", "")
        super().__init__(f"job {job_id} failed: {kind}: {message}")


class JobTimeout(JobFailedError):
    """Raised by ``Job.result()`` when the job's last attempt ran past its ``timeout``."""


class WorkerLost(JobFailedError):
    """Raised by ``Job.result()`` when the process running the job's last attempt died."""


class WorkerError(JobFailedError):
    """Raised by ``Job.result()`` when jobq itself could not run the job (a bug in jobq)."""


class JobCancelledError(JobQError):
    """Raised by ``Job.result()`` when the job was cancelled."""

    def __init__(self, job_id: int, error: dict[str, Any] | None = None) -> None:
        self.job_id = job_id
        self.error = error or {}
        reason = self.error.get("message")
        super().__init__(f"job {job_id} was cancelled" + (f": {reason}" if reason else ""))


class Cancelled(JobCancelledError):
    """Raised by ``Job.result()`` when the job was cancelled by ``jobq cancel`` (or
    ``Job.cancel()``)."""


class DependencyFailed(JobCancelledError):
    """Raised by ``Job.result()`` when the job was cancelled because a job it waited for
    (``after``) failed or was cancelled."""


def stored_error(job_id: int, status: str, error: dict[str, Any] | None) -> JobQError:
    """What ``Job.result()`` raises for a job that ended ``failed`` or ``cancelled``."""
    kind = (error or {}).get("type")
    if status == "cancelled":
        cancelled = {"Cancelled": Cancelled, "DependencyFailed": DependencyFailed}
        return cancelled.get(kind or "", JobCancelledError)(job_id, error)
    failed = {"JobTimeout": JobTimeout, "WorkerLost": WorkerLost, "WorkerError": WorkerError}
    return failed.get(kind or "", JobFailedError)(job_id, error)
