"""The examples in examples/ run as a user would run them, and print what they promise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from jobq import JobQ
from tests.support.helpers import ROOT, subprocess_env

pytestmark = pytest.mark.slow


def run_example(name: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run ``python examples/NAME.py`` with short sleeps; return the process and its database."""
    database = str(tmp_path / "example.db")
    env = subprocess_env(JOBQ_DB=database, SLEEP_SCALE="0.05")
    process = subprocess.run(
        [sys.executable, str(ROOT / "examples" / f"{name}.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 0, process.stdout + process.stderr
    return process, database


def statuses(database: str) -> list[str]:
    app = JobQ(database)
    try:
        return [record.status for record in app.store.list_jobs(limit=1000)]
    finally:
        app.close()


def test_pool_callback_runs_eight_jobs_and_calls_back_for_each(tmp_path: Path) -> None:
    process, database = run_example("pool_callback", tmp_path)
    lines = process.stdout.splitlines()

    # The callback ran once per job, each printing a whole line of its own.
    completed = sorted(int(line.split()[-1]) for line in lines if line.startswith("Complete task "))
    assert completed == list(range(8)), process.stdout
    assert len([line for line in lines if line.startswith("start process ")]) == 8
    results = [line for line in lines if re.fullmatch(r"job \d+: succeeded, result \d+", line)]
    assert [int(line.rsplit(" ", 1)[-1]) for line in results] == list(range(8))
    assert statuses(database) == ["succeeded"] * 8


def test_producer_consumer_downloads_every_file_and_retries_one(tmp_path: Path) -> None:
    process, database = run_example("producer_consumer", tmp_path)
    out = process.stdout

    for name in ("1.jpg", "5.exe", "6.csv"):
        assert re.search(
            rf"^job \d+ producer_consumer\.download: 'saved {re.escape(name)}'$", out, re.MULTILINE
        ), out
    for song in ("Li Bai", "Shuohao Buku", "Daoxiang"):
        assert f"producer_consumer.listen_music: '{song}'" in out
    # 5.exe raised Retry on its first attempt and succeeded on the second.
    assert re.search(r"downloading 5\.exe \(job \d+, attempt 2\)", out), out
    assert not re.search(r"downloading (1\.jpg|6\.csv) \(job \d+, attempt 2\)", out), out
    assert "consumer exited with code 0" in out
    assert statuses(database) == ["succeeded"] * 6
