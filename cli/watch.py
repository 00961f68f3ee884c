"""``jobq status --watch``: the queue, refreshed live (a plain line per refresh when piped)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from jobq.models import SHELL_TASK, STATUSES, TERMINAL
from jobq.store import Store

if TYPE_CHECKING:
    from jobq.records import JobRecord

RUNNING_SHOWN = 15  # running jobs listed, oldest first


def label(record: JobRecord) -> str:
    """What a job does: its task, or for a shell-command job the command."""
    if record.task == SHELL_TASK:
        return f"$ {record.kwargs.get('command', '')}"
    return record.task


def age(seconds: float) -> str:
    seconds = max(seconds, 0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"


def watch(store: Store, interval: float) -> None:
    """Refresh until Ctrl-C."""
    previous: tuple[float, int] | None = None
    terminal = sys.stdout.isatty()
    live = None
    if terminal:
        from rich.live import Live

        live = Live(refresh_per_second=4, screen=False)
        live.start()
    try:
        while True:
            summary = store.counts()
            finished = sum(summary["counts"][name] for name in TERMINAL)
            now = time.monotonic()
            rate = None
            if previous is not None:
                rate = (finished - previous[1]) / max(now - previous[0], 1e-9)
            previous = (now, finished)
            if live is not None:
                live.update(_screen(store, summary, rate))
            else:
                counts = " ".join(f"{name}={summary['counts'][name]}" for name in STATUSES)
                shown = "-" if rate is None else f"{rate:.1f}"
                click.echo(f"{time.strftime('%H:%M:%S')} {counts} finished/s={shown}")
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.stop()


def table(title: str) -> Any:
    """A compact table: eight status columns fit an 80-column terminal."""
    from rich import box
    from rich.table import Table

    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        collapse_padding=True,
    )


def counts_table(summary: dict[str, Any]) -> Any:
    """Jobs per queue and status, with a total row."""
    jobs = table("jobs")
    jobs.add_column("queue")
    for name in STATUSES:
        jobs.add_column(name, justify="right")
    for queue, counts in summary["queues"].items():
        jobs.add_row(queue, *(str(counts[name]) for name in STATUSES))
    jobs.add_row("[b]all[/b]", *(f"[b]{summary['counts'][name]}[/b]" for name in STATUSES))
    return jobs


def _screen(store: Store, summary: dict[str, Any], rate: float | None) -> Any:
    from rich.console import Group

    jobs = counts_table(summary)
    throughput = "throughput: measuring..." if rate is None else f"throughput: {rate:,.1f} jobs/s"

    running = table("running")
    for column in ("id", "job", "queue", "age", "worker"):
        running.add_column(column, overflow="fold")
    now = time.time()
    records = store.list_jobs(status="running", limit=10_000)
    records.sort(key=lambda record: record.started_at or now)
    for record in records[:RUNNING_SHOWN]:
        running.add_row(
            str(record.id),
            label(record),
            record.queue,
            age(now - (record.started_at or now)),
            record.worker or "",
        )
    if len(records) > RUNNING_SHOWN:
        running.caption = f"and {len(records) - RUNNING_SHOWN} more"

    workers = table("workers")
    for column in ("id", "host", "pid", "threads", "running", "heartbeat"):
        workers.add_column(column)
    for worker in store.workers():
        workers.add_row(
            worker.id,
            worker.host,
            str(worker.pid),
            str(worker.threads),
            str(worker.running),
            f"{age(now - worker.heartbeat_at)} ago",
        )
    stamp = time.strftime("%H:%M:%S")
    return Group(jobs, f"{throughput}   (updated {stamp}, Ctrl-C to quit)", running, workers)
