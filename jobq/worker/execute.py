"""Running one claimed job and turning what happened into an Outcome."""

from __future__ import annotations

import json
import random
import time
import traceback
from collections.abc import Mapping
from typing import Any

from ..context import CancelFlag, JobContext, set_current_job
from ..errors import ArgumentError, CommandError, JobTimeout, PayloadError, Retry
from ..models import ClaimedJob, Outcome, seconds_text
from ..payload import decode, encode
from ..tasks import Task


def error_json(kind: str, message: str, trace: str | None = None) -> str:
    return json.dumps({"type": kind, "message": message, "traceback": trace})


def describe_error(error: BaseException) -> str:
    """``str(error)``, or a stand-in when the exception's own __str__ fails."""
    try:
        return str(error)
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the job
        return f"<{type(error).__name__} whose message could not be read>"


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: base * 2^(attempt-1), between half and all of it."""
    # The exponent is capped: 2.0 ** 1025 overflows a float, and the cap is reached long before.
    delay = min(cap, base * (2.0 ** min(max(attempt - 1, 0), 60)))
    return delay * random.uniform(0.5, 1.0)


def failure(job: ClaimedJob, worker_id: str, error: str, *, retry_at: float | None) -> Outcome:
    """A failed attempt: retried at ``retry_at`` while attempts remain, else final."""
    now = time.time()
    if retry_at is not None and job.attempts < job.max_attempts:
        return Outcome(
            job.id,
            worker_id,
            job.claim,
            "scheduled",
            error=error,
            run_at=retry_at,
            finished_at=now,
        )
    return Outcome(job.id, worker_id, job.claim, "failed", error=error, finished_at=now)


def timeout_outcome(job: ClaimedJob, worker_id: str, task: Task | None) -> Outcome:
    limit = seconds_text(job.timeout or 0)
    message = f"job {job.id} ran longer than its timeout of {limit} s"
    error = error_json(JobTimeout.__name__, message)
    retry_at = _retry_at(job, task, None)
    return failure(job, worker_id, error, retry_at=retry_at)


def _retry_at(job: ClaimedJob, task: Task | None, delay: float | None) -> float:
    if delay is None:
        base, cap = (task.defaults.backoff, task.defaults.max_backoff) if task else (1.0, 3600.0)
        delay = backoff_delay(job.attempts, base, cap)
    return time.time() + max(delay, 0.0)


def cancelled_outcome(job: ClaimedJob, worker_id: str) -> Outcome:
    """A job stopped by ``jobq cancel``: it ends cancelled, never retried."""
    error = error_json("Cancelled", "cancelled while running (jobq cancel)")
    return Outcome(job.id, worker_id, job.claim, "cancelled", error=error, finished_at=time.time())


def execute(
    tasks: Mapping[str, Task],
    job: ClaimedJob,
    worker_id: str,
    cancel: CancelFlag | None = None,
) -> Outcome:
    """Run ``job`` in this thread. Never raises: every end is an Outcome.

    Errors that cannot get better on retry (unknown task, arguments that do not fit, a result
    that is not JSON) end the job ``failed`` at once.
    """
    task = tasks.get(job.task)
    if task is None:
        message = f"task {job.task!r} is not registered with this worker's app"
        return failure(job, worker_id, error_json("UnknownTaskError", message), retry_at=None)
    try:
        # Most jobs have no keyword arguments, many no arguments: skip the JSON parser then.
        args = [] if job.args == "[]" else decode(job.args)
        kwargs = {} if job.kwargs == "{}" else decode(job.kwargs)
        args, kwargs = task.bind(args, kwargs)
    except ArgumentError as error:
        return failure(job, worker_id, error_json("ArgumentError", str(error)), retry_at=None)
    except Exception as error:  # noqa: BLE001 - e.g. a type hint pydantic cannot check
        message = f"cannot check the arguments of {job.task}: {describe_error(error)}"
        return failure(job, worker_id, error_json("ArgumentError", message), retry_at=None)
    context = JobContext(
        job.id,
        job.task,
        job.queue,
        job.attempts,
        job.max_attempts,
        worker_id,
        job.timeout,
        cancel or CancelFlag(),
    )
    set_current_job(context)
    try:
        value = task.func(*args, **kwargs)
        if context.cancelled:
            return cancelled_outcome(job, worker_id)
    except Retry as retry:
        if context.cancelled:
            return cancelled_outcome(job, worker_id)
        retry_error = error_json("Retry", describe_error(retry))
        return failure(job, worker_id, retry_error, retry_at=_retry_at(job, task, retry.delay))
    except BaseException as error:  # noqa: BLE001 - a task's SystemExit is its failure too
        if context.cancelled:
            return cancelled_outcome(job, worker_id)
        # A command's exit code says it all; jobq's own frames would only hide it.
        trace = None if isinstance(error, CommandError) else traceback.format_exc()
        outcome = failure(
            job,
            worker_id,
            error_json(type(error).__name__, describe_error(error), trace),
            retry_at=_retry_at(job, task, None),
        )
        outcome.extra = error
        return outcome
    finally:
        set_current_job(None)
    try:
        result = encode(value, "the result")
        if len(result) > task.app.max_payload:
            raise PayloadError(
                f"the result is {len(result)} characters of JSON, over the limit of "
                f"{task.app.max_payload}"
            )
    except PayloadError as error:
        return failure(job, worker_id, error_json("PayloadError", str(error)), retry_at=None)
    except (ValueError, RecursionError) as error:  # e.g. an int too long for json.dumps
        message = f"the result cannot be stored as JSON: {describe_error(error)}"
        return failure(job, worker_id, error_json("PayloadError", message), retry_at=None)
    return Outcome(
        job.id,
        worker_id,
        job.claim,
        "succeeded",
        result=result,
        finished_at=time.time(),
        extra=value,
    )


def describe(outcome: Outcome) -> dict[str, Any]:
    """The error of an outcome as a dict (for on_failure callbacks)."""
    return json.loads(outcome.error) if outcome.error else {}
