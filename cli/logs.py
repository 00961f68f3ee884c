"""``jobq logs``: the output of a shell-command job."""

from __future__ import annotations

import os
import sys
import time

import click

from jobq.models import SHELL_TASK, TERMINAL
from jobq.shell import log_path

from .common import JOB_ID, app_option, db_option, open_existing

_FOLLOW_PAUSE = 0.1  # seconds between looks at a followed log and its job


@click.command()
@click.argument("job_id", type=JOB_ID)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output until the job ends.")
@app_option
@db_option
@click.pass_context
def logs(
    ctx: click.Context, job_id: int, follow: bool, app_spec: str | None, database: str | None
) -> None:
    """Print what shell-command job JOB_ID wrote to stdout and stderr, interleaved.

    Exits 2 for a job that is not a shell command (a Python task's output goes to its
    worker's log).
    """
    app = open_existing(ctx, database, app_spec)
    store = app.store
    record = store.get_job(job_id)  # an unknown id is an error, not an empty log
    if record.task != SHELL_TASK:
        click.echo(
            f"job {job_id} is a job of the task {record.task}, not a shell command: only "
            f"shell-command jobs (jobq submit --cmd) have logs; what it printed is in its "
            f"worker's output, its result and error in jobq status {job_id}",
            err=True,
        )
        sys.exit(2)
    path = log_path(app.database, job_id)
    out = sys.stdout.buffer
    position = 0
    while True:
        # Read the job's status first: output written before it ended is then all on disk.
        ended = store.get_job(job_id).status in TERMINAL
        position = _copy_from(path, position, out)
        if not follow or ended:
            return
        time.sleep(_FOLLOW_PAUSE)


def _copy_from(path: os.PathLike[str], position: int, out: object) -> int:
    try:
        with open(path, "rb") as handle:
            handle.seek(position)
            while chunk := handle.read(65536):
                out.write(chunk)  # type: ignore[attr-defined]
                position += len(chunk)
    except FileNotFoundError:
        return position  # not started yet, or it wrote nothing
    out.flush()  # type: ignore[attr-defined]
    return position
