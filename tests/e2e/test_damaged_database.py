"""Damaged SQLite files, as a crash, a bad disk or a careless clean-up leaves them: garbage
pages, a 0-byte file, a WAL deleted while it still held the latest jobs. What the user runs
is the real CLI; each refusal is one line, and nothing is written into a damaged file."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from jobq import JobQ
from tests.support import sample_tasks
from tests.support.helpers import TASKS, WorkerHandle, assert_refused

pytestmark = pytest.mark.slow

Run = Callable[..., subprocess.CompletedProcess[str]]


def fill(app: JobQ, count: int = 3000) -> None:
    sample_tasks.record.submit_many([(f"job-{number}",) for number in range(count)])
    app.close()  # checkpointed: the file holds every job, no WAL is left


def garble(database: str, pages: list[int]) -> None:
    """Overwrite whole pages (numbered from 1) with garbage, as a failing disk would."""
    with open(database, "r+b") as handle:
        for page in pages:
            handle.seek((page - 1) * 4096)
            handle.write(os.urandom(4096))


def root_page(database: str, table: str) -> int:
    connection = sqlite3.connect(database)
    try:
        row = connection.execute(
            "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
    finally:
        connection.close()
    return int(row[0])


def test_a_damaged_file_is_reported_by_check_then_refused_until_it_is_whole_again(
    sample_app: JobQ, database: str, jobq: Run, tmp_path: Path
) -> None:
    fill(sample_app)
    backup = tmp_path / "backup.db"
    shutil.copyfile(database, backup)
    garble(database, [3, 5, 8])
    size = os.path.getsize(database)

    checked = jobq("check")
    print(f"\ncheck of a damaged file: exit {checked.returncode}\n{checked.stdout}{checked.stderr}")
    assert_refused(checked, "integrity check failed")
    assert "integrity" in checked.stdout and "tables" in checked.stdout  # described anyway
    mark = Path(f"{database}-damaged")
    assert mark.exists() and "malformed" in mark.read_text()

    # Every later command refuses it in one line and writes nothing.
    for refused in (
        jobq("submit", f"{TASKS}.record", "more"),
        jobq("status"),
        jobq("list"),
        jobq("worker", "--app", f"{TASKS}:app", "--burst", "--procs", "1", timeout=30),
    ):
        assert_refused(refused, "damaged", "jobq check")
    assert os.path.getsize(database) == size

    # Restored from the backup: check passes, clears the mark, and the file is usable again.
    shutil.copyfile(backup, database)
    whole = jobq("check")
    assert whole.returncode == 0, whole.stderr
    assert "integrity       ok" in whole.stdout and "removed" in whole.stdout
    assert not mark.exists()
    assert jobq("submit", f"{TASKS}.record", "after-restore").returncode == 0


def test_a_pool_whose_claims_meet_damage_stops_at_once_instead_of_restarting(
    sample_app: JobQ, database: str, start_worker: Callable[..., WorkerHandle]
) -> None:
    fill(sample_app)
    # The table's root: its rows are unreadable, its indexes (what the supervisor reads)
    # are not. The worker processes meet the damage when they claim.
    garble(database, [root_page(database, "jobs")])
    for arguments in (("--procs", "2"), ("--procs", "2", "--burst"), ("--procs", "0")):
        worker = start_worker(*arguments, "--lease", "5")
        code = worker.wait(timeout=30)  # before: restarted for ever; a burst never ended
        output = worker.output()
        print(f"\nworker {' '.join(arguments)}: exit {code}; {output.count('damaged')} lines")
        assert code == 1, output
        assert "damaged" in output and "Traceback" not in output, output
        assert output.count("started worker process") <= 2, "a damaged pool was restarted"
        assert output.strip().splitlines()[-1].startswith("Error: the database"), output


def test_an_empty_file_is_not_turned_into_a_database_by_a_read(jobq: Run, database: str) -> None:
    Path(database).touch()
    for command in (("status",), ("list",), ("check",)):
        assert_refused(jobq(*command), "empty file", "0 bytes")
    assert os.path.getsize(database) == 0


KILLED_WRITER = """
import os, signal, sys
from jobq import JobQ
app = JobQ(sys.argv[1])
for number in range(20):
    app.submit("tests.support.sample_tasks.record", args=[number])
print("submitted", flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no checkpoint: the jobs live in the WAL alone
"""


def test_check_notices_a_wal_deleted_while_it_held_committed_jobs(
    jobq: Run, database: str, cli_env: dict[str, str]
) -> None:
    writer = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, database],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert writer.returncode == -signal.SIGKILL and writer.stdout.strip() == "submitted"
    wal = Path(f"{database}-wal")
    assert wal.stat().st_size > 0
    wal.unlink()  # the "stray" file a user cleans up after a crash
    checked = jobq("check")
    print(f"\ncheck after the WAL was deleted:\n{checked.stdout}{checked.stderr}")
    line = assert_refused(checked, "wal")
    assert "jobq.db-wal is missing" in line and "since the last checkpoint" in line
