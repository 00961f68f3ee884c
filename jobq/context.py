"""The job a worker thread is running, for tasks that want to know (``jobq.current_job()``)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

_local = threading.local()


class CancelFlag:
    """Set by the worker when ``jobq cancel`` asks a running job to stop; read by the task.

    A plain attribute, not a threading.Event: nothing waits on it, and an Event (a lock and a
    condition) per job was a tenth of a worker's time on short jobs.
    """

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


@dataclass
class JobContext:
    """What a running task can learn about its own job."""

    id: int
    task: str
    queue: str
    attempts: int
    max_attempts: int
    worker_id: str
    timeout: float | None = None
    cancel: CancelFlag = field(default_factory=CancelFlag, repr=False)

    @property
    def cancelled(self) -> bool:
        """True once ``jobq cancel`` asked for this job to stop: a long task should check it
        now and then and return early (it ends ``cancelled`` either way)."""
        return self.cancel.is_set()


class JobLogFilter(logging.Filter):
    """Adds ``job`` to every log record: "[job 7] " when a task logged it while running job 7,
    else "". The ``jobq`` command's log format starts its message with ``%(job)s``; add it to
    your own handlers (``handler.addFilter(JobLogFilter())``) to say the same."""

    def filter(self, record: logging.LogRecord) -> bool:
        job = current_job()
        record.job = f"[job {job.id}] " if job is not None else ""
        return True


def current_job() -> JobContext | None:
    """The job running in this thread, or None outside a worker."""
    return getattr(_local, "job", None)


def set_current_job(job: JobContext | None) -> None:
    _local.job = job
