"""Bad input against PostgreSQL: refused with one clear line, before anything is written.

The same mistakes as tests/e2e/test_cli_bad_input.py (which runs on SQLite), plus what only
a server brings: an unreachable server, a schema that is not jobq's, a newer schema, a
password that must never be printed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import postgres
from tests.support.helpers import SAMPLE_APP, assert_refused

ECHO = "tests.support.sample_tasks.echo"
ADD = "tests.support.sample_tasks.add"

pytestmark = list(postgres.MARKS)


@pytest.fixture
def database() -> Iterator[str]:
    with postgres.fresh_database() as url:
        yield url


@pytest.fixture
def seeded(jobq: Any, database: str) -> int:
    result = jobq("submit", ECHO, "seed")
    assert result.returncode == 0, result.stderr
    assert postgres.count_jobs(database) == 1
    return 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((ECHO, *(["a" * 100_000] * 11)), ("limit",)),
        ((ECHO, "--kwargs", '{"x": NaN}'), ("nan",)),
        ((ECHO, "[" * 5000 + "]" * 5000), ("nested",)),
        (("--app", SAMPLE_APP, ADD, "x", "1"), ("'x'",)),
        ((ECHO, "1", "--priority", "9" * 20), ("range",)),
        ((ECHO, "1", "--max-attempts", "0"), ("--max-attempts",)),
        ((ECHO, "1", "--after", "999"), ("999",)),
        (("--cmd", "true", "--env", "1BAD=x"), ("1BAD",)),
        (("--cmd", "true", "--cwd", "/no/such/dir"), ("/no/such/dir", "does not exist")),
        (("",), ("task name",)),
        (("task\udcff", "1"), ("TASK", "UTF-8")),  # the bytes task\xff, as Python gets them
        ((ECHO, "1", "--queue", "q\udcff"), ("--queue", "UTF-8")),
        ((ECHO, "1", "--max-attempts", "9223372036854775808"), ("--max-attempts", "range")),
        ((ECHO, "1", "--delay", "1e12"), ("--delay", "100 years")),
        ((ECHO, "1", "--delay", "nan"), ("--delay", "finite")),
    ],
)
def test_refused_submits_write_nothing(
    jobq: Any, database: str, seeded: int, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    line = assert_refused(jobq("submit", *args), *words)
    assert len(line) < 2000  # names the problem, does not echo the payload
    assert postgres.count_jobs(database) == seeded


def test_an_unreachable_server_is_named_without_its_password(jobq: Any) -> None:
    url = "postgresql://jobq:s3cret@127.0.0.1:1/test?connect_timeout=2"
    for args in (
        ("submit", ECHO, "1"),
        ("status",),
        ("worker", "--app", SAMPLE_APP, "--burst", "--procs", "0"),
    ):
        line = assert_refused(jobq("--db", url, *args, timeout=30), "127.0.0.1")
        assert "s3cret" not in line, line
        assert "***" in line


def test_a_schema_that_is_not_jobqs_is_refused_and_left_alone(jobq: Any) -> None:
    import psycopg

    with postgres.fresh_database() as url:
        schema = url.rsplit("schema=", 1)[1]
        with psycopg.connect(postgres.SERVER, autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{schema}"')
            connection.execute(f'CREATE TABLE "{schema}".customers (name TEXT)')
        for args in (
            ("submit", ECHO, "1"),
            ("status",),
            ("worker", "--app", SAMPLE_APP, "--burst", "--procs", "0"),
        ):
            assert_refused(jobq("--db", url, *args), "not jobq's", "customers")
        with psycopg.connect(postgres.SERVER) as connection:
            tables = connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            ).fetchall()
        assert tables == [("customers",)]


def test_reading_commands_do_not_create_a_schema(jobq: Any) -> None:
    with postgres.fresh_database() as url:
        for args in (("status",), ("list",), ("check",)):
            assert_refused(jobq("--db", url, *args), "no jobq schema")
        assert postgres.count_jobs(url) == -1


def test_a_newer_schema_version_is_refused(jobq: Any, database: str, seeded: int) -> None:
    import psycopg

    schema = database.rsplit("schema=", 1)[1]
    with psycopg.connect(postgres.SERVER, autocommit=True) as connection:
        connection.execute(
            f'INSERT INTO "{schema}".jobq_migrations (version, name, applied_at)'
            " VALUES (999, 'future', 0)"
        )
    for args in (
        ("submit", ECHO, "1"),
        ("status",),
        ("worker", "--app", SAMPLE_APP, "--burst", "--procs", "0"),
    ):
        line = assert_refused(jobq(*args), "newer", "999")
        assert "upgrade" in line.lower()
    assert postgres.count_jobs(database) == seeded


def test_payloads_round_trip_exactly(jobq: Any, database: str, seeded: int) -> None:
    """What SQLite keeps, PostgreSQL keeps: quotes, NUL escapes, emoji, big integers."""
    value = {"q": 'it\'s "quoted"; DROP TABLE jobs; --', "nul": "a\u0000b", "big": 2**62}
    result = jobq("submit", ECHO, "--kwargs", json.dumps(value))
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    shown = json.loads(jobq("status", job_id, "--json").stdout)
    assert shown["kwargs"] == value


def count_workers(url: str) -> int:
    import psycopg

    schema = url.rsplit("schema=", 1)[1]
    with psycopg.connect(postgres.SERVER, autocommit=True) as connection:
        return int(connection.execute(f'SELECT COUNT(*) FROM "{schema}".workers').fetchone()[0])


@pytest.mark.parametrize("procs", ["0", "1"])
def test_a_worker_for_a_queue_that_is_not_utf8_is_refused(
    jobq: Any, database: str, seeded: int, procs: str
) -> None:
    """It crash-looped (procs 1: a burst supervisor that never exited)."""
    worker = ("worker", "--app", SAMPLE_APP, "--procs", procs, "--burst")
    assert_refused(jobq(*worker, "--queues", "default,q\udcff", timeout=30), "--queues", "UTF-8")
    assert count_workers(database) == 0
    assert postgres.count_jobs(database) == seeded


def test_status_shows_a_time_outside_the_calendar(jobq: Any, database: str, seeded: int) -> None:
    import psycopg

    schema = database.rsplit("schema=", 1)[1]
    with psycopg.connect(postgres.SERVER, autocommit=True) as connection:
        connection.execute(f"UPDATE \"{schema}\".jobs SET status = 'scheduled', run_at = 1e12")
    shown = jobq("status", str(seeded), COLUMNS="250")
    assert shown.returncode == 0, shown.stderr
    assert "1000000000000.0 (unix seconds, outside the calendar)" in shown.stdout


def test_a_statement_timeout_is_reported_as_such(jobq: Any, database: str, seeded: int) -> None:
    """It was reported as "no usable connection": QueryCanceled is an OperationalError to
    psycopg, but the server only ended the statement. A lock held elsewhere makes the
    statement outlast the timeout every time."""
    import psycopg

    schema = database.rsplit("schema=", 1)[1]
    timed = f"{database}&options=-cstatement_timeout%3D300"
    with psycopg.connect(postgres.SERVER) as holder:  # one transaction, open until the end
        holder.execute(f'LOCK TABLE "{schema}".jobs IN ACCESS EXCLUSIVE MODE')
        for args in (("status",), ("list",), ("submit", ECHO, "1")):
            line = assert_refused(jobq("--db", timed, *args), "cancelled", "statement_timeout")
            assert "no usable connection" not in line
    assert postgres.count_jobs(database) == seeded
