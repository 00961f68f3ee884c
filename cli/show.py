"""``jobq status`` and ``jobq list``: what is queued, running and done."""

from __future__ import annotations

# rich is imported inside the commands: a worker (same program) never pays for it.
import datetime
import json
import time
from typing import TYPE_CHECKING, Any

import click

from jobq.models import STATUSES

from .common import JOB_ID, LIMIT, TEXT, Seconds, app_option, db_option, emit_json, open_existing
from .watch import counts_table, label, table

if TYPE_CHECKING:
    from jobq.records import JobRecord


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    try:
        moment = datetime.datetime.fromtimestamp(timestamp)
    except (ValueError, OverflowError, OSError):
        # Outside the calendar (years 1 to 9999), e.g. a --delay 1e12 accepted before delays were
        # bounded: shown as stored rather than failing the whole display.
        return f"{timestamp!r} (unix seconds, outside the calendar)"
    return moment.isoformat(sep=" ", timespec="seconds")


def _ago(timestamp: float) -> str:
    seconds = max(time.time() - timestamp, 0)
    if seconds < 60:
        return f"{seconds:.0f}s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _print_job(console: Any, record: JobRecord) -> None:
    rows = [
        ("id", str(record.id)),
        ("task", record.task),
        ("queue", record.queue),
        ("status", record.status),
        ("priority", str(record.priority)),
        ("attempts", f"{record.attempts}/{record.max_attempts}"),
        ("args", json.dumps(record.args)),
        ("kwargs", json.dumps(record.kwargs)),
        ("created", _when(record.created_at)),
        ("run at", _when(record.run_at)),
        ("started", _when(record.started_at)),
        ("finished", _when(record.finished_at)),
        ("worker", record.worker or "-"),
    ]
    if record.status == "deferred":
        rows.append(("waits for", ", ".join(f"job {job}" for job in record.waiting_for)))
    if record.status == "succeeded":
        rows.append(("result", json.dumps(record.result)))
    if record.error:
        rows.append(("error", f"{record.error.get('type')}: {record.error.get('message')}"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        console.print(f"{name:<{width}}  {value}", highlight=False, markup=False)
    trace = (record.error or {}).get("traceback")
    if trace:
        console.print(trace.rstrip(), highlight=False, markup=False)


@click.command()
@click.argument("job_id", type=JOB_ID, required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")
@click.option("--watch", is_flag=True, help="Refresh live: counts, throughput, running jobs.")
@click.option(
    "--interval",
    type=Seconds(minimum=0.1),
    default=1.0,
    show_default=True,
    help="With --watch: time between refreshes.",
)
@app_option
@db_option
@click.pass_context
def status(
    ctx: click.Context,
    job_id: int | None,
    as_json: bool,
    watch: bool,
    interval: float,
    app_spec: str | None,
    database: str | None,
) -> None:
    """Counts per status and queue, and live workers; or one job with JOB_ID."""
    if watch and (job_id is not None or as_json):
        raise click.UsageError("--watch shows the whole queue: no JOB_ID, no --json")
    app = open_existing(ctx, database, app_spec)
    store = app.store
    if watch:
        from .watch import watch as watch_live

        watch_live(store, interval)
        return
    from rich.console import Console

    console = Console(soft_wrap=True)
    if job_id is not None:
        record = store.get_job(job_id)
        if as_json:
            emit_json(record.model_dump())
        else:
            _print_job(console, record)
        return
    summary = app.counts()
    workers = [worker.model_dump() for worker in app.workers()]
    summary["workers"] = workers
    if as_json:
        emit_json(summary)
        return
    console.print(counts_table(summary))
    if not workers:
        console.print("no live workers")
        return
    listing = table("workers")
    for column in ("id", "pid", "host", "threads", "running", "started", "heartbeat"):
        listing.add_column(column)
    for worker in workers:
        listing.add_row(
            worker["id"],
            str(worker["pid"]),
            worker["host"],
            str(worker["threads"]),
            str(worker["running"]),
            _ago(worker["started_at"]),
            _ago(worker["heartbeat_at"]),
        )
    console.print(listing)


@click.command("list")
@click.option("--status", "status_filter", type=click.Choice(STATUSES), help="Only this status.")
@click.option("--queue", type=TEXT, help="Only this queue.")
@click.option("--task", type=TEXT, help="Only this task name.")
@click.option("--limit", type=LIMIT, default=50, show_default=True, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")
@app_option
@db_option
@click.pass_context
def list_jobs(
    ctx: click.Context,
    status_filter: str | None,
    queue: str | None,
    task: str | None,
    limit: int,
    as_json: bool,
    app_spec: str | None,
    database: str | None,
) -> None:
    """Jobs, newest first."""
    app = open_existing(ctx, database, app_spec)
    records = app.jobs(status=status_filter, queue=queue, task=task, limit=limit)
    if as_json:
        emit_json([record.model_dump() for record in records])
        return
    from rich.console import Console

    console = Console(soft_wrap=True)
    listing = table(f"jobs, newest first ({len(records)} shown)")
    # One line a job: a long command or error ends in "…" when the terminal is narrow (jobq
    # status ID shows all); the two share what the short columns leave.
    wide = max((console.width - 40) // 2, 12)
    for column in ("id", "job", "queue", "status", "attempts", "error"):
        narrowed = wide if column in ("job", "error") else None
        listing.add_column(column, no_wrap=True, overflow="ellipsis", max_width=narrowed)
    for record in records:
        error = record.error or {}
        listing.add_row(
            str(record.id),
            label(record),
            record.queue,
            record.status,
            f"{record.attempts}/{record.max_attempts}",
            str(error.get("message", "")),
        )
    console.print(listing)
