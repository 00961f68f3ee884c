"""The job a worker thread is running, for tasks that want to know (``jobq.current_job()``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

_local = threading.local()


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
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def cancelled(self) -> bool:
        """True once ``jobq cancel`` asked for this job to stop: a long task should check it
        now and then and return early (it ends ``cancelled`` either way)."""
        return self.cancel.is_set()


def current_job() -> JobContext | None:
    """The job running in this thread, or None outside a worker."""
    return getattr(_local, "job", None)


def set_current_job(job: JobContext | None) -> None:
    _local.job = job
