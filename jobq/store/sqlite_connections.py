"""SQLite connections: WAL, a busy timeout, and ``BEGIN IMMEDIATE`` for every write.

Each thread of a process gets its own connection; a store notices a fork (the pid changed)
and keeps the connections it inherited without ever touching them, as SQLite requires.
The schema is checked before anything can change the file, then migrated.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..errors import CorruptDatabaseError, DatabaseBusyError, DatabaseError, SchemaVersionError
from .config import DatabaseConfig
from .migrations import Migration, apply_pending, migrations
from .sqlite_files import damage_found, mark_damaged
from .threads import ThreadConnections

DEFAULT_BUSY_TIMEOUT_MS = 5000


def translate(error: sqlite3.Error, path: object) -> DatabaseError:
    message = str(error)
    if isinstance(error, sqlite3.OperationalError) and "locked" in message:
        return DatabaseBusyError(
            f"the database {path} is locked by another process (nothing was written; retry)"
        )
    if "full" in message:
        return DatabaseError(f"the database {path} cannot grow: {message} (free space and retry)")
    if "not a database" in message or "malformed" in message:
        if isinstance(path, Path):
            mark_damaged(path, message)
        return CorruptDatabaseError(
            f"the database {path} is damaged: {message} (nothing more was written; run jobq check)"
        )
    return DatabaseError(f"database error on {path}: {message}")


class SQLiteConnections(ThreadConnections):
    """One SQLite database file, one connection per thread of this process."""

    def __init__(
        self, config: DatabaseConfig, *, create: bool = True, migrate: bool = True
    ) -> None:
        self.config = config
        self.path = config.path
        self.url = config.url
        self.synchronous = config.options.get("synchronous", "normal").upper()
        self.busy_timeout_ms = int(config.options.get("busy_timeout", DEFAULT_BUSY_TIMEOUT_MS))
        self.max_page_count = int(config.options.get("max_page_count", 0))
        ThreadConnections.__init__(self)
        self._check_file(create)
        self._open_schema(migrate)

    def _open_schema(self, migrate: bool) -> None:
        """Check and migrate the schema, waiting out other processes doing the same.

        While a new file is still in rollback-journal mode (before the first connection turns
        WAL on), SQLite answers "locked" at once, without its busy handler, to a process that
        would otherwise deadlock with another one creating or migrating the same file.
        """
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        pause = 0.01
        while True:
            try:
                current = self._check_schema()
                if migrate and current < migrations("sqlite")[-1].version:
                    self.migrate()
                return
            except DatabaseBusyError:
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.25)

    # -- connections -----------------------------------------------------------------------

    def _check_file(self, create: bool) -> None:
        path = self.path
        if path.is_dir():
            raise DatabaseError(f"{path} is a directory, not a database file")
        if path.exists():
            found = damage_found(path)
            if found is not None:
                raise CorruptDatabaseError(
                    f"the database {path} is damaged ({found}); nothing was written. Run jobq "
                    "check: it clears the mark once the file is whole again"
                )
            if not create and path.stat().st_size == 0 and not Path(f"{path}-wal").exists():
                # What a crash can leave of a database never checkpointed whose WAL was
                # removed; a read must not quietly turn it into a new, empty database.
                raise DatabaseError(
                    f"{path} is an empty file (0 bytes, no {path.name}-wal beside it), not a "
                    "jobq database; nothing was written (check --db or JOBQ_DB)"
                )
            return
        if not create:
            raise DatabaseError(f"no database at {path} (check --db or JOBQ_DB)")
        if not path.parent.is_dir():
            raise DatabaseError(f"cannot create {path}: directory {path.parent} does not exist")
        try:
            # Jobs can carry secrets in their arguments: only the owner may read the file.
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            pass
        except OSError as error:
            raise DatabaseError(f"cannot create {path}: {error.strerror}") from None

    def _check_schema(self) -> int:
        """Refuse a non-SQLite, foreign or newer database before anything can change its file;
        return its schema version (0 for a new file).

        Read through a read-only SQLite connection, never with open(): closing another
        descriptor of the file drops every POSIX lock this process holds on it, and a process
        that holds none lets another one delete the live WAL: committed transactions are lost.
        """
        uri = f"file:{quote(str(self.path))}?mode=ro"
        try:
            connection = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout_ms / 1000)
            try:
                tables = {
                    row[0]
                    for row in connection.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'table'"
                    )
                }
                version = 0
                if "jobq_migrations" in tables:
                    version = connection.execute(
                        "SELECT COALESCE(MAX(version), 0) FROM jobq_migrations"
                    ).fetchone()[0]
            finally:
                connection.close()
        except sqlite3.Error as error:
            if "not a database" in str(error):
                raise DatabaseError(
                    f"{self.path} is not an SQLite database; refusing to touch it"
                ) from None
            raise translate(error, self.path) from None
        if tables and "jobq_migrations" not in tables:
            raise DatabaseError(
                f"{self.path} is an SQLite database but not a jobq one "
                f"(it has tables: {', '.join(sorted(tables)[:5])}); refusing to change it"
            )
        latest = migrations("sqlite")[-1].version
        if version > latest:
            raise SchemaVersionError(
                f"{self.path} has schema version {version}, newer than this jobq knows "
                f"({latest}); upgrade jobq"
            )
        return int(version)

    def _connection(self) -> sqlite3.Connection:
        self._forked()
        connection = getattr(self._local, "connection", None)
        if connection is None:
            try:
                # mode=rw: a connection never creates the file (that is _check_file's, once,
                # at open). Should the file go away, or the path mean another file, the error
                # says so instead of an empty database appearing beside the task.
                connection = sqlite3.connect(
                    f"file:{quote(str(self.path))}?mode=rw",
                    uri=True,
                    timeout=self.busy_timeout_ms / 1000,
                    isolation_level=None,
                    check_same_thread=False,
                )
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute(f"PRAGMA synchronous = {self.synchronous}")
                # The core's {now}: this host's clock, as the rest of the SQLite store uses.
                connection.create_function("jobq_now", 0, time.time)
                if self.max_page_count:
                    connection.execute(f"PRAGMA max_page_count = {self.max_page_count}")
            except sqlite3.Error as error:
                raise translate(error, self.path) from None
            self._adopt(connection)
            self._local.data_version = None
        return connection

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. IMMEDIATE takes the write lock up front, so a busy
        database makes us wait in the busy handler instead of failing on lock upgrade."""
        connection = self._connection()
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise translate(error, self.path) from None
        try:
            yield connection
            connection.execute("COMMIT")
        except BaseException as error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            if isinstance(error, sqlite3.Error):
                raise translate(error, self.path) from None
            raise

    def _read(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        try:
            return self._connection().execute(sql, parameters).fetchall()
        except sqlite3.Error as error:
            raise translate(error, self.path) from None

    # -- schema ----------------------------------------------------------------------------

    def schema_version(self) -> int:
        rows = self._read(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'jobq_migrations'"
        )
        if not rows:
            return 0
        return int(self._read("SELECT COALESCE(MAX(version), 0) FROM jobq_migrations")[0][0])

    def migrate(self, target: int | None = None) -> list[int]:
        known = [m for m in migrations("sqlite") if target is None or m.version <= target]
        latest = known[-1].version if known else 0
        if self.schema_version() >= latest:
            return []
        with self._write() as connection:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS jobq_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )

            def run(migration: Migration) -> None:
                for statement in migration.statements():  # sqlite3 runs one at a time
                    connection.execute(statement)

            return apply_pending(connection, known, run, "?")
