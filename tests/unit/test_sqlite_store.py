"""SQLite-only behaviour of the store (the shared contract is in tests/contract)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import jobq.store.sqlite
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
