"""``jobq cancel`` of a running job: real workers, real process groups, real signals."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import (
    TASKS,
    cli_status,
    cli_submit,
    pid_alive,
    pids_of,
    wait_for,
    written_pid,
)

pytestmark = pytest.mark.slow

Run = Callable[..., subprocess.CompletedProcess[str]]


def status_of(jobq: Run, job_id: int) -> str:
    return str(cli_status(jobq, job_id)["status"])


def cancel_running(jobq: Run, job_id: int) -> None:
    done = jobq("cancel", str(job_id))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"job {job_id} is running: its worker stops it"


@pytest.mark.parametrize("ignores_term", [False, True], ids=["stops-on-term", "ignores-term"])
def test_cancel_stops_a_commands_whole_process_group_and_it_is_never_retried(
    jobq: Run, start_worker: Callable[..., Any], tmp_path: Path, ignores_term: bool
) -> None:
    trap = "trap '' TERM; " if ignores_term else ""  # then only SIGKILL, after the grace
    job_id = cli_submit(
        jobq, "--cmd", f"{trap}sleep 60 & echo $! > child.pid; wait", "--max-attempts", "3"
    )
    [waiting] = [cli_submit(jobq, "--cmd", "echo never", "--after", str(job_id))]
    start_worker("--procs", "1", "--cancel-grace", "1", app=None)
    child = written_pid(tmp_path / "child.pid")
    assert status_of(jobq, job_id) == "running"

    cancel_running(jobq, job_id)
    wait_for(lambda: status_of(jobq, job_id) == "cancelled", timeout=30, interval=0.2)
    wait_for(lambda: not pid_alive(child), timeout=10)
    record = cli_status(jobq, job_id)
    assert record["error"]["type"] == "Cancelled" and record["attempts"] == 1
    waiter = cli_status(jobq, waiting)
    assert waiter["status"] == "cancelled" and f"job {job_id}" in waiter["error"]["message"]
    assert jobq("logs", str(waiting)).stdout == ""  # it never ran


def test_a_python_task_sees_the_flag_and_stops_in_its_own_process(
    jobq: Run, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    job_id = cli_submit(jobq, f"{TASKS}.patient", "60")
    start_worker("--procs", "1", "--cancel-grace", "30")
    wait_for(lambda: pids_of(tmp_path, "start-patient", job_id), timeout=30)
    cancel_running(jobq, job_id)
    wait_for(lambda: status_of(jobq, job_id) == "cancelled", timeout=10, interval=0.1)
    assert pids_of(tmp_path, "noticed-cancel", job_id) == pids_of(tmp_path, "start-patient", job_id)
    # The process was not recycled: the next job runs in the same one.
    after = cli_submit(jobq, f"{TASKS}.patient", "0")
    wait_for(lambda: status_of(jobq, after) == "succeeded", timeout=30, interval=0.1)
    assert pids_of(tmp_path, "start-patient", after) == pids_of(tmp_path, "start-patient", job_id)


def test_a_python_task_that_ignores_the_flag_is_stopped_by_recycling_its_process(
    jobq: Run, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    job_id = cli_submit(jobq, f"{TASKS}.sleep", "60", "--max-attempts", "3")
    worker = start_worker("--procs", "1", "--cancel-grace", "1")
    wait_for(lambda: pids_of(tmp_path, "start-sleep", job_id), timeout=30)
    [first] = pids_of(tmp_path, "start-sleep", job_id)
    cancel_running(jobq, job_id)
    wait_for(lambda: status_of(jobq, job_id) == "cancelled", timeout=30, interval=0.1)
    wait_for(lambda: not pid_alive(first), timeout=30)
    wait_for(lambda: worker.children() and first not in worker.children(), timeout=30)
    assert pids_of(tmp_path, "start-sleep", job_id) == [first]  # not run again
    assert "ignored its cancel" in worker.output()
