"""The exceptions jobq raises. Every one derives from :class:`JobQError`."""

from __future__ import annotations


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
    ``jobq check`` says what is wrong. Restore a backup (docs/deploying.md)."""


class SchemaVersionError(DatabaseError):
    """Raised when the database was migrated by a newer jobq than this one."""


class PayloadError(JobQError):
    """Raised when arguments or a result cannot be stored as JSON or are too large."""


class ArgumentError(JobQError):
    """Raised when arguments do not fit the task's signature or type hints."""


class UnknownTaskError(JobQError):
    """Raised when a task name is not registered with the app."""


class JobNotFoundError(JobQError):
    """Raised when no job has the given id."""


class InvalidStateError(JobQError):
    """Raised when an operation does not apply to a job in its current status."""


class JobFailedError(JobQError):
    """Raised by ``Job.result()`` when the job ended ``failed``."""

    def __init__(self, job_id: int, error: dict | None) -> None:
        self.job_id = job_id
        self.error = error or {}
        kind = self.error.get("type", "Error")
        message = self.error.get("message", "")
        super().__init__(f"job {job_id} failed: {kind}: {message}")


class JobCancelledError(JobQError):
    """Raised by ``Job.result()`` when the job was cancelled."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} was cancelled")


class Retry(Exception):
    """Raise inside a task to run it again later.

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


class JobTimeout(Exception):
    """Recorded as a job's error when the job ran past its ``timeout``."""


class WorkerLost(Exception):
    """Recorded as a job's error when the process running it died."""
