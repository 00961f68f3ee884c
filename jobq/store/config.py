"""Where a store lives: database locations (paths, sqlite:/// and postgresql:// URLs) parsed
and checked before anything is opened."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from ..errors import ConfigurationError

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
