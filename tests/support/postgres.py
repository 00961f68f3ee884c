"""The PostgreSQL server tests run against: each test gets a schema of its own.

``JOBQ_TEST_POSTGRES`` names the server (default: the local one, trust auth). When it cannot
be reached, PostgreSQL tests skip saying why; under CI (``CI`` set) they fail instead: CI
promises a server.
"""

from __future__ import annotations

import fcntl
import functools
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SERVER = os.environ.get("JOBQ_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@functools.cache
def unreachable() -> str | None:
    """Why the test server cannot be used, or None when it can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    try:
        with psycopg.connect(SERVER, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        return f"PostgreSQL at {SERVER} is unreachable: {str(error).strip()}"
    return None


def require() -> None:
    """Skip (or, under CI, fail) the calling test when there is no server."""
    reason = unreachable()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI needs PostgreSQL: {reason}")
    pytest.skip(reason)


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(SERVER, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# Tests run in several processes (pytest-xdist). A test that restarts the server takes this
# lock exclusively, so it waits for the PostgreSQL tests running beside it to end, and they
# wait for it; every other PostgreSQL test holds it shared.
LOCK = Path(tempfile.gettempdir()) / "jobq-tests-postgresql.lock"


@contextmanager
def server_lock(*, exclusive: bool) -> Iterator[None]:
    with open(LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def fresh_database(*, restarts_server: bool = False) -> Iterator[str]:
    """The URL of a new, empty jobq schema on the test server; dropped afterwards.
    ``restarts_server``: the test restarts the server; no other test runs meanwhile."""
    schema = f"jobq_test_{secrets.token_hex(6)}"
    separator = "&" if "?" in SERVER else "?"
    with server_lock(exclusive=restarts_server):
        require()  # inside the lock: never asked while another test has the server down
        try:
            yield f"{SERVER}{separator}schema={schema}"
        finally:
            drop_schema(schema)


MARKS = (pytest.mark.postgresql,)  # for a module of PostgreSQL tests: pytestmark
POSTGRESQL = pytest.param("postgresql", marks=MARKS)  # a "postgresql" parameter

# Runs a test (or, as ``pytestmark``, a module) on an SQLite file and on PostgreSQL.
BOTH_BACKENDS = pytest.mark.parametrize("database", ["sqlite", POSTGRESQL], indirect=True)


def count_jobs(url: str) -> int:
    """Jobs in the schema of a test URL; -1 when it has no jobs table."""
    import psycopg

    from jobq.store import parse_database

    schema = parse_database(url).schema
    with psycopg.connect(SERVER, autocommit=True) as connection:
        try:
            return int(connection.execute(f'SELECT COUNT(*) FROM "{schema}".jobs').fetchone()[0])
        except psycopg.errors.UndefinedTable:
            return -1


def reachable_now() -> bool:
    """Whether the test server answers right now (not cached: for tests that restart it)."""
    import psycopg

    try:
        with psycopg.connect(SERVER, connect_timeout=2) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def empty_schema(url: str) -> None:
    """Delete every job and worker in the schema of a test URL (if it exists yet); job ids
    start at 1 again."""
    import psycopg

    from jobq.store import parse_database

    schema = parse_database(url).schema
    with psycopg.connect(SERVER, autocommit=True) as connection:
        exists = connection.execute("SELECT to_regclass(%s)", (f'"{schema}".jobs',)).fetchone()
        if exists and exists[0]:  # DELETE: TRUNCATE makes new files, far slower for a few rows
            for table in ("jobs", "job_dependencies", "workers"):
                connection.execute(f'DELETE FROM "{schema}".{table}')
            connection.execute(f'ALTER TABLE "{schema}".jobs ALTER COLUMN id RESTART WITH 1')
