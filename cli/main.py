"""The ``jobq`` command group."""

from __future__ import annotations

import logging

import click

import jobq
from jobq.context import JobLogFilter

from . import check, demo, logs, manage, migrate, show, submit, wait, worker
from .common import JobQGroup, global_db_option


@click.group(cls=JobQGroup, context_settings={"help_option_names": ["-h", "--help"]})
@global_db_option
@click.option(
    "--log-level",
    envvar="JOBQ_LOG_LEVEL",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="How much the worker logs to stderr: debug adds a line per job started and "
    "succeeded. [env JOBQ_LOG_LEVEL]",
)
@click.version_option(jobq.__version__, prog_name="jobq")
@click.pass_context
def cli(ctx: click.Context, database: str | None, log_level: str) -> None:
    """jobq: a durable job queue. Submit jobs, run workers, watch them.

    A DURATION is seconds (90, 1.5) or 30s, 15m, 12h, 7d, 2w: at most 100 years.
    """
    ctx.ensure_object(dict)
    ctx.obj["database"] = database
    source = ctx.get_parameter_source("database")
    ctx.obj["database_from_env"] = source is click.core.ParameterSource.ENVIRONMENT
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(job)s%(message)s",
    )
    for handler in logging.getLogger().handlers:  # what a task logs says its job
        handler.addFilter(JobLogFilter())


for command in (
    submit.submit,
    worker.worker,
    show.status,
    show.list_jobs,
    logs.logs,
    wait.wait,
    manage.retry,
    manage.cancel,
    manage.purge,
    check.check,
    migrate.migrate,
    demo.demo,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="jobq")
