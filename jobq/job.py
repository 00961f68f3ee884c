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

    def cancel(self) -> str:
        """Cancel the job: "cancelled" when it was waiting (it never runs, and jobs waiting
        for it are cancelled too), "cancelling" when it runs (its worker stops it and it ends
        cancelled, never retried). Raises InvalidStateError once it has finished."""
        return self.app.store.cancel_job(self.id)

    def retry(self) -> None:
        """Queue a failed or cancelled job again, with fresh attempts (InvalidStateError for
        any other status)."""
        self.app.store.retry_job(self.id)

    def wait(self, timeout: float | None = None) -> JobRecord:
        """Block until the job ends; return its record. Raises TimeoutError."""
        store = self.app.store
        deadline = None if timeout is None else time.monotonic() + timeout
        store.changed()
        while True:
            record = store.get_job(self.id)
            if record.status in TERMINAL:
                return record
            # Until some connection commits: woken by PostgreSQL's notification; on SQLite,
            # PRAGMA data_version asked every millisecond at first, every 50 ms later on.
            while True:
                left = 1.0 if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"job {self.id} is still {record.status} after {timeout} s")
                if store.wait_for_change(min(left, 1.0), growing=True):
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
