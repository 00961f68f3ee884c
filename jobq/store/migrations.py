"""Finding and splitting the numbered SQL migrations shipped with jobq.

Migrations live in ``migrations/<backend>/NNNN_name.sql`` at the top of the source tree; the
wheel carries them as ``jobq/migrations``. The store applies them in order and records each
in the ``jobq_migrations`` table.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The migration's statements, split where SQLite says a statement is complete."""
        statements: list[str] = []
        buffer = ""
        for line in self.sql.splitlines(keepends=True):
            if not buffer and (not line.strip() or line.lstrip().startswith("--")):
                continue
            buffer += line
            if sqlite3.complete_statement(buffer):
                statements.append(buffer.strip())
                buffer = ""
        if buffer.strip():
            raise ValueError(f"migration {self.version:04d}_{self.name} ends mid-statement")
        return statements


def _migrations_root() -> Path:
    packaged = Path(__file__).resolve().parent.parent / "migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "migrations"


@cache
def migrations(backend: str) -> tuple[Migration, ...]:
    """Every migration of ``backend`` ("sqlite", "postgresql"), in version order."""
    folder = _migrations_root() / backend
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"badly named migration file: {path}")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text("utf-8")))
    versions = [migration.version for migration in found]
    if versions != list(range(1, len(found) + 1)):
        raise ValueError(f"migrations in {folder} must be numbered 1..n without gaps: {versions}")
    return tuple(found)


def apply_pending(
    connection: Any, known: Sequence[Migration], run: Callable[[Migration], None], mark: str
) -> list[int]:
    """In the caller's transaction, jobq_migrations existing: apply each of ``known`` newer
    than the version recorded (read here, inside the lock: another process may have migrated
    meanwhile) with ``run``, recording it. ``mark``: the driver's parameter mark."""
    recorded = connection.execute("SELECT COALESCE(MAX(version), 0) FROM jobq_migrations")
    version = recorded.fetchone()[0]
    applied = []
    record = (
        f"INSERT INTO jobq_migrations (version, name, applied_at) VALUES ({mark}, {mark}, {mark})"
    )
    for migration in known:
        if migration.version <= version:
            continue
        run(migration)
        connection.execute(record, (migration.version, migration.name, time.time()))
        applied.append(migration.version)
    return applied
