"""What a task does to its process (returns text no database takes, changes directory, blocks
in a callback) fails that job at most; the worker and the other jobs go on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jobq import JobQ
from tests.support.helpers import TASKS, all_have, log_lines, record, wait_for
from tests.support.postgres import BOTH_BACKENDS

pytestmark = pytest.mark.slow


@BOTH_BACKENDS
def test_a_result_that_is_not_valid_unicode_fails_its_job_once_and_spares_the_batch(
    sample_app: JobQ, start_worker: Any, tmp_path: Path
) -> None:
    bad = sample_app.submit(f"{TASKS}.listing").id
    others = [sample_app.submit("chaos.touch", args=[n]).id for n in range(15)]
    # Threads enough that the bad outcome is recorded in one batch with others.
    worker = start_worker("--procs", "1", "--threads", "8", "--burst")
    assert worker.wait(timeout=60) == 0, worker.output()
    failed = record(sample_app, bad)
    assert failed.status == "failed" and failed.attempts == 1
    assert failed.error is not None and failed.error["type"] == "PayloadError"
    assert "not valid Unicode" in failed.error["message"]
    assert "result[0]" in failed.error["message"]
    assert all(record(sample_app, job).status == "succeeded" for job in others)
    tags = [tag for tag, _, _ in log_lines(tmp_path)]
    assert tags.count("listing") == 1, "the job ran again"
    assert tags.count("touch") == len(others), "a neighbour's outcome was thrown away"


def test_a_task_that_changes_directory_leaves_the_worker_on_its_database(
    sample_app: JobQ, start_worker: Any, tmp_path: Path
) -> None:
    """The default database is ./jobq.db: relative to where the worker started, for good."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = sample_app.submit(f"{TASKS}.wander", args=[str(elsewhere)]).id
    worker = start_worker("--procs", "1", "--threads", "1", env={"JOBQ_DB": "jobq.db"})
    wait_for(lambda: all_have(sample_app, [moved], "succeeded"), timeout=30)
    # The same process, after the chdir: new connections, a task and a shell command.
    after = [sample_app.submit("chaos.touch", args=[n]).id for n in range(3)]
    command = sample_app.submit_command("echo hello from the shell").id
    wait_for(lambda: all_have(sample_app, [*after, command], "succeeded", "failed"), timeout=30)
    assert [record(sample_app, job).status for job in after] == ["succeeded"] * 3
    assert record(sample_app, command).status == "succeeded", record(sample_app, command).error
    assert not (elsewhere / "jobq.db").exists(), "a worker created a database beside the task"
    assert list(elsewhere.iterdir()) == []
    pids = {pid for tag, _, pid in log_lines(tmp_path) if tag in ("wander", "touch")}
    assert len(pids) == 1, "the process was replaced instead of carrying on"
    assert worker.stop(timeout=20) == 0


def test_a_blocking_completion_callback_does_not_hold_up_outcomes(
    sample_app: JobQ, start_worker: Any, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    jobs = [sample_app.submit(f"{TASKS}.held", args=[n]).id for n in range(3)]
    worker = start_worker("--procs", "1", "--threads", "2", env={"JOBQ_TEST_RELEASE": str(release)})
    # The first callback blocks; every outcome is recorded all the same, and other jobs run.
    wait_for(lambda: all_have(sample_app, jobs, "succeeded"), timeout=20)
    more = [sample_app.submit("chaos.touch", args=[n]).id for n in range(5)]
    wait_for(lambda: all_have(sample_app, more, "succeeded"), timeout=20)
    assert [tag for tag, _, _ in log_lines(tmp_path)].count("callback-end") == 0
    release.touch()
    wait_for(
        lambda: [tag for tag, _, _ in log_lines(tmp_path)].count("callback-end") == len(jobs),
        timeout=20,
    )
    assert worker.stop(timeout=20) == 0
