"""``jobq migrate``: bring the database's schema up to date, and say what changed."""

from __future__ import annotations

import click

from jobq.store import open_store

from .common import chosen_database, db_option, emit_json


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")
@db_option
@click.pass_context
def migrate(ctx: click.Context, as_json: bool, database: str | None) -> None:
    """Create the database or apply pending migrations, then exit.

    Every jobq command migrates on its own when it opens a database; run this once before
    starting upgraded workers (a deploy's migration step), so that none of them waits for it.
    Safe to run from several hosts at once: one migrates, the others find it done.
    """
    store = open_store(chosen_database(ctx, database), migrate=False)
    try:
        before = store.schema_version()
        applied = store.migrate()
        after = store.schema_version()
    finally:
        store.close()
    if as_json:
        emit_json({"from_version": before, "to_version": after, "applied": applied})
    elif applied:
        listed = ", ".join(str(version) for version in applied)
        click.echo(f"schema migrated from version {before} to {after} (applied {listed})")
    else:
        click.echo(f"schema up to date at version {after}")
