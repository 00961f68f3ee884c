"""Shared fixtures: a fresh database per test, the sample tasks' app on it, and helpers that
run the real CLI. Plain helper functions are in tests/support/helpers.py."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobq import JobQ
from tests.support import sample_tasks
from tests.support.helpers import JOBQ, SAMPLE_APP, WorkerHandle, run_log, subprocess_env
from tests.support.postgres import fresh_database


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The test's database: an SQLite file, or (``BOTH_BACKENDS``, or parametrized
    indirectly with "postgresql") a fresh schema on the test PostgreSQL server."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield str(tmp_path / "jobq.db")
        return
    with fresh_database() as url:
        yield url


@pytest.fixture
def app(database: str) -> Iterator[JobQ]:
    application = JobQ(database)
    yield application
    application.close()


@pytest.fixture
def sample_app(database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[JobQ]:
    """The sample tasks' app (``tests.support.sample_tasks:app``) on the test database, as
    ``--app`` gives it to a worker: jobs get the tasks' own options (``crash``, ``segfault``
    and ``hog`` have max_attempts=2, ``chaos.touch`` 100, ``fail`` a short backoff...). Tasks
    run in this process log to the same JOBQ_TEST_LOG as the worker processes."""
    monkeypatch.setenv("JOBQ_TEST_LOG", str(run_log(tmp_path)))
    application = sample_tasks.app
    previous = application.database
    application.use_database(database)
    yield application
    application.use_database(previous)


@pytest.fixture
def cli_env(database: str, tmp_path: Path) -> dict[str, str]:
    """Environment for CLI subprocesses: the test database, the sample tasks importable."""
    return subprocess_env(JOBQ_DB=database, JOBQ_TEST_LOG=str(run_log(tmp_path)))


@pytest.fixture
def jobq(
    cli_env: dict[str, str], tmp_path: Path
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``jobq ARGS...`` to completion (20 s at most) and return the finished process."""

    def run(*args: str, timeout: float = 20, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*JOBQ, *args],
            env={**cli_env, **env},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def start_worker(cli_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., WorkerHandle]]:
    """Start ``jobq worker --app tests.support.sample_tasks:app ARGS...`` (``app=None``: no
    --app); killed at teardown."""
    handles: list[WorkerHandle] = []

    def start(
        *args: str, app: str | None = SAMPLE_APP, env: dict[str, str] | None = None
    ) -> WorkerHandle:
        log = tmp_path / f"worker-{len(handles)}.log"
        process = subprocess.Popen(
            [*JOBQ, "worker", *(["--app", app] if app else []), *args],
            env={**cli_env, **(env or {})},
            cwd=tmp_path,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            text=True,
        )
        handle = WorkerHandle(process, log)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        if handle.process.poll() is None:
            handle.kill_children()
            handle.process.kill()
            handle.process.wait(timeout=10)
