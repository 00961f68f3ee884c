"""PostgreSQL connections that fail mid-run: the workers reconnect and nothing is lost.

The server ends the workers' sessions again and again while they drain (what a restart or a
failover looks like from the client: every session cut, at any point of a transaction,
commits included), and in another test the server really restarts. Every job must succeed,
run once, and have its completion callback run once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobq import JobQ
from tests.support import postgres, sample_tasks
from tests.support.helpers import FINISHED, WorkerHandle, log_lines, wait_for, wait_for_status

pytestmark = [pytest.mark.slow, *postgres.MARKS]

WORKERS_NAME = "jobq-test-worker"  # the application_name the workers' sessions carry


@pytest.fixture
def database(request: pytest.FixtureRequest) -> Iterator[str]:
    restarts = request.node.get_closest_marker("restarts_server") is not None
    with postgres.fresh_database(restarts_server=restarts) as url:
        yield url


def cut_sessions() -> int:
    """End every session of the workers under test; returns how many were ended."""
    import psycopg

    with psycopg.connect(postgres.SERVER, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (WORKERS_NAME,),
        ).fetchall()
    return len(rows)


def counts(tmp_path: Path, tag: str) -> Counter[int]:
    return Counter(job_id for t, job_id, _ in log_lines(tmp_path) if t == tag)


def test_sessions_cut_again_and_again_lose_nothing_and_run_nothing_twice(
    sample_app: JobQ, start_worker: Callable[..., WorkerHandle], tmp_path: Path
) -> None:
    worker = start_worker(
        "--procs", "2", "--threads", "4", "--lease", "30", env={"PGAPPNAME": WORKERS_NAME}
    )
    wait_for(lambda: len(sample_app.store.workers()) == 2, timeout=15)
    ids: list[int] = []
    cuts = sessions = 0
    for _ in range(30):
        ids += [job.id for job in sample_tasks.noted.submit_many([[n] for n in range(20)])]
        time.sleep(0.05)
        sessions += cut_sessions()
        cuts += 1
        time.sleep(0.1)
    wait_for_status(sample_app, ids, *FINISHED, timeout=90, interval=0.1)

    statuses = Counter(sample_app.store.job_statuses(ids).values())
    runs, callbacks = counts(tmp_path, "run"), counts(tmp_path, "noted")
    output = worker.output()
    print(
        f"\n{len(ids)} jobs, {cuts} cuts ending {sessions} sessions; runs {sum(runs.values())},"
        f" callbacks {sum(callbacks.values())}; reconnect warnings"
        f" {output.count('no usable connection')}; lost commits: claims handed back"
        f" {output.count('claimed by a commit lost')}, outcomes found recorded"
        f" {output.count('recorded by a commit lost')}"
    )
    assert statuses == {"succeeded": len(ids)}, statuses
    assert sessions >= cuts, "the cuts ended hardly any session"
    assert set(runs) == set(ids) and max(runs.values()) == 1, runs.most_common(3)
    assert set(callbacks) == set(ids) and max(callbacks.values()) == 1, callbacks.most_common(3)
    assert " died " not in output, "a worker process died instead of reconnecting"
    assert worker.process.poll() is None
    assert worker.stop(timeout=15) == 0, output[-2000:]


def _cluster() -> list[str] | None:
    """The pg_ctlcluster command of the local server (version, name), if this machine has it."""
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        return None
    versions = sorted(os.listdir("/etc/postgresql"))
    if not versions or os.geteuid() != 0:
        return None
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


@pytest.mark.restarts_server
def test_a_server_restart_mid_run_is_survived(
    sample_app: JobQ, start_worker: Callable[..., WorkerHandle], tmp_path: Path
) -> None:
    cluster = _cluster()
    if cluster is None or not postgres.SERVER.startswith("postgresql://postgres@127.0.0.1"):
        pytest.skip("needs the machine's own PostgreSQL cluster and root to restart it")
    worker = start_worker("--procs", "2", "--threads", "4", "--lease", "30")
    wait_for(lambda: len(sample_app.store.workers()) == 2, timeout=15)
    slow = [sample_tasks.sleep.submit(1.0, "slow").id for _ in range(4)]
    wait_for(lambda: len(counts(tmp_path, "start-slow")) == 4, timeout=15)

    # Down while the slow jobs run: their outcomes wait in the workers until it is back.
    subprocess.run([*cluster, "stop", "--", "-m", "fast"], check=True, timeout=60)
    try:
        time.sleep(2.0)
    finally:
        subprocess.run([*cluster, "start"], check=True, timeout=60)
    wait_for(lambda: postgres.reachable_now(), timeout=30, interval=0.2)
    fast = [job.id for job in sample_tasks.noted.submit_many([[n] for n in range(50)])]
    wait_for_status(sample_app, slow + fast, *FINISHED, timeout=60, interval=0.1)

    statuses = Counter(sample_app.store.job_statuses(slow + fast).values())
    assert statuses == {"succeeded": len(slow + fast)}, statuses
    assert max(counts(tmp_path, "start-slow").values()) == 1  # recorded after, not rerun
    assert max(counts(tmp_path, "noted").values()) == 1
    assert "no usable connection" in worker.output()
    assert worker.stop(timeout=15) == 0, worker.output()[-2000:]
