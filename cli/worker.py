"""``jobq worker``: run jobs."""

from __future__ import annotations

import os
import sys

import click

from jobq.worker.children import prefer_forkserver
from jobq.worker.settings import MAX_MEMORY_MIB, MAX_PROCS, MAX_THREADS, WorkerSettings

from .common import POSITIVE_SECONDS, SECONDS, TEXT, app_option, db_option, open_app


@click.command()
@app_option
@click.option(
    "--procs",
    type=click.IntRange(0, MAX_PROCS),
    default=lambda: os.cpu_count() or 1,
    show_default="CPU count",
    help="Worker processes (0: threads in this process).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, MAX_THREADS),
    default=WorkerSettings.threads,
    show_default=True,
    help="Executor threads per process.",
)
@click.option("--queues", type=TEXT, metavar="Q1,Q2", help="Only these queues (default: all).")
@click.option(
    "--grace",
    type=SECONDS,
    default=30.0,
    show_default=True,
    help="On SIGTERM, how long running jobs get to finish.",
)
@click.option(
    "--lease",
    type=POSITIVE_SECONDS,
    default=20.0,
    show_default=True,
    help="A worker silent this long is presumed dead; its jobs run again.",
)
@click.option("--burst", is_flag=True, help="Exit 0 once no runnable job is left.")
@click.option(
    "--max-memory",
    type=click.IntRange(min=64, max=MAX_MEMORY_MIB),
    metavar="MIB",
    help="Address space per worker process; a task over it gets MemoryError.",
)
@click.option(
    "--cancel-grace",
    type=SECONDS,
    default=10.0,
    show_default=True,
    help="After jobq cancel: time a running job gets to stop before it is killed.",
)
@click.option(
    "--allow-shell",
    is_flag=True,
    help="Run shell-command jobs even from a database other users can write.",
)
@db_option
@click.pass_context
def worker(
    ctx: click.Context,
    app_spec: str | None,
    procs: int,
    threads: int,
    queues: str | None,
    grace: float,
    lease: float,
    burst: bool,
    max_memory: int | None,
    cancel_grace: float,
    allow_shell: bool,
    database: str | None,
) -> None:
    """Run a supervisor with PROCS worker processes of THREADS threads each.

    SIGTERM or Ctrl-C stops gracefully (running jobs get --grace seconds); a second signal
    stops at once. Nothing is lost either way: unfinished jobs are queued again.
    """
    if not app_spec:
        click.echo("note: no --app: this worker runs shell-command jobs only", err=True)
    app = open_app(ctx, database, app_spec)
    if procs == 0:  # tasks run in this process, jobq's own: as in a pool's processes
        prefer_forkserver()
    names = tuple(name.strip() for name in queues.split(",")) if queues else None
    sys.exit(
        app.run_worker(
            procs,
            threads,
            queues=names,
            burst=burst,
            grace=grace,
            lease=lease,
            memory_limit=max_memory,
            allow_shell=allow_shell,
            cancel_grace=cancel_grace,
        )
    )
