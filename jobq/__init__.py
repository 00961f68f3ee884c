"""jobq: a durable job queue. SQLite on one machine, PostgreSQL across many, a supervised
process pool, JSON payloads.

>>> from jobq import JobQ
>>> app = JobQ("jobq.db")
>>> @app.task
... def add(x: int, y: int) -> int:
...     return x + y
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .app import JobQ
from .context import JobContext, JobLogFilter, current_job
from .errors import (
    ArgumentError,
    Cancelled,
    CommandError,
    ConfigurationError,
    ConnectionLostError,
    CorruptDatabaseError,
    DatabaseBusyError,
    DatabaseError,
    DependencyFailed,
    InvalidStateError,
    JobCancelledError,
    JobFailedError,
    JobNotFoundError,
    JobQError,
    JobTimeout,
    PayloadError,
    Retry,
    SchemaVersionError,
    ShellRefused,
    UnknownTaskError,
    WorkerError,
    WorkerLost,
)
from .job import Job
from .models import Status, record_class
from .tasks import Task, TaskOptions

if TYPE_CHECKING:
    from .records import JobRecord, WorkerRecord

__version__ = "0.1.0"

__all__ = [
    "ArgumentError",
    "Cancelled",
    "CommandError",
    "ConfigurationError",
    "ConnectionLostError",
    "CorruptDatabaseError",
    "DatabaseBusyError",
    "DatabaseError",
    "DependencyFailed",
    "InvalidStateError",
    "Job",
    "JobCancelledError",
    "JobContext",
    "JobFailedError",
    "JobLogFilter",
    "JobNotFoundError",
    "JobQ",
    "JobQError",
    "JobRecord",
    "JobTimeout",
    "PayloadError",
    "Retry",
    "SchemaVersionError",
    "ShellRefused",
    "Status",
    "Task",
    "TaskOptions",
    "UnknownTaskError",
    "WorkerError",
    "WorkerLost",
    "WorkerRecord",
    "__version__",
    "current_job",
]


def __getattr__(name: str) -> Any:
    # The records are pydantic models, imported on first use: a worker never needs them.
    return record_class(__name__, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"JobRecord", "WorkerRecord"})
