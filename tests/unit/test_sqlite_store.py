"""SQLite-only behaviour of the store (the shared contract is in tests/contract)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

import jobq.store.sqlite
from jobq.errors import DatabaseBusyError, DatabaseError
from jobq.models import NewJob, Outcome
from jobq.store import open_store


def test_purge_deletes_in_chunks_and_counts_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobq.store.sqlite, "PURGE_CHUNK", 3)
    store = open_store(tmp_path / "purge.db")
    store.register_worker(
        "w", kind="worker", pid=1, host="h", supervisor_pid=None, queues=None, threads=8
    )
    ids = store.enqueue([NewJob(task="t", args="[]", kwargs="{}") for _ in range(8)])
    jobs = store.claim("w", None, 8)
    now = time.time()
    store.complete([Outcome(job.id, "w", job.claim, "succeeded", finished_at=now) for job in jobs])
    time.sleep(0.01)
    # Seven in chunks of 3, 3 and 1; the newest job stays (its id must never be handed out again).
    assert store.purge(["succeeded"], older_than=0) == 7
    assert store.job_statuses(ids) == {ids[-1]: "succeeded"}
    store.close()


def test_threads_that_end_leave_no_open_database_file_behind(tmp_path: Path) -> None:
    """A web app submitting from a thread per request must not pile up file handles."""
    import gc
    import os
    import threading

    store = open_store(tmp_path / "threads.db")

    def open_files() -> int:
        return sum(
            1
            for name in os.listdir("/proc/self/fd")
            if os.path.realpath(f"/proc/self/fd/{name}").startswith(str(tmp_path))
        )

    def submit_from_threads(count: int) -> int:
        for _ in range(count):
            thread = threading.Thread(target=lambda: store.enqueue([NewJob("t", "[]", "{}")]))
            thread.start()
            thread.join(timeout=10)
        gc.collect()
        return open_files()

    store.counts()  # this thread's connection: the file, its -wal and -shm
    before = open_files()
    # SQLite may keep one closed connection's descriptor for reuse while another connection
    # of the process holds locks on the file: one more at most, however many threads.
    after = submit_from_threads(30)
    assert after <= before + 1
    assert submit_from_threads(30) == after
    assert store.counts()["counts"]["queued"] == 60
    store.close()


def test_a_store_dropped_without_close_leaves_no_open_file(tmp_path: Path) -> None:
    import gc
    import os

    def open_files() -> int:
        return sum(
            1
            for name in os.listdir("/proc/self/fd")
            if os.path.realpath(f"/proc/self/fd/{name}").startswith(str(tmp_path))
        )

    for _ in range(5):
        store = open_store(tmp_path / "dropped.db")
        store.enqueue([NewJob("t", "[]", "{}")])
        del store
    gc.collect()
    assert open_files() == 0


def test_single_submits_from_many_threads_get_their_own_ids_and_wait_out_a_held_lock(
    tmp_path: Path,
) -> None:
    """A lone submit is one statement in its own transaction: the id it returns is its row's,
    and a write lock held elsewhere makes it wait (busy handler), not fail."""
    path = tmp_path / "ids.db"
    store = open_store(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE jobq_migrations SET applied_at = applied_at")  # the lock, taken
    returned: dict[str, int] = {}

    def submit(name: str) -> None:
        for index in range(50):
            label = f"{name}-{index}"
            [job_id] = store.enqueue([NewJob(task="t", args=f'["{label}"]', kwargs="{}")])
            returned[label] = job_id

    threads = [threading.Thread(target=submit, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    assert not returned  # every submit is waiting for the lock
    holder.execute("COMMIT")
    for thread in threads:
        thread.join(timeout=30)
    assert len(returned) == 200 and len(set(returned.values())) == 200
    for label, job_id in returned.items():
        assert store.get_job(job_id).args == [label]
    holder.close()
    store.close()


def test_a_submit_never_joins_a_transaction_left_open_on_its_connection(tmp_path: Path) -> None:
    """Were it to, the job would be lost with that transaction although submit returned."""
    store = open_store(tmp_path / "open.db")
    store._connection().execute("BEGIN IMMEDIATE")  # as an interrupted write could leave it
    with pytest.raises(DatabaseError, match="transaction"):
        store.enqueue([NewJob(task="t", args="[]", kwargs="{}")])
    store.close()


def _hold_write_lock(path: Path, release: threading.Event, held: threading.Event):
    """Another connection takes the write lock and keeps it until ``release`` (10 s at most)."""

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None, timeout=5)
        other.execute("BEGIN IMMEDIATE")
        held.set()
        release.wait(10)
        other.execute("ROLLBACK")
        other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    return thread


def test_a_write_waits_out_a_lock_within_its_busy_timeout(tmp_path: Path) -> None:
    """A write transaction waits for another process's lock up to the URL's busy_timeout,
    which is the connection's own."""
    path = tmp_path / "slices.db"
    store = open_store(f"sqlite:///{path}?busy_timeout=5000")
    store.enqueue([NewJob(task="t", args="[]", kwargs="{}")])  # creates the file and schema
    held, release = threading.Event(), threading.Event()
    holder = _hold_write_lock(path, release, held)
    assert held.wait(5)
    threading.Timer(0.15, release.set).start()
    ids = store.enqueue([NewJob(task="t", args="[]", kwargs="{}") for _ in range(2)])
    assert release.is_set()  # it waited the lock out
    holder.join()
    assert len(ids) == 2 and store.job_statuses(ids) == dict.fromkeys(ids, "queued")
    connection = store._connection()  # type: ignore[attr-defined]
    assert connection.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    store.close()


def test_a_write_gives_up_after_its_busy_timeout_having_written_nothing(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    store = open_store(f"sqlite:///{path}?busy_timeout=100")
    store.enqueue([NewJob(task="t", args="[]", kwargs="{}")])
    held, release = threading.Event(), threading.Event()
    holder = _hold_write_lock(path, release, held)
    assert held.wait(5)
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseBusyError, match="locked by another process"):
            store.enqueue([NewJob(task="t", args="[]", kwargs="{}") for _ in range(2)])
        assert time.monotonic() - started >= 0.1  # the whole timeout
        assert holder.is_alive()  # and not a wait for the lock to come free
    finally:
        release.set()
        holder.join()
    assert store.counts()["counts"]["queued"] == 1  # nothing of the refused write
    store.close()
