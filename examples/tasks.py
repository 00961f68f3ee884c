"""A small app of tasks for a deployed pool (docker-compose.yml runs its workers).

The database comes from JOBQ_DB (SQLite on a laptop, PostgreSQL when deployed); nothing in
the code changes. Submit from anywhere that can import this module and reach the database::

    jobq submit --app examples.tasks:app examples.tasks.add 2 3
    jobq submit --app examples.tasks:app examples.tasks.fetch https://example.org

or from Python::

    from examples.tasks import add
    add.submit(2, 3).result(timeout=10)
"""

from __future__ import annotations

import hashlib
import logging
import urllib.request

from jobq import JobContext, JobQ, Retry

app = JobQ()
log = logging.getLogger("examples.tasks")


def _announce(context: JobContext, result: object) -> None:
    """Completion callback: runs in the worker once the success is recorded."""
    log.info("job %s (%s) succeeded: %r", context.id, context.task, result)


@app.task(on_success=_announce)
def add(x: int, y: int) -> int:
    return x + y


@app.task(max_attempts=5, timeout=60)
def fetch(url: str) -> dict[str, object]:
    """Download a page; a network error retries it later (up to 5 attempts)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            body = response.read()
    except OSError as error:  # the task's backoff decides when the next attempt runs
        raise Retry(reason=str(error)) from error
    return {"url": url, "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
