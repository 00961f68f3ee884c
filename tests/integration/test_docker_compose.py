"""docker-compose.yml and the Dockerfile, tested without Docker (it does not run here).

The file must parse and hang together (a health-checked PostgreSQL, a migration step the
workers wait for, workers that scale), and every command it gives must be a real jobq
command that starts: each is run here as the container would run it, with its environment,
against the local PostgreSQL (a fresh schema instead of the compose database).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobq import JobQ
from tests.support import postgres
from tests.support.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]

pytestmark = list(postgres.MARKS)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture
def database() -> Iterator[str]:
    with postgres.fresh_database() as url:
        yield url


def service_environment(service: dict[str, Any], database: str) -> dict[str, str]:
    """The service's environment as the container sees it, the database made local."""
    env = {key: str(value) for key, value in service["environment"].items()}
    assert env["JOBQ_DB"].startswith("postgresql://jobq:jobq@postgres:5432/jobq")
    env["JOBQ_DB"] = database
    return {**os.environ, **env, "PYTHONPATH": str(ROOT)}


def run_command(service: dict[str, Any], database: str, **kwargs: Any) -> Any:
    """Start the service's command the way its image does (ENTRYPOINT ["jobq"])."""
    return subprocess.Popen(
        [sys.executable, "-m", "jobq", *service["command"]],
        env=service_environment(service, database),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def test_the_file_hangs_together(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"postgres", "migrate", "worker", "jobq"}
    database = services["postgres"]
    assert "pg_isready" in " ".join(database["healthcheck"]["test"])
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("worker", "jobq"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"
    worker = services["worker"]
    assert worker["command"][:3] == ["worker", "--procs", "5"]
    # Scaling needs no fixed container name or published port on the workers.
    assert "container_name" not in worker and "ports" not in worker
    grace = float(worker["command"][worker["command"].index("--grace") + 1])
    assert float(worker["stop_grace_period"].rstrip("s")) > grace
    assert "pgdata" in compose["volumes"]
    # Every jobq service runs the image built from ./Dockerfile.
    for name in ("migrate", "worker", "jobq"):
        assert services[name]["build"] == "." and services[name]["image"] == "jobq:local"


def test_the_dockerfile_copies_what_exists_and_installs_a_real_extra() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (.+?) \S+$", text, flags=re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"COPY {path}: no such file"
    extras = re.findall(r"'\.\[(\w+)\]'", text)
    assert extras == ["postgres"]
    assert "postgres = [" in (ROOT / "pyproject.toml").read_text()
    assert 'ENTRYPOINT ["jobq"]' in text


def test_the_commands_start_against_postgresql(compose: dict[str, Any], database: str) -> None:
    services = compose["services"]
    migrate = run_command(services["migrate"], database)
    output, _ = migrate.communicate(timeout=60)
    assert migrate.returncode == 0, output
    assert "schema migrated from version 0" in output

    worker = run_command(services["worker"], database, start_new_session=True)
    try:
        app = JobQ(database)
        wait_for(lambda: len(app.store.workers()) == 5, timeout=30)
        job = app.submit("examples.tasks.add", args=[2, 3])
        assert job.result(timeout=30) == 5
        status = run_command(services["jobq"], database)
        shown, _ = status.communicate(timeout=60)
        assert status.returncode == 0, shown
        assert "succeeded" in shown and "workers" in shown
        app.close()
    finally:
        os.kill(worker.pid, signal.SIGTERM)
        started = time.monotonic()
        output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, output
    assert time.monotonic() - started < 30
    assert "succeeded: 5" in output  # the example's completion callback ran
