"""``Job``: a handle on a submitted job."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .errors import stored_error
from .models import TERMINAL

if TYPE_CHECKING:
    from .app import JobQ
    from .records import JobRecord


class Job:
    """A submitted job. Cheap to make: it holds only the app and the id."""

    __slots__ = ("app", "id")

    def __init__(self, app: JobQ, job_id: int) -> None:
        self.app = app
        self.id = job_id

    def __repr__(self) -> str:
        return f"<Job {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id and other.app is self.app

    def __hash__(self) -> int:
        return hash(self.id)

    def info(self) -> JobRecord:
        """Everything stored about the job."""
        return self.app.store.get_job(self.id)

    def status(self) -> str:
        return self.info().status

    def wait(self, timeout: float | None = None) -> JobRecord:
        """Block until the job ends; return its record. Raises TimeoutError."""
        store = self.app.store
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.001
        store.changed()
        while True:
            record = store.get_job(self.id)
            if record.status in TERMINAL:
                return record
            # Sleep until some connection commits (PRAGMA data_version), at most 50 ms at a time.
            while True:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"job {self.id} is still {record.status} after {timeout} s")
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
                if store.changed():
                    pause = 0.001
                    break

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the job and return what the task returned.

        Raises JobFailedError (JobTimeout, WorkerLost, WorkerError: the error jobq stored
        names the class), JobCancelledError (Cancelled, DependencyFailed), or TimeoutError
        when ``timeout`` (seconds) passes first.
        """
        record = self.wait(timeout)
        if record.status == "succeeded":
            return record.result
        raise stored_error(self.id, record.status, record.error)
