"""What jobq can tell of an SQLite database file from outside, damaged or not: the mark a
process leaves when it finds the file damaged, whether the write-ahead log the file needs is
still there, and a description for ``jobq check`` that does not stop at the first bad page.

A small database lives in its WAL (``jobq.db-wal``) until a checkpoint copies it into the
main file: every job committed since the last checkpoint exists only there. The wal-index
(``jobq.db-shm``) remembers how many frames the WAL held; if the WAL is gone or shorter, what
it held is lost, and the first connection to open the file rebuilds the index and forgets it.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

_WAL_HEADER = 32  # bytes before the first frame
_FRAME_HEADER = 24  # bytes before each frame's page


def damage_mark(path: Path) -> Path:
    """The file that says ``path`` was found damaged (``jobq.db-damaged``)."""
    return path.with_name(path.name + "-damaged")


def mark_damaged(path: Path, reason: str) -> None:
    """Leave the mark (once), so that every later command refuses the file in one line
    instead of writing into it: jobq knows of damage only where it has read."""
    mark = damage_mark(path)
    try:
        descriptor = os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError:
        return  # marked already, or nowhere to write the mark: the error still goes up
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(f"{reason}, found {time.strftime('%Y-%m-%d %H:%M:%S')} by pid {os.getpid()}\n")


def damage_found(path: Path) -> str | None:
    """What the mark says, or None when the file is not marked damaged."""
    try:
        return damage_mark(path).read_text("utf-8", errors="replace").strip() or "damaged"
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"damaged (the mark cannot be read: {error.strerror})"


def wal_state(path: Path) -> str:
    """Whether the WAL holds what the wal-index says it held. Read before any connection
    opens the file: the first one rebuilds the index from what is there."""
    shm, wal = Path(f"{path}-shm"), Path(f"{path}-wal")
    try:
        with open(shm, "rb") as handle:
            header = handle.read(48)
    except OSError:
        return "ok" if wal.exists() else "none"
    if len(header) < 20:
        return "ok"
    _version, _unused, _change, initialised, _endian, page, frames = struct.unpack(
        "=IIIBBHI", header[:20]
    )
    if not initialised or not frames:
        return "ok"
    needed = _WAL_HEADER + frames * (_FRAME_HEADER + (65536 if page == 1 else page))
    size = wal.stat().st_size if wal.exists() else None
    if size is not None and size >= needed:
        return "ok"
    found = "is missing" if size is None else f"holds {size} bytes"
    return (
        f"lost: {wal.name} {found}, but {shm.name} says it held {frames} pages "
        f"({needed} bytes); every job committed since the last checkpoint is gone. If you "
        f"still have the {wal.name} file, put it back before any jobq command opens the database"
    )


def describe_file(path: Path, *, integrity: bool) -> dict[str, Any]:
    """Sizes, schema version, journal mode, row counts and (``integrity``) SQLite's integrity
    check, through a read-only connection; a fact the damage hides reads 'unreadable: ...'."""
    wal = Path(f"{path}-wal")
    facts: dict[str, Any] = {
        "size_bytes": path.stat().st_size,
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
    }
    connection = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=5)
    try:

        def read(sql: str) -> list[Any]:
            return connection.execute(sql).fetchall()

        facts["schema_version"] = _guarded(
            lambda: read("SELECT COALESCE(MAX(version), 0) FROM jobq_migrations")[0][0]
        )
        facts["journal_mode"] = _guarded(lambda: read("PRAGMA journal_mode")[0][0])
        if integrity:
            facts["integrity"] = _guarded(
                lambda: "; ".join(str(row[0]) for row in read("PRAGMA integrity_check"))
            )
        facts["tables"] = _guarded(lambda: _row_counts(connection))
    finally:
        connection.close()
    return facts


def _row_counts(connection: sqlite3.Connection) -> dict[str, Any]:
    import sqlite_utils  # only operators' `jobq check` needs it: keep it off workers

    tables = sqlite_utils.Database(connection).tables
    return {table.name: _guarded(lambda table=table: table.count) for table in tables}


def _guarded(read: Any) -> Any:
    try:
        return read()
    except sqlite3.Error as error:
        return f"unreadable: {error}"
