"""Migrations: a fresh database and one migrated step by step end up identical."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from jobq.errors import DatabaseError, SchemaVersionError
from jobq.models import NewJob
from jobq.store import open_store, parse_database
from jobq.store.migrations import migrations
from jobq.store.sqlite import SQLiteStore


def schema(path: Path) -> dict[str, str]:
    """Every table, index and trigger of the database, by name, normalised."""
    database = sqlite_utils.Database(path)
    found = {}
    for row in database.query("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL"):
        found[f"{row['type']}:{row['name']}"] = " ".join(row["sql"].split())
    for table in database.tables:
        found[f"columns:{table.name}"] = repr(
            [(c.name, c.type, c.notnull, c.default_value) for c in table.columns]
        )
    return found


def test_every_migration_is_numbered_and_splits_into_statements() -> None:
    known = migrations("sqlite")
    assert [migration.version for migration in known] == list(range(1, len(known) + 1))
    for migration in known:
        assert migration.statements(), migration.name


def test_fresh_and_stepwise_migrated_databases_are_identical(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    open_store(fresh).close()

    # An old database at version 1 with a job in it, migrated one version at a time.
    stepwise = tmp_path / "stepwise.db"

    class OldStore(SQLiteStore):
        def migrate(self, target: int | None = 1) -> list[int]:
            return super().migrate(target)

    old = OldStore(parse_database(stepwise))
    assert old.schema_version() == 1
    connection = sqlite3.connect(stepwise, isolation_level=None)
    connection.execute(
        "INSERT INTO jobs (task, status, run_at, created_at) VALUES ('t', 'queued', 0, 0)"
    )
    connection.close()
    old.close()
    for version in range(2, len(migrations("sqlite")) + 1):
        step = OldStore(parse_database(stepwise))
        assert step.migrate(version) == [version]
        step.close()
    store = open_store(stepwise)
    assert store.get_job(1).task == "t"
    store.close()

    assert schema(stepwise) == schema(fresh)
    versions = (
        sqlite_utils.Database(stepwise)
        .execute("SELECT version FROM jobq_migrations ORDER BY version")
        .fetchall()
    )
    assert [v for (v,) in versions] == [m.version for m in migrations("sqlite")]


def test_ids_handed_out_before_the_lean_migration_stay_taken(tmp_path: Path) -> None:
    # Version 4 kept ids unique with AUTOINCREMENT; 0005 drops it. Jobs 2 and 3 were purged
    # at version 4, so the highest id left is 1: the next job must still not get 2 or 3.
    path = tmp_path / "v4.db"

    class V4Store(SQLiteStore):
        def migrate(self, target: int | None = 4) -> list[int]:
            return super().migrate(target)

    old = V4Store(parse_database(path))
    connection = sqlite3.connect(path, isolation_level=None)
    for _ in range(3):
        connection.execute(
            "INSERT INTO jobs (task, status, run_at, created_at) VALUES ('t', 'queued', 0, 0)"
        )
    connection.execute("DELETE FROM jobs WHERE id > 1")
    connection.close()
    old.close()

    store = open_store(path)
    stand_in = store.get_job(3)
    assert (stand_in.task, stand_in.status) == ("jobq.purged", "cancelled")
    assert "never reused" in stand_in.error["message"]
    assert store.enqueue([NewJob(task="t", args="[]", kwargs="{}")]) == [4]
    store.close()


def test_a_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    open_store(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO jobq_migrations VALUES (999, 'future', 0)")
    before = path.read_bytes()
    with pytest.raises(SchemaVersionError, match="schema version 999, newer"):
        open_store(path)
    assert path.read_bytes() == before


def test_a_foreign_sqlite_database_is_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE notes (body TEXT)")
    before = path.read_bytes()
    with pytest.raises(DatabaseError, match="not a jobq one"):
        open_store(path)
    assert path.read_bytes() == before


def test_a_non_sqlite_file_is_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, not a database\n")
    with pytest.raises(DatabaseError, match="not an SQLite database"):
        open_store(path)
    assert path.read_text() == "hello, not a database\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_new_database_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "private.db"
    open_store(path).close()
    assert path.stat().st_mode & 0o777 == 0o600
