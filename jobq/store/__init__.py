"""Stores: where jobs live. ``open_store`` picks the backend from a path or URL."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from ..errors import ConfigurationError
from .base import Store

__all__ = ["DatabaseConfig", "Store", "open_store", "parse_database"]

DEFAULT_DATABASE = "jobq.db"
# URL options: allowed values, or None for a whole number. busy_timeout is in milliseconds;
# max_page_count caps the database's size in pages (a full "disk" then refuses writes).
_SQLITE_OPTIONS = {
    "synchronous": ("normal", "full", "off", "extra"),
    "busy_timeout": None,
    "max_page_count": None,
}


@dataclass(frozen=True)
class DatabaseConfig:
    """A parsed database location."""

    backend: str  # "sqlite"
    path: Path
    options: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        query = "&".join(f"{key}={value}" for key, value in sorted(self.options.items()))
        return f"sqlite:///{self.path}" + (f"?{query}" if query else "")


def parse_database(location: str | Path) -> DatabaseConfig:
    """Parse a plain path or a ``sqlite:///path?synchronous=full`` URL.

    ``sqlite:///jobq.db`` is relative to the current directory; ``sqlite:////var/jobq.db``
    is absolute. Raises :class:`ConfigurationError` naming what is wrong.
    """
    text = str(location).strip()
    if not text:
        raise ConfigurationError("the database location is empty")
    if "://" not in text:
        return DatabaseConfig("sqlite", Path(text).expanduser())
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in ("postgresql", "postgres"):
        raise ConfigurationError(
            f"PostgreSQL is not supported by this version of jobq yet: {text!r}"
        )
    if scheme != "sqlite":
        raise ConfigurationError(
            f"unsupported database URL scheme {parts.scheme!r} in {text!r} "
            "(use a file path or sqlite:///path)"
        )
    if parts.netloc:
        raise ConfigurationError(
            f"bad SQLite URL {text!r}: use sqlite:///relative/path or sqlite:////absolute/path"
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
    return DatabaseConfig("sqlite", Path(raw_path).expanduser(), options)


def open_store(location: str | Path, *, create: bool = True) -> Store:
    """Open (and migrate) the store at ``location``.

    ``create=False`` refuses to create a missing database: read-only commands use it so that
    a typo in ``--db`` names the problem instead of making an empty file.
    """
    config = parse_database(location)
    from .sqlite import SQLiteStore

    return SQLiteStore(config, create=create)
