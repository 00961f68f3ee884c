"""``jobq check``: what an operator looks at after a crash or a full disk."""

from __future__ import annotations

import click

from .common import database_of, db_option, emit_json, open_store_of


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")
@db_option
@click.pass_context
def check(ctx: click.Context, as_json: bool, database: str | None) -> None:
    """Check the database: integrity, schema version, sizes and row counts.

    Exits 1 when the integrity check finds a problem.
    """
    facts = open_store_of(ctx, database_of(ctx, database)).describe(integrity=True)
    if as_json:
        emit_json(facts)
    else:
        for name, value in facts.items():
            if name == "tables":
                value = ", ".join(f"{table} {count}" for table, count in value.items())
            click.echo(f"{name:<15} {value}")
    if facts.get("integrity") != "ok":
        raise click.ClickException(f"integrity check failed: {facts.get('integrity')}")
