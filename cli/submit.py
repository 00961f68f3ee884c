"""``jobq submit``: queue one job."""

from __future__ import annotations

import sys
from typing import Any

import click

from jobq.errors import JobCancelledError, JobFailedError

from .common import (
    INTEGER64,
    app_option,
    db_option,
    emit_json,
    open_app,
    parse_argument,
    parse_json_object,
)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("task")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--kwargs", "kwargs_json", metavar="JSON", help="Keyword arguments as a JSON object.")
@click.option("--queue", help="Queue name (default: the task's, else 'default').")
@click.option("--priority", type=INTEGER64, help="Higher runs first (default 0).")
@click.option(
    "--delay", type=click.FloatRange(min=0), metavar="SECONDS", help="Run no sooner than this."
)
@click.option(
    "--max-attempts", type=click.IntRange(min=1), help="Attempts before the job fails (default 3)."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Fail an attempt that runs longer than this.",
)
@click.option("--wait", is_flag=True, help="Block until the job ends; print its result.")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@app_option
@db_option
@click.pass_context
def submit(
    ctx: click.Context,
    task: str,
    args: tuple[str, ...],
    kwargs_json: str | None,
    queue: str | None,
    priority: int | None,
    delay: float | None,
    max_attempts: int | None,
    timeout: float | None,
    wait: bool,
    as_json: bool,
    app_spec: str | None,
    database: str | None,
) -> None:
    """Queue TASK with ARGs (each is JSON when it parses as JSON, else text); print its id.

    With --app (or JOBQ_APP) the arguments are checked against the task before anything is
    written.
    """
    values = [parse_argument(arg) for arg in args]
    kwargs = parse_json_object(kwargs_json, "--kwargs") if kwargs_json is not None else {}
    options: dict[str, Any] = {
        name: value
        for name, value in (
            ("queue", queue),
            ("priority", priority),
            ("delay", delay),
            ("max_attempts", max_attempts),
            ("timeout", timeout),
        )
        if value is not None
    }
    app = open_app(ctx, database, app_spec)
    job = app.submit(task, args=values, kwargs=kwargs, **options)
    if not wait:
        if as_json:
            emit_json(job.info().model_dump())
        else:
            click.echo(job.id)
        return
    record = job.wait()
    if as_json:
        emit_json(record.model_dump())
    try:
        result = job.result(timeout=0)
    except (JobFailedError, JobCancelledError) as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)
    if not as_json:
        emit_json(result)
