"""Stores: where jobs live. ``open_store`` picks the backend from a path or URL."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from ..errors import ConfigurationError, CorruptDatabaseError
from .base import Store

__all__ = [
    "DatabaseConfig",
    "Store",
    "check_database",
    "open_store",
    "parse_database",
    "resolve_location",
]

DEFAULT_DATABASE = "jobq.db"
# URL options: allowed values, or None for a whole number. busy_timeout is in milliseconds;
# max_page_count caps the database's size in pages (a full "disk" then refuses writes).
_SQLITE_OPTIONS = {
    "synchronous": ("normal", "full", "off", "extra"),
    "busy_timeout": None,
    "max_page_count": None,
}


# PostgreSQL: jobq's tables live in their own schema (``jobq`` unless ``?schema=`` names
# another), so they never meet an application's own ``jobs`` table in a shared database.
DEFAULT_SCHEMA = "jobq"
# At most 58 characters: the notification channel, "jobq_" + schema, must fit PostgreSQL's 63.
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,57}$")


@dataclass(frozen=True)
class DatabaseConfig:
    """A parsed database location.

    SQLite: ``path`` and the URL ``options``. PostgreSQL: ``conninfo`` (the URL without
    jobq's own options, for libpq) and ``schema``.
    """

    backend: str  # "sqlite" or "postgresql"
    path: Path = Path()
    options: dict[str, str] = field(default_factory=dict)
    conninfo: str = ""
    schema: str = DEFAULT_SCHEMA

    @property
    def url(self) -> str:
        if self.backend == "postgresql":
            if self.schema == DEFAULT_SCHEMA:
                return self.conninfo
            return self.conninfo + ("&" if "?" in self.conninfo else "?") + f"schema={self.schema}"
        query = "&".join(f"{key}={value}" for key, value in sorted(self.options.items()))
        return f"sqlite:///{self.path}" + (f"?{query}" if query else "")

    @property
    def display(self) -> str:
        """The location as shown to people: a PostgreSQL password is masked."""
        if self.backend != "postgresql":
            return self.url
        parts = urlsplit(self.url)
        if parts.password is not None:
            host = parts.netloc.rsplit("@", 1)[1]
            parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
        query = [
            (key, "***" if key.lower() == "password" else value)
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        return urlunsplit(parts._replace(query=urlencode(query, safe="*", quote_via=quote)))


def parse_database(location: str | Path) -> DatabaseConfig:
    """Parse a plain path, a ``sqlite:///path?synchronous=full`` URL or a
    ``postgresql://user@host:5432/dbname?schema=jobq`` URL.

    ``sqlite:///jobq.db`` is relative to the current directory; ``sqlite:////var/jobq.db``
    is absolute. Raises :class:`ConfigurationError` naming what is wrong.
    """
    text = str(location).strip()
    if not text:
        raise ConfigurationError("the database location is empty")
    if "://" not in text:
        return DatabaseConfig("sqlite", _absolute(Path(text)))
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in ("postgresql", "postgres"):
        return _parse_postgresql(text)
    if scheme != "sqlite":
        raise ConfigurationError(
            f"unsupported database URL scheme {parts.scheme!r} in {text!r} "
            "(use a file path, sqlite:///path or postgresql://host/dbname)"
        )
    if parts.netloc:
        raise ConfigurationError(
            f"bad SQLite URL {text!r}: use sqlite:///relative/path or sqlite:////absolute/path"
        )
    if parts.fragment or text.endswith("#"):
        # urlsplit would cut the path at "#": sqlite:///a#b.db would open the file "a".
        raise ConfigurationError(
            f"bad SQLite URL {text!r}: '#' cannot appear in it; give the file as a plain path"
        )
    raw_path = parts.path.removeprefix("/")
    if not raw_path:
        raise ConfigurationError(f"the SQLite URL {text!r} names no file")
    options: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _SQLITE_OPTIONS:
            raise ConfigurationError(
                f"unknown SQLite URL option {key!r} (known: {', '.join(sorted(_SQLITE_OPTIONS))})"
            )
        allowed = _SQLITE_OPTIONS[key]
        value = value.lower()
        if allowed is not None and value not in allowed:
            raise ConfigurationError(
                f"bad value {value!r} for {key} (one of: {', '.join(allowed)})"
            )
        if allowed is None and not value.isdigit():
            raise ConfigurationError(f"bad value {value!r} for {key}: a whole number")
        options[key] = value
    return DatabaseConfig("sqlite", _absolute(Path(raw_path)), options)


def _absolute(path: Path) -> Path:
    """A database file's path made absolute once, against the directory of the moment: a task
    that changes directory must not send a worker's later connections to another file."""
    return Path(os.path.abspath(path.expanduser()))


def resolve_location(location: str | Path) -> str:
    """``location`` with an SQLite file's path made absolute (a plain path stays a plain path,
    a URL a URL); a PostgreSQL URL as given."""
    config = parse_database(location)
    if config.backend == "postgresql":
        return str(location).strip()
    return str(config.path) if "://" not in str(location) else config.url


def _parse_postgresql(text: str) -> DatabaseConfig:
    """A PostgreSQL URL: libpq reads it, except ``schema``, which is jobq's."""
    parts = urlsplit(text)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = DEFAULT_SCHEMA
    kept = []
    for key, value in query:
        if key == "schema":
            schema = value
        else:
            kept.append((key, value))
    if not _IDENTIFIER.match(schema):
        raise ConfigurationError(
            f"bad schema name {schema!r} in {text!r}: lower-case letters, digits and _, "
            "not starting with a digit"
        )
    # %20, not +: libpq reads a + in a URI as a plus sign (options=-c%20statement_timeout=...)
    conninfo = urlunsplit(parts._replace(query=urlencode(kept, quote_via=quote)))
    return DatabaseConfig("postgresql", conninfo=conninfo, schema=schema)


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
        store = open_store(location, create=False, migrate=False)
        try:
            facts = store.describe(integrity=True)
        finally:
            store.close()
        facts["problems"] = [] if facts.get("integrity") == "ok" else [facts.get("integrity")]
        return facts
    from .sqlite import SQLiteStore
    from .sqlite_files import damage_found, damage_mark, describe_file, mark_damaged, wal_state

    path = config.path
    wal = wal_state(path)  # first: any connection would rebuild the index
    found = damage_found(path)
    if found is not None or wal.startswith("lost"):
        # Read it as it is: opening it as a store would refuse (marked) or recover the index.
        facts = {"backend": "sqlite", "path": str(path), **describe_file(path, integrity=True)}
    else:
        try:
            store = SQLiteStore(config, create=False, migrate=False)
            try:
                facts = store.describe(integrity=True)
            finally:
                store.close()
        except CorruptDatabaseError:
            found = damage_found(path) or "damaged"
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
