"""Stores: where jobs live. ``open_store`` picks the backend from a path or URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import CorruptDatabaseError
from .base import Store
from .config import (
    DEFAULT_DATABASE,
    DEFAULT_SCHEMA,
    DatabaseConfig,
    parse_database,
    resolve_location,
)

__all__ = [
    "DEFAULT_DATABASE",
    "DEFAULT_SCHEMA",
    "DatabaseConfig",
    "Store",
    "check_database",
    "open_store",
    "parse_database",
    "resolve_location",
]


def open_store(location: str | Path, *, create: bool = True, migrate: bool = True) -> Store:
    """Open (and migrate) the store at ``location``.

    ``create=False`` refuses to create a missing database: read-only commands use it so that
    a typo in ``--db`` names the problem instead of making an empty file. ``migrate=False``
    leaves the schema as it is (``jobq migrate`` applies it and says what it did).
    """
    config = parse_database(location)
    if config.backend == "postgresql":
        from .postgresql import PostgreSQLStore

        return PostgreSQLStore(config, create=create, migrate=migrate)
    from .sqlite import SQLiteStore

    return SQLiteStore(config, create=create, migrate=migrate)


def check_database(location: str | Path) -> dict[str, Any]:
    """What ``jobq check`` reports: ``Store.describe(integrity=True)``, and for SQLite what
    only the files tell: whether the WAL holds what the wal-index says (read before the
    file is opened: opening rebuilds the index), and the mark a process left on finding the
    file damaged. A damaged file is described as far as it can be read. ``problems`` lists
    what is wrong (none: the database is whole; its damage mark, if any, is then removed)."""
    config = parse_database(location)
    if config.backend == "postgresql":
        described = _described(open_store(location, create=False, migrate=False))
        integrity = described.get("integrity")
        described["problems"] = [] if integrity == "ok" else [integrity]
        return described
    from .sqlite import SQLiteStore
    from .sqlite_files import damage_found, damage_mark, describe_file, mark_damaged, wal_state

    path = config.path
    wal = wal_state(path)  # first: any connection would rebuild the index
    found = damage_found(path)
    facts: dict[str, Any] | None = None
    # Marked, or its WAL lost: read it as it is (opening it as a store would refuse it, or
    # recover the index and forget what was lost).
    if found is None and not wal.startswith("lost"):
        try:
            facts = _described(SQLiteStore(config, create=False, migrate=False))
        except CorruptDatabaseError:
            found = damage_found(path) or "damaged"
    if facts is None:
        facts = {"backend": "sqlite", "path": str(path), **describe_file(path, integrity=True)}
    facts["wal"] = wal
    integrity = facts.get("integrity")
    problems = [] if integrity == "ok" else [f"integrity check failed: {integrity}"]
    if problems and found is None:
        mark_damaged(path, str(integrity).removeprefix("unreadable: "))
        found = damage_found(path)
    if wal.startswith("lost"):
        problems.append(f"the WAL is {wal}")
    if found is not None:
        if problems:
            facts["damage_mark"] = f"{damage_mark(path)}: {found}"
        else:  # whole again (restored, repaired): later commands may use it
            damage_mark(path).unlink(missing_ok=True)
            facts["damage_mark"] = f"removed (the file is whole again; it said: {found})"
    facts["problems"] = problems
    return facts


def _described(store: Store) -> dict[str, Any]:
    try:
        return store.describe(integrity=True)
    finally:
        store.close()
