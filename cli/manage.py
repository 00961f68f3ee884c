"""``jobq retry``, ``jobq cancel``, ``jobq purge``."""

from __future__ import annotations

import click

from jobq.models import TERMINAL, counted

from .common import JOB_ID, SECONDS, app_option, db_option, open_existing


@click.command()
@click.argument("job_id", type=JOB_ID)
@app_option
@db_option
@click.pass_context
def retry(ctx: click.Context, job_id: int, app_spec: str | None, database: str | None) -> None:
    """Queue a failed or cancelled job again, with fresh attempts."""
    open_existing(ctx, database, app_spec).job(job_id).retry()
    click.echo(f"job {job_id} queued again")


@click.command()
@click.argument("job_id", type=JOB_ID)
@app_option
@db_option
@click.pass_context
def cancel(ctx: click.Context, job_id: int, app_spec: str | None, database: str | None) -> None:
    """Cancel a waiting job, or stop a running one (it ends cancelled, never retried).

    A running shell command's process group gets SIGTERM, then SIGKILL after the worker's
    --cancel-grace; a Python task sees jobq.current_job().cancelled, and its process is
    recycled if it runs on past the grace. Jobs waiting for this one (--after) are cancelled.
    """
    if open_existing(ctx, database, app_spec).job(job_id).cancel() == "cancelling":
        click.echo(f"job {job_id} is running: its worker stops it")
    else:
        click.echo(f"job {job_id} cancelled")


@click.command()
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(TERMINAL),
    default=("succeeded",),
    show_default=True,
    help="Which finished jobs (repeatable).",
)
@click.option(
    "--older-than",
    "older_than",
    type=SECONDS,
    default="7d",
    show_default=True,
    help="Finished longer ago than this: 30s, 15m, 12h, 7d, 2w.",
)
@app_option
@db_option
@click.pass_context
def purge(
    ctx: click.Context,
    statuses: tuple[str, ...],
    older_than: float,
    app_spec: str | None,
    database: str | None,
) -> None:
    """Delete finished jobs.

    On SQLite the newest job always stays, finished or not: a new job takes the highest
    id + 1, so keeping it means no id is ever handed out twice (PostgreSQL never reuses one).
    """
    count = open_existing(ctx, database, app_spec).purge(statuses, older_than)
    click.echo(f"purged {counted(count, 'job')}")
