"""PostgreSQL connections: one per thread, autocommit outside explicit transactions.

A connection that fails (the server restarted, the network dropped) is thrown away and the
next call opens a new one; the failure reaches the caller as a DatabaseError, which the
worker retries with backoff. A store notices a fork and never touches the connections it
inherited (closing them would end the parent's sessions). ``changed()`` listens on a
channel that every write which can start or end a job notifies.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from ..errors import (
    ConfigurationError,
    ConnectionLostError,
    DatabaseBusyError,
    DatabaseError,
    SchemaVersionError,
)
from .config import DatabaseConfig
from .migrations import apply_pending, migrations
from .threads import ThreadConnections

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
except ImportError:  # pragma: no cover - depends on the installation
    raise ConfigurationError("PostgreSQL needs psycopg 3: pip install 'jobq[postgres]'") from None

# Connection settings jobq adds unless the URL gives its own: fail fast when the server is
# unreachable, and notice a silently dropped connection (keepalives) within a minute.
_DEFAULTS = {
    "connect_timeout": "10",
    "application_name": os.environ.get("PGAPPNAME") or "jobq",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}
_RETRYABLE = (
    pg_errors.DeadlockDetected,
    pg_errors.SerializationFailure,
    pg_errors.LockNotAvailable,
)
# The database's clock in unix seconds: every time jobq stores on PostgreSQL comes from it.
NOW = "date_part('epoch', now())"


def translate(error: Exception, where: str) -> DatabaseError:
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, _RETRYABLE):
        return DatabaseBusyError(f"a concurrent transaction on {where} got in the way: {message}")
    if isinstance(error, pg_errors.QueryCanceled):
        # An OperationalError to psycopg, but the connection is fine: the server ended one
        # statement (statement_timeout, or pg_cancel_backend) and rolled its transaction back.
        return DatabaseError(
            f"the database cancelled the statement (statement_timeout, or a cancel request) "
            f"on {where}: {message}"
        )
    if isinstance(error, psycopg.OperationalError):
        return ConnectionLostError(f"no usable connection to {where}: {message}")
    return DatabaseError(f"database error on {where}: {message}")


def _readable(connection: Any, timeout: float) -> bool:
    """Whether the connection's socket has something to read within ``timeout`` seconds
    (poll, not select: select fails on descriptors past 1024)."""
    poller = select.poll()
    poller.register(connection.pgconn.socket, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(max(timeout, 0) * 1000))


def _hung_up(connection: Any) -> bool:
    """Whether the server spoke to an idle connection unasked: it only does so to end the
    session (a restart, a terminated backend). One poll of the socket, no round trip."""
    try:
        return _readable(connection, 0)
    except (OSError, ValueError, psycopg.Error):
        return True


class PostgreSQLConnections(ThreadConnections):
    """One PostgreSQL database (and jobq's schema in it), one connection per thread."""

    def __init__(
        self, config: DatabaseConfig, *, create: bool = True, migrate: bool = True
    ) -> None:
        self.config = config
        self.url = config.url
        self.where = config.display
        self.schema = config.schema
        self.channel = f"jobq_{config.schema}"
        given = conninfo_to_dict(config.conninfo)
        added = {key: value for key, value in _DEFAULTS.items() if key not in given}
        self._conninfo = make_conninfo(config.conninfo, **added)
        ThreadConnections.__init__(self)
        self._open_schema(create, migrate)

    # -- connections -----------------------------------------------------------------------

    def _connect(self) -> Any:
        try:
            connection = psycopg.connect(self._conninfo, autocommit=True)
            connection.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        except psycopg.Error as error:
            raise translate(error, self.where) from None
        return connection

    def _connection(self) -> Any:
        self._forked()
        connection = getattr(self._local, "connection", None)
        if connection is not None and (connection.closed or _hung_up(connection)):
            self._discard(connection)
            connection = None
        if connection is None:
            connection = self._connect()
            self._adopt(connection)
        return connection

    def _discard(self, connection: Any) -> None:
        """Forget a connection that failed; the next call opens a fresh one."""
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None
        with self._lock:
            if connection in self._connections:
                self._connections.remove(connection)
            finalizer = self._finalizers.pop(id(connection), None)
        if finalizer is not None:
            finalizer.detach()
        with suppress(Exception):
            connection.close()

    def _failed(self, connection: Any, error: Exception) -> DatabaseError:
        lost = isinstance(error, psycopg.OperationalError) and not isinstance(
            error, (*_RETRYABLE, pg_errors.QueryCanceled)
        )
        if lost or connection.broken:
            self._discard(connection)
        return translate(error, self.where)

    @contextmanager
    def _write(self) -> Iterator[Any]:
        """One transaction: committed whole when the block ends, rolled back if it raises."""
        connection = self._connection()
        try:
            with connection.transaction():
                yield connection
        except psycopg.Error as error:
            raise self._failed(connection, error) from None

    def _read(self, query: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        connection = self._connection()
        try:
            return connection.execute(query, parameters).fetchall()
        except psycopg.Error as error:
            raise self._failed(connection, error) from None

    def _execute(self, query: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> int:
        """One statement in a transaction of its own; returns the rows it changed."""
        connection = self._connection()
        try:
            return connection.execute(query, parameters).rowcount
        except psycopg.Error as error:
            raise self._failed(connection, error) from None

    def _notify(self, connection: Any) -> None:
        """Wake listeners when this transaction commits (a no-op if it rolls back)."""
        connection.execute(sql.SQL("NOTIFY {}").format(sql.Identifier(self.channel)))

    def changed(self) -> bool:
        """True when a notification arrived since the last call (or the listener is new or
        failed: a spurious True only costs the caller a look)."""
        self._forked()
        listener = getattr(self._local, "listener", None)
        if listener is None:
            try:
                listener = self._connect()
            except DatabaseError:
                return True
            try:
                listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            except psycopg.Error:
                with suppress(Exception):
                    listener.close()
                return True
            self._adopt(listener, "listener")
            return True
        try:
            connection = listener.pgconn
            connection.consume_input()
            heard = False
            while connection.notifies() is not None:
                heard = True
            return heard
        except psycopg.Error:
            self._local.listener = None
            self._discard(listener)
            return True

    def wait_for_change(
        self, timeout: float, poll: float = 0.001, *, growing: bool = False
    ) -> bool:
        """Sleep on the listening connection's socket until a notification arrives or
        ``timeout`` passes: no polling while idle."""
        if self.changed():
            return True
        listener = getattr(self._local, "listener", None)
        if listener is None:  # could not listen: fall back on asking every ``poll``
            time.sleep(min(poll, timeout))
            return self.changed()
        try:
            _readable(listener, min(timeout, 3600.0))
        except (OSError, ValueError, OverflowError, psycopg.Error):
            return True
        return self.changed()

    # -- schema ----------------------------------------------------------------------------

    def _open_schema(self, create: bool, migrate: bool) -> None:
        tables = {
            row[0]
            for row in self._read(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (self.schema,),
            )
        }
        if tables and "jobq_migrations" not in tables:
            raise DatabaseError(
                f"schema {self.schema} of {self.where} holds tables that are not jobq's "
                f"({', '.join(sorted(tables)[:5])}); refusing to change it (choose another "
                "with ?schema=)"
            )
        version = self.schema_version() if tables else 0
        if not version and not create:
            raise DatabaseError(
                f"no jobq schema {self.schema!r} in {self.where} (check --db or JOBQ_DB)"
            )
        latest = migrations("postgresql")[-1].version
        if version > latest:
            raise SchemaVersionError(
                f"schema {self.schema} of {self.where} has version {version}, newer than this "
                f"jobq knows ({latest}); upgrade jobq"
            )
        if migrate and version < latest:  # up to date: no second look at the version
            self.migrate()

    def schema_version(self) -> int:
        rows = self._read("SELECT to_regclass('jobq_migrations') IS NOT NULL")
        if not rows[0][0]:
            return 0
        return int(self._read("SELECT COALESCE(MAX(version), 0) FROM jobq_migrations")[0][0])

    def migrate(self, target: int | None = None) -> list[int]:
        known = [m for m in migrations("postgresql") if target is None or m.version <= target]
        latest = known[-1].version if known else 0
        if self.schema_version() >= latest:
            return []
        with self._write() as connection:
            # One migrating process at a time; the others wait here, then find nothing to do.
            connection.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"jobq migrate {self.schema}",)
            )
            connection.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
            connection.execute(
                "CREATE TABLE IF NOT EXISTS jobq_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
            )
            return apply_pending(
                connection,
                known,
                lambda migration: connection.execute(migration.sql.encode()),
                "%s",
            )
