"""Plain helpers shared by the test modules (fixtures live in tests/conftest.py).

Processes: ``WorkerHandle`` (a ``jobq worker`` subprocess), ``pid_alive``, ``kill_process``.
Waiting: ``wait_for``, ``wait_for_status``. The sample tasks' run log (JOBQ_TEST_LOG):
``run_log``, ``log_lines``, ``pids_of``. The CLI: ``cli_json``, ``cli_status``,
``assert_refused``. The database: ``record``, ``all_have``, ``query``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from jobq import JobQ
from jobq.records import JobRecord

ROOT = Path(__file__).resolve().parents[2]
TASKS = "tests.support.sample_tasks"
SAMPLE_APP = f"{TASKS}:app"
JOBQ = [sys.executable, "-m", "jobq"]  # the CLI, as a subprocess
FINISHED = ("succeeded", "failed", "cancelled")


# -- processes -----------------------------------------------------------------------------


def subprocess_env(**values: str) -> dict[str, str]:
    """This process's environment plus ``values``, with the project importable and no
    JOBQ_APP: what a jobq subprocess (the CLI, an example) runs with."""
    env = dict(os.environ)
    env.update(values)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("JOBQ_APP", None)
    return env


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def kill_process(pid: int) -> bool:
    """SIGKILL ``pid``; False when there was no such process any more."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


class WorkerHandle:
    """A ``jobq worker`` running as a real subprocess."""

    def __init__(self, process: subprocess.Popen[str], log: Path) -> None:
        self.process = process
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float) -> int:
        """SIGTERM, then the exit code (at most ``timeout`` s later)."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text()

    def children(self) -> list[int]:
        """Pids of the supervisor's live child processes."""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except FileNotFoundError:
            return []

    def kill_children(self) -> None:
        """SIGKILL every child process of the supervisor."""
        for child in self.children():
            kill_process(child)

    def kill_random_child(self, rng: random.Random) -> int | None:
        """SIGKILL one random live child process of the supervisor; its pid, or None."""
        children = self.children()
        if not children:
            return None
        victim = rng.choice(children)
        return victim if kill_process(victim) else None


# -- waiting -------------------------------------------------------------------------------


def wait_for(
    condition: Callable[[], object], timeout: float = 10, interval: float = 0.02
) -> object:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {condition}")
        time.sleep(interval)


def record(app: JobQ, job_id: int) -> JobRecord:
    return app.store.get_job(job_id)


def all_have(app: JobQ, ids: Sequence[int], *wanted: str) -> bool:
    """Every job of ``ids`` is in the database with one of the ``wanted`` statuses."""
    statuses = app.store.job_statuses(ids)
    return len(statuses) == len(set(ids)) and all(status in wanted for status in statuses.values())


def written_pid(path: Path, timeout: float = 30) -> int:
    """The pid a command wrote to ``path`` (``echo $! > path``), once the whole line is there:
    the shell creates the file before echo writes to it."""

    def line() -> str | None:
        text = path.read_text() if path.exists() else ""
        return text if text.endswith("\n") else None

    return int(str(wait_for(line, timeout=timeout)))


def wait_for_status(
    app: JobQ, ids: Sequence[int], *wanted: str, timeout: float = 10, interval: float = 0.02
) -> None:
    """Wait (bounded) until every job of ``ids`` has one of the ``wanted`` statuses."""
    wait_for(lambda: all_have(app, ids, *wanted), timeout=timeout, interval=interval)


# -- the sample tasks' run log -------------------------------------------------------------


def run_log(tmp_path: Path) -> Path:
    """The JOBQ_TEST_LOG file the sample tasks append to (see tests/support/sample_tasks.py)."""
    return tmp_path / "ran.log"


def log_lines(tmp_path: Path) -> list[tuple[str, int, int]]:
    """(tag, job id, pid) for every side effect the sample tasks recorded, in log order."""
    path = run_log(tmp_path)
    if not path.exists():
        return []
    lines = []
    for line in path.read_text().splitlines():
        tag, job_id, pid = line.split()
        lines.append((tag, int(job_id), int(pid)))
    return lines


def pids_of(tmp_path: Path, tag: str, job_id: int) -> list[int]:
    """Pids of the processes that logged ``tag`` for ``job_id``, in order."""
    return [pid for t, j, pid in log_lines(tmp_path) if t == tag and j == job_id]


# -- the CLI -------------------------------------------------------------------------------


def cli_json(jobq: Callable[..., Any], *args: str) -> Any:
    """``jobq ARGS... --json``: it must succeed; its output, parsed."""
    done = jobq(*args, "--json")
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return json.loads(done.stdout)


def cli_submit(jobq: Callable[..., Any], *args: str) -> int:
    """``jobq submit ARGS...``: it must succeed and print the new job's id alone."""
    done = jobq("submit", *args)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def cli_status(jobq: Callable[..., Any], *args: object) -> Any:
    """``jobq status [ID] --json``, as a user would run it."""
    return cli_json(jobq, "status", *map(str, args))


def assert_refused(result: Any, *words: str) -> str:
    """Non-zero exit, no traceback, one error line (besides click's usage hint) naming it."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"accepted:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in output
    assert "RecursionError" not in output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    problem = [line for line in lines if not line.startswith(("Usage:", "Try '"))]
    assert len(problem) == 1, f"expected one error line, got:\n{result.stderr}"
    for word in words:
        assert word.lower() in problem[0].lower(), f"{word!r} not in {problem[0]!r}"
    return problem[0]


# -- the database --------------------------------------------------------------------------


def query(
    database: str, sql: str, parameters: Sequence[Any] = (), timeout: float = 5.0
) -> list[Any]:
    """Read with a connection of our own (the standard ``sqlite3`` module, not jobq), as an
    operator's ``sqlite3`` shell would; ``timeout``: how long to wait for a lock."""
    connection = sqlite3.connect(database, timeout=timeout)
    try:
        return connection.execute(sql, parameters).fetchall()
    finally:
        connection.close()
