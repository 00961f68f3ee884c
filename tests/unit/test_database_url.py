from __future__ import annotations

from pathlib import Path

import pytest

from jobq.errors import ConfigurationError
from jobq.store import parse_database, resolve_location


@pytest.mark.parametrize(
    ("text", "path", "options"),
    [
        ("jobq.db", Path("jobq.db"), {}),
        ("/var/lib/jobq.db", Path("/var/lib/jobq.db"), {}),
        ("sqlite:///jobq.db", Path("jobq.db"), {}),
        ("sqlite:////var/lib/jobq.db", Path("/var/lib/jobq.db"), {}),
        ("sqlite:///jobq.db?synchronous=full", Path("jobq.db"), {"synchronous": "full"}),
        (
            "sqlite:///jobq.db?synchronous=NORMAL&busy_timeout=100",
            Path("jobq.db"),
            {"synchronous": "normal", "busy_timeout": "100"},
        ),
    ],
)
def test_paths_and_urls(text: str, path: Path, options: dict[str, str]) -> None:
    config = parse_database(text)
    # A relative path is made absolute as it is parsed: later changes of directory (a task's
    # os.chdir) cannot move the database.
    assert config.backend == "sqlite" and config.path == Path.cwd() / path
    assert config.options == options


def test_resolve_location_keeps_the_form_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_location("jobq.db") == str(tmp_path / "jobq.db")
    assert resolve_location("sqlite:///jobq.db?synchronous=full") == (
        f"sqlite:///{tmp_path / 'jobq.db'}?synchronous=full"
    )
    assert resolve_location("postgresql://localhost/test") == "postgresql://localhost/test"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("mysql://host/db", "unsupported database URL scheme 'mysql'"),
        ("sqlite://host/jobq.db", "bad SQLite URL"),
        ("sqlite:///", "names no file"),
        ("sqlite:///a#b.db", "'#' cannot appear"),
        ("sqlite:///x.db?synchronous=sometimes", "bad value 'sometimes' for synchronous"),
        ("sqlite:///x.db?fast=yes", "unknown SQLite URL option 'fast'"),
        ("sqlite:///x.db?busy_timeout=soon", "whole number"),
        ("sqlite:///x.db?max_page_count=-1", "whole number"),
        ("postgresql://localhost/test?schema=Jobs", "bad schema name 'Jobs'"),
        ("postgresql://localhost/test?schema=1st", "bad schema name"),
        ("postgresql://localhost/test?schema=a;drop", "bad schema name"),
    ],
)
def test_bad_locations_are_named(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_database(text)


def test_url_round_trips() -> None:
    config = parse_database("sqlite:////tmp/x.db?synchronous=full")
    assert parse_database(config.url) == config


def test_postgresql_urls_keep_libpq_options_and_take_the_schema() -> None:
    config = parse_database("postgresql://jobs@db:5432/app?sslmode=require&schema=queue_a")
    assert config.backend == "postgresql" and config.schema == "queue_a"
    assert config.conninfo == "postgresql://jobs@db:5432/app?sslmode=require"
    assert parse_database(config.url) == config
    assert parse_database("postgres://db/app").schema == "jobq"  # jobq's own schema by default


def test_a_postgresql_password_is_never_displayed() -> None:
    config = parse_database("postgresql://jobs:s3cret@db/app?schema=q")
    assert "s3cret" not in config.display
    assert config.display == "postgresql://jobs:***@db/app?schema=q"
    given = parse_database("postgresql://jobs@db/app?Password=s3cret&sslmode=require")
    assert "s3cret" not in given.display and "sslmode=require" in given.display


def test_a_schema_name_leaves_room_for_its_notification_channel() -> None:
    parse_database("postgresql://db/app?schema=" + "s" * 58)
    with pytest.raises(ConfigurationError, match="bad schema name"):
        parse_database("postgresql://db/app?schema=" + "s" * 59)
