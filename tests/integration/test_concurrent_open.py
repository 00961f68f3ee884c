"""Several processes creating and migrating one new database at the same moment."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobq.store import open_store

OPEN_AND_SUBMIT = """
import sys, time
from jobq import JobQ
start = float(sys.argv[2])
while time.time() < start:
    pass
app = JobQ(sys.argv[1])
print(app.submit("anything", args=[1]).id)
"""


@pytest.mark.parametrize("round_", range(4))
def test_processes_racing_to_create_a_database_all_succeed(tmp_path: Path, round_: int) -> None:
    database = tmp_path / "new.db"
    start = time.time() + 0.6  # every process spins until the same instant, then opens
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AND_SUBMIT, str(database), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    results = [process.communicate(timeout=30) for process in processes]
    errors = [
        stderr
        for process, (_, stderr) in zip(processes, results, strict=True)
        if process.returncode
    ]
    assert errors == []
    ids = sorted(int(stdout) for stdout, _ in results)
    assert len(set(ids)) == 8
    store = open_store(database)
    assert store.counts()["counts"]["queued"] == 8
    assert store.describe(integrity=True)["integrity"] == "ok"
    store.close()
