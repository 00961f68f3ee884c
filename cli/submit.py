"""``jobq submit``: queue one job."""

from __future__ import annotations

import sys
from typing import Any

import click

from jobq.errors import JobCancelledError, JobFailedError
from jobq.shell import ENV_NAME
from jobq.tasks import MAX_ATTEMPTS

from .common import (
    DURATION_SYNTAX,
    INTEGER64,
    JOB_ID,
    POSITIVE_SECONDS,
    SECONDS,
    TEXT,
    app_option,
    db_option,
    emit_json,
    open_app,
    parse_argument,
    parse_json_object,
)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("task", required=False, type=TEXT)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--cmd",
    "command",
    metavar="'SHELL COMMAND'",
    help="Queue a shell command instead of a task (any worker runs it).",
)
@click.option("--cwd", metavar="DIR", help="With --cmd: where it runs (default: here).")
@click.option(
    "--env",
    "environment",
    multiple=True,
    metavar="KEY=VALUE",
    help="With --cmd: an environment variable (repeatable).",
)
@click.option("--kwargs", "kwargs_json", metavar="JSON", help="Keyword arguments as a JSON object.")
@click.option("--queue", type=TEXT, help="Queue name (default: the task's, else 'default').")
@click.option("--priority", type=INTEGER64, help="Higher runs first (default 0).")
@click.option("--delay", type=SECONDS, help=f"Run no sooner than this from now: {DURATION_SYNTAX}.")
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1, max=MAX_ATTEMPTS),
    help="Attempts before the job fails (default: the task's, else 3; with --cmd 1).",
)
@click.option(
    "--timeout", type=POSITIVE_SECONDS, help="Fail an attempt that runs longer than this."
)
@click.option(
    "--after",
    "after",
    multiple=True,
    type=JOB_ID,
    metavar="JOB_ID",
    help="Run only once this job has succeeded (repeatable); cancelled if it fails.",
)
@click.option("--wait", is_flag=True, help="Block until the job ends; print its result.")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@app_option
@db_option
@click.pass_context
def submit(
    ctx: click.Context,
    task: str | None,
    args: tuple[str, ...],
    command: str | None,
    cwd: str | None,
    environment: tuple[str, ...],
    kwargs_json: str | None,
    queue: str | None,
    priority: int | None,
    delay: float | None,
    max_attempts: int | None,
    timeout: float | None,
    after: tuple[int, ...],
    wait: bool,
    as_json: bool,
    app_spec: str | None,
    database: str | None,
) -> None:
    """Queue TASK with ARGs (each is JSON when it parses as JSON, else text); print its id.

    With --app (or JOBQ_APP) the arguments are checked against the task before anything is
    written. With --cmd, queue a shell command instead: no TASK, no --app needed.
    """
    if command is None and (cwd is not None or environment):
        raise click.UsageError("--cwd and --env go with --cmd")
    if command is not None and (task is not None or kwargs_json is not None):
        raise click.UsageError("give either TASK (with its arguments) or --cmd, not both")
    if command is None and task is None:
        raise click.UsageError("give a TASK to run, or --cmd 'SHELL COMMAND'")
    kwargs = parse_json_object(kwargs_json, "--kwargs") if kwargs_json is not None else {}
    env = dict(_parse_env(item) for item in environment)
    options: dict[str, Any] = {
        name: value
        for name, value in (
            ("queue", queue),
            ("priority", priority),
            ("delay", delay),
            ("max_attempts", max_attempts),
            ("timeout", timeout),
            ("after", after or None),
        )
        if value is not None
    }
    app = open_app(ctx, database, app_spec)
    if command is not None:
        job = app.submit_command(command, cwd=cwd, env=env, **options)
    else:
        assert task is not None
        # With an app its tasks are known: a typo is refused before anything is written, and
        # an argument for a str parameter is the text given ("007" stays "007").
        known = app.task_named(task) if app_spec else None
        values = [
            arg if known is not None and known.takes_text(index) else parse_argument(arg)
            for index, arg in enumerate(args)
        ]
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


def _parse_env(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not ENV_NAME.match(key):
        raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--env")
    return key, value
