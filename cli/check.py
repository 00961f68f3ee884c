"""``jobq check``: what an operator looks at after a crash or a full disk."""

from __future__ import annotations

import click

from jobq.store import check_database

from .common import chosen_database, db_option, emit_json


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")
@db_option
@click.pass_context
def check(ctx: click.Context, as_json: bool, database: str | None) -> None:
    """Check the database: integrity, the WAL, schema version, sizes and row counts.

    Reads a damaged file as far as it can. Exits 1 when it finds a problem.
    """
    facts = check_database(chosen_database(ctx, database))
    problems = facts.pop("problems")
    if as_json:
        emit_json({**facts, "problems": problems})
    else:
        for name, value in facts.items():
            if name == "tables" and isinstance(value, dict):
                value = ", ".join(f"{table} {count}" for table, count in value.items())
            click.echo(f"{name:<15} {value}")
    if problems:
        raise click.ClickException("; ".join(str(problem) for problem in problems))
