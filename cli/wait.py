"""``jobq wait``: block until jobs end; a progress bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from jobq.errors import JobNotFoundError
from jobq.models import TERMINAL, counted
from jobq.store import Store

from .common import JOB_ID, SECONDS, app_option, db_option, open_existing

_POLL = 0.05  # seconds between cheap "did anything commit?" checks


@click.command()
@click.argument("job_ids", nargs=-1, type=JOB_ID)
@click.option(
    "--timeout",
    type=SECONDS,
    help="Give up after this long (exit 2).",
)
@app_option
@db_option
@click.pass_context
def wait(
    ctx: click.Context,
    job_ids: tuple[int, ...],
    timeout: float | None,
    app_spec: str | None,
    database: str | None,
) -> None:
    """Block until JOB_IDs end (with none: every job not finished yet).

    Exit 0 if every one succeeded, 1 if any failed or was cancelled, 2 on --timeout. A
    terminal shows a progress bar (done/total, rate, time left, failures so far); piped,
    each job that ends is one line.
    """
    store = open_existing(ctx, database, app_spec).store
    ids = list(dict.fromkeys(job_ids)) or store.unfinished_job_ids()
    statuses = store.job_statuses(ids)
    missing = [job_id for job_id in ids if job_id not in statuses]
    if missing:
        raise JobNotFoundError(f"no job with id {missing[0]}")
    if not ids:
        click.echo("no unfinished jobs to wait for")
        return
    tracker = _Progress(len(ids)) if sys.stdout.isatty() else _Lines(len(ids))
    remaining = set(ids)
    failed = 0
    deadline = None if timeout is None else time.monotonic() + timeout
    with tracker:
        while True:
            for job_id in sorted(remaining):
                status = statuses.get(job_id, "purged")
                if status in TERMINAL or status == "purged":
                    remaining.discard(job_id)
                    failed += status != "succeeded"
                    tracker.ended(store, job_id, status, failed)
            if not remaining:
                break
            if deadline is not None and time.monotonic() >= deadline:
                left = counted(len(remaining), "job")
                tracker.note(f"gave up after {timeout} s: {left} not finished")
                sys.exit(2)
            _wait_for_a_commit(store, deadline)
            statuses = store.job_statuses(sorted(remaining))
    ended = counted(len(ids), "job")
    tracker.note(f"{ended} ended: {len(ids) - failed} succeeded, {failed} did not")
    sys.exit(1 if failed else 0)


def _wait_for_a_commit(store: Store, deadline: float | None) -> None:
    """Sleep until another connection commits (1 s at most, or the deadline): woken by the
    store (PostgreSQL's notification; SQLite asked every few milliseconds)."""
    left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
    if left > 0:
        store.wait_for_change(left, poll=_POLL / 10, growing=True)


class _Lines:
    """Piped: one line per job that ends, then the summary."""

    def __init__(self, total: int) -> None:
        self.total = total

    def __enter__(self) -> _Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def ended(self, store: Store, job_id: int, status: str, failed: int) -> None:
        line = f"job {job_id} {status}"
        if status in ("failed", "cancelled"):
            error = store.get_job(job_id).error or {}
            line += f": {error.get('message', '')}"
        click.echo(line)

    def note(self, text: str) -> None:
        click.echo(text)


class _Progress:
    """On a terminal: one live bar with done/total, rate, time left and failures."""

    def __init__(self, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("waiting"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[failures]}"),
        )
        self.task = self.progress.add_task("jobs", total=total, rate="", failures="")
        self.started = time.monotonic()
        self.done = 0

    def __enter__(self) -> _Progress:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def ended(self, store: Store, job_id: int, status: str, failed: int) -> None:
        self.done += 1
        elapsed = max(time.monotonic() - self.started, 1e-9)
        self.progress.update(
            self.task,
            advance=1,
            rate=f"{self.done / elapsed:,.1f} jobs/s",
            failures=f"[red]{failed} failed[/red]" if failed else "",
        )
        if status != "succeeded":
            self.progress.console.print(f"job {job_id} {status}", highlight=False)

    def note(self, text: str) -> None:
        self.progress.console.print(text, highlight=False)
