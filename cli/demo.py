"""``jobq demo``: the blog's ``Pool(5).apply_async(task, callback=...)`` example, on jobq."""

from __future__ import annotations

import os
import random
import time

import click

from jobq import JobQ
from jobq.models import counted
from jobq.store import DEFAULT_DATABASE
from jobq.worker.settings import MAX_PROCS

from .common import SECONDS, database_of, db_option

# Not JobQ(): a bad JOBQ_DB must fail in the command (one clear line), not on import.
demo_app = JobQ(DEFAULT_DATABASE)


def announce(job: object, result: int) -> None:
    """The completion callback: runs in the worker once the outcome is recorded."""
    click.echo(f"Complete task {result}")


@demo_app.task(name="demo.task", on_success=announce)
def task(task_name: int, seconds: float = 2.0) -> int:
    """Sleep a random while, like the blog's task, and return the task's name."""
    click.echo(f"start process {task_name}, process id {os.getpid()}")
    start = time.time()
    time.sleep(random.random() * seconds)
    click.echo(f"resume time {time.time() - start:.2f}, process id {os.getpid()}")
    return task_name


@click.command()
@click.option("--jobs", type=click.IntRange(1, 100_000), default=8, show_default=True)
@click.option("--procs", type=click.IntRange(1, MAX_PROCS), default=5, show_default=True)
@click.option(
    "--seconds",
    type=SECONDS,
    default=1.0,
    show_default=True,
    help="Each job sleeps a random time up to this.",
)
@db_option
@click.pass_context
def demo(ctx: click.Context, jobs: int, procs: int, seconds: float, database: str | None) -> None:
    """Run a demo: jobs that each sleep a random while, on a pool of worker processes.

    Submits --jobs jobs, runs them with --procs worker processes until none is left, and
    shows the status: the tutorial's Pool(5).apply_async(task, callback=...), on jobq.
    """
    from .show import status

    database = database_of(ctx, database)
    if database:
        demo_app.use_database(database)
    submitted = task.submit_many([(number, seconds) for number in range(jobs)])
    click.echo(
        f"submitted {counted(len(submitted), 'job')} to {demo_app.database}; "
        f"running them on {counted(procs, 'worker process')}"
    )
    demo_app.run_worker(procs, threads=1, burst=True)
    failed = [job.id for job in submitted if job.status() != "succeeded"]
    ctx.invoke(status, database=demo_app.database)
    if failed:
        raise click.ClickException(f"jobs {failed} did not succeed")
