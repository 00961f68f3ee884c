"""Huey tasks for bench/compare.py (``huey_consumer huey_tasks.huey -w 5 -k process``).

``BENCH_HUEY_DB`` names the SQLite file. ``BENCH_HUEY_SYNC`` picks the durability:

- ``default`` (or unset): ``SqliteHuey(filename=...)`` exactly as documented. Huey's
  ``SqliteStorage`` takes ``fsync=None`` by default and then issues no ``PRAGMA synchronous``
  at all, so SQLite's compiled-in default applies: FULL (2), an fsync per commit, in WAL mode.
- ``normal``: a subclass that sets ``PRAGMA synchronous=NORMAL`` on each connection. Huey has
  no option for this (its ``fsync=True/False`` gives FULL or OFF); it exists only so that one
  row of the comparison runs both systems at the same durability.
- ``off``: Huey's own ``fsync=False`` (``synchronous=OFF``, less durable than anything jobq
  offers).
"""

from __future__ import annotations

import os

import peer_common
from huey import SqliteHuey
from huey.storage import SqliteStorage


class NormalSyncSqliteStorage(SqliteStorage):
    def _create_connection(self):  # type: ignore[no-untyped-def]
        conn = super()._create_connection()
        conn.execute("pragma synchronous=NORMAL")
        return conn


def open_huey(filename: str, sync: str) -> SqliteHuey:
    if sync == "normal":
        return SqliteHuey("bench", filename=filename, storage_class=NormalSyncSqliteStorage)
    if sync == "off":
        return SqliteHuey("bench", filename=filename, fsync=False)
    return SqliteHuey("bench", filename=filename)


huey = open_huey(os.environ.get("BENCH_HUEY_DB", "huey.db"), os.environ.get("BENCH_HUEY_SYNC", ""))


@huey.task()
def noop(number):  # type: ignore[no-untyped-def]
    peer_common.mark()


@huey.task()
def stamp(index):  # type: ignore[no-untyped-def]
    peer_common.stamp(index)


def submitter(filename: str, sync: str) -> tuple[SqliteHuey, object]:
    """Another Huey on ``filename`` with the same no-op task, to time submits side by side."""
    other = open_huey(filename, sync)

    @other.task(name="noop")
    def noop(number):  # type: ignore[no-untyped-def]
        peer_common.mark()

    return other, noop
