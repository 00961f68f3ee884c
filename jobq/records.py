"""What users are shown of jobs and workers: ``jobq status --json``, ``Job.info()``.

Pydantic models, in a module of their own: importing pydantic takes about 50 ms, which a
command or a worker that never shows a record should not pay (see ``jobq.models``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class JobRecord(BaseModel):
    """A job as users see it: ``jobq status ID --json`` and ``Job.info()``."""

    id: int
    task: str
    queue: str
    status: str
    priority: int
    attempts: int
    max_attempts: int
    args: list[Any]
    kwargs: dict[str, Any]
    result: Any = None
    error: dict[str, Any] | None = None
    timeout: float | None = None
    run_at: float
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    worker: str | None = None
    # A deferred job: the ids of the jobs it still waits for (--after), in order.
    waiting_for: list[int] = []


class WorkerRecord(BaseModel):
    """A live (or recently live) worker process, as ``jobq status`` shows it."""

    id: str
    pid: int
    host: str
    supervisor_pid: int | None = None
    queues: list[str] | None = None
    threads: int
    started_at: float
    heartbeat_at: float
    running: int = 0
