"""Shared fixtures: a fresh database per test, and helpers that run the real CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobq import JobQ

ROOT = Path(__file__).resolve().parent.parent
JOBQ = [sys.executable, "-m", "cli"]


@pytest.fixture
def database(tmp_path: Path) -> str:
    return str(tmp_path / "jobq.db")


@pytest.fixture
def app(database: str) -> Iterator[JobQ]:
    application = JobQ(database)
    yield application
    application.close()


@pytest.fixture
def cli_env(database: str, tmp_path: Path) -> dict[str, str]:
    """Environment for CLI subprocesses: the test database, the sample tasks importable."""
    env = dict(os.environ)
    env["JOBQ_DB"] = database
    env["JOBQ_TEST_LOG"] = str(tmp_path / "ran.log")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("JOBQ_APP", None)
    return env


@pytest.fixture
def jobq(cli_env: dict[str, str], tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``jobq ARGS...`` to completion (20 s at most) and return the finished process."""

    def run(*args: str, timeout: float = 20, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*JOBQ, *args], env={**cli_env, **env}, cwd=tmp_path, capture_output=True,
            text=True, timeout=timeout,
        )

    return run


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

    def output(self) -> str:
        return self.log.read_text()

    def children(self) -> list[int]:
        """Pids of the supervisor's live child processes."""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except FileNotFoundError:
            return []


@pytest.fixture
def start_worker(cli_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., WorkerHandle]]:
    """Start ``jobq worker --app tests.support.sample_tasks:app ARGS...``; killed at teardown."""
    handles: list[WorkerHandle] = []

    def start(
        *args: str, app: str = "tests.support.sample_tasks:app", env: dict[str, str] | None = None
    ) -> WorkerHandle:
        log = tmp_path / f"worker-{len(handles)}.log"
        process = subprocess.Popen(
            [*JOBQ, "worker", "--app", app, *args], env={**cli_env, **(env or {})}, cwd=tmp_path,
            stdout=log.open("w"), stderr=subprocess.STDOUT, text=True,
        )
        handle = WorkerHandle(process, log)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        if handle.process.poll() is None:
            for child in handle.children():
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            handle.process.kill()
            handle.process.wait(timeout=10)


def wait_for(condition: Callable[[], object], timeout: float = 10, interval: float = 0.02) -> object:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {condition}")
        time.sleep(interval)


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
