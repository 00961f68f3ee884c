"""Shell-command jobs through the CLI: ``jobq submit --cmd``, a worker without --app, ``jobq
logs``, exit codes and signals, timeouts that stop the whole process group, purge, safety."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobq import JobQ
from jobq.shell import LOG_LIMIT
from tests.support.helpers import (
    FINISHED,
    JOBQ,
    assert_refused,
    cli_status,
    cli_submit,
    pid_alive,
    wait_for,
    written_pid,
)
from tests.support.postgres import POSTGRESQL

pytestmark = pytest.mark.slow

Run = Callable[..., subprocess.CompletedProcess[str]]


def drain(start_worker: Callable[..., Any], *args: str) -> None:
    worker = start_worker("--procs", "1", "--burst", *args, app=None)
    assert worker.wait(timeout=60) == 0, worker.output()


def test_a_command_runs_where_and_with_what_it_was_given_and_logs_both_streams(
    jobq: Run, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    folder = tmp_path / "work dir"
    folder.mkdir()
    script = 'echo out; echo err >&2; echo "greeting=$GREETING"; pwd; echo "id=$JOBQ_JOB_ID"'
    job_id = cli_submit(
        jobq, "--cmd", script, "--cwd", str(folder), "--env", "GREETING=hi there; rm -rf /"
    )
    drain(start_worker)
    status = cli_status(jobq, job_id)
    assert status["status"] == "succeeded" and status["task"] == "jobq.shell"
    logs = jobq("logs", str(job_id))
    assert logs.returncode == 0
    assert logs.stdout.splitlines() == [
        "out",
        "err",
        "greeting=hi there; rm -rf /",  # passed as data, never as shell text
        str(folder),
        f"id={job_id}",
    ]


def test_a_relative_cwd_is_taken_from_where_submit_ran(
    jobq: Run, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    (tmp_path / "sub").mkdir()
    job_id = cli_submit(jobq, "--cmd", "pwd", "--cwd", "sub")
    drain(start_worker)
    assert jobq("logs", str(job_id)).stdout.strip() == str(tmp_path / "sub")


def test_a_non_zero_exit_fails_with_its_code_and_is_retried_per_max_attempts(
    jobq: Run, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    once = cli_submit(jobq, "--cmd", "echo ran >> once.txt; exit 3")
    twice = cli_submit(jobq, "--cmd", "echo ran >> twice.txt; exit 4", "--max-attempts", "2")
    killed = cli_submit(jobq, "--cmd", "kill -KILL $$")
    start_worker("--procs", "1", app=None)  # not --burst: the retry is scheduled a moment later
    wait_for(
        lambda: all(cli_status(jobq, n)["status"] == "failed" for n in (once, twice, killed)),
        timeout=30,
        interval=0.2,
    )
    first = cli_status(jobq, once)
    assert (first["status"], first["attempts"]) == ("failed", 1)  # a command runs once by default
    assert first["error"]["message"] == "the command exited with code 3"
    assert first["error"]["traceback"] is None
    second = cli_status(jobq, twice)
    assert (second["status"], second["attempts"]) == ("failed", 2)
    assert (tmp_path / "twice.txt").read_text() == "ran\nran\n"
    assert "[jobq] attempt 2 of 2" in jobq("logs", str(twice)).stdout
    assert cli_status(jobq, killed)["error"]["message"] == "the command was killed by SIGKILL"


def test_a_timeout_stops_the_whole_process_group(
    jobq: Run, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    # The shell starts a background child and waits: both must go.
    job_id = cli_submit(jobq, "--cmd", "sleep 60 & echo $! > child.pid; wait", "--timeout", "1")
    started = time.monotonic()
    drain(start_worker)
    assert time.monotonic() - started < 30
    status = cli_status(jobq, job_id)
    assert status["status"] == "failed"
    assert "ran longer than its timeout of 1 s" in status["error"]["message"]
    child = int((tmp_path / "child.pid").read_text())
    wait_for(lambda: not pid_alive(child), timeout=10)


def test_logs_follow_streams_until_the_job_ends(
    jobq: Run, start_worker: Callable[..., Any], cli_env: dict[str, str], tmp_path: Path
) -> None:
    job_id = cli_submit(jobq, "--cmd", "for i in 1 2 3; do echo tick $i; sleep 0.4; done")
    follower = subprocess.Popen(
        [*JOBQ, "logs", str(job_id), "--follow"],
        env=cli_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    start_worker("--procs", "1", app=None)
    assert follower.stdout is not None
    assert follower.stdout.readline() == "tick 1\n"  # before the job has ended
    assert cli_status(jobq, job_id)["status"] == "running"
    assert follower.wait(timeout=30) == 0
    assert follower.stdout.read() == "tick 2\ntick 3\n"


def test_output_past_the_limit_is_counted_not_kept_and_purge_removes_logs(
    jobq: Run, start_worker: Callable[..., Any], database: str
) -> None:
    extra = 123_456
    job_id = cli_submit(jobq, "--cmd", f"head -c {LOG_LIMIT + extra} /dev/zero | tr '\\0' x")
    drain(start_worker)
    assert cli_status(jobq, job_id)["status"] == "succeeded"
    log = Path(f"{database}.logs") / f"{job_id}.log"
    text = log.read_text()
    assert text.startswith("x" * 1000)
    assert text.count("x") == LOG_LIMIT
    assert text.endswith(f"[jobq] output past {LOG_LIMIT} bytes dropped: {extra}\n")

    newer = cli_submit(jobq, "--cmd", "true")  # purge always keeps the newest job
    drain(start_worker)
    assert jobq("purge", "--older-than", "0s").returncode == 0
    assert not log.exists()
    assert (Path(f"{database}.logs") / f"{newer}.log").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--cmd", ""], ["non-empty"]),
        (["--cmd", "true", "--env", "1BAD=x"], ["--env", "1BAD=x"]),
        (["--cmd", "true", "--env", "NOEQUALS"], ["--env", "NOEQUALS"]),
        (["--cmd", "true", "--cwd", "/no/such/folder"], ["/no/such/folder", "does not exist"]),
        (["some.task", "--cmd", "true"], ["either TASK", "--cmd"]),
        (["--env", "A=b"], ["--cmd"]),
        ([], ["TASK", "--cmd"]),
    ],
)
def test_bad_commands_are_refused_before_anything_is_written(
    jobq: Run, database: str, args: list[str], words: list[str]
) -> None:
    assert_refused(jobq("submit", *args), *words)
    assert not Path(database).exists() or cli_status(jobq)["counts"]["queued"] == 0


def test_a_worker_runs_no_command_from_a_database_others_can_write(
    jobq: Run, start_worker: Callable[..., Any], database: str
) -> None:
    job_id = cli_submit(jobq, "--cmd", "echo should not run")
    assert os.stat(database).st_mode & 0o777 == 0o600  # jobq creates it private
    os.chmod(database, 0o666)
    # A worker of commands only has nothing it may run: it refuses to start, in one line.
    refused = start_worker("--procs", "1", "--burst", app=None)
    assert refused.wait(timeout=30) == 1
    last = refused.output().strip().splitlines()[-1]
    assert "nothing to run" in last and "writable by other users" in last, last
    assert "--allow-shell" in last
    # A worker with tasks of its own leaves the command queued (before: claimed and failed).
    drain(start_worker, "--app", "tests.support.sample_tasks:app")
    assert cli_status(jobq, job_id)["status"] == "queued"
    assert jobq("logs", str(job_id)).stdout == ""

    drain(start_worker, "--allow-shell")
    assert cli_status(jobq, job_id)["status"] == "succeeded"
    assert jobq("logs", str(job_id)).stdout == "should not run\n"


@pytest.mark.parametrize(
    "script",
    [
        "while true; do echo busy; sleep 0.01; done",  # output never stops
        "exec >/dev/null 2>&1; sleep 60",  # its output closed at once
    ],
    ids=["busy-output", "closed-output"],
)
def test_a_timeout_stops_a_command_however_it_treats_its_output(
    jobq: Run, start_worker: Callable[..., Any], script: str
) -> None:
    job_id = cli_submit(jobq, "--cmd", script, "--timeout", "1")
    started = time.monotonic()
    drain(start_worker, "--cancel-grace", "1")
    assert time.monotonic() - started < 30
    status = cli_status(jobq, job_id)
    assert status["status"] == "failed"
    assert "ran longer than its timeout" in status["error"]["message"]


def test_nothing_of_a_command_outlives_its_job(
    jobq: Run, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    job_id = cli_submit(jobq, "--cmd", "sleep 60 & echo $! > background.pid")
    drain(start_worker)
    assert cli_status(jobq, job_id)["status"] == "succeeded"
    leftover = int((tmp_path / "background.pid").read_text())
    wait_for(lambda: not pid_alive(leftover), timeout=10)


def test_a_forced_stop_kills_running_commands_and_queues_their_jobs_again(
    jobq: Run, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    job_id = cli_submit(jobq, "--cmd", "sleep 60 & echo $! > child.pid; wait")
    worker = start_worker("--procs", "1", "--grace", "0.5", app=None)
    child = written_pid(tmp_path / "child.pid")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.output()
    wait_for(lambda: not pid_alive(child), timeout=10)
    status = cli_status(jobq, job_id)
    assert (status["status"], status["attempts"]) == ("queued", 0)  # handed back, refunded


def test_a_worker_runs_no_command_from_a_folder_others_can_write(
    jobq: Run, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    job_id = cli_submit(jobq, "--cmd", "echo should not run")
    os.chmod(tmp_path, 0o777)
    try:
        refused = start_worker("--procs", "1", "--burst", app=None)
        assert refused.wait(timeout=30) == 1
    finally:
        os.chmod(tmp_path, 0o700)
    assert f"its folder {tmp_path} is writable by other users" in refused.output()
    assert cli_status(jobq, job_id)["status"] == "queued"


def test_commands_of_a_killed_worker_process_die_before_their_job_runs_again(
    jobq: Run, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    job_id = cli_submit(
        jobq, "--cmd", "sleep 60 & echo $! >> children.txt; wait", "--max-attempts", "2"
    )
    worker = start_worker("--procs", "1", app=None)
    children = tmp_path / "children.txt"
    wait_for(lambda: children.exists() and children.read_text().strip(), timeout=30)
    first = int(children.read_text().split()[0])
    [process] = worker.children()
    os.kill(process, signal.SIGKILL)  # no stop_all runs in a SIGKILLed process
    wait_for(lambda: not pid_alive(first), timeout=15)
    # The job runs again in the restarted process, alone.
    wait_for(lambda: len(children.read_text().split()) == 2, timeout=30)
    assert cli_status(jobq, job_id)["attempts"] == 2
    assert "killed command process group" in worker.output()


@pytest.mark.parametrize("database", [POSTGRESQL], indirect=True)
def test_a_worker_that_may_not_run_commands_leaves_them_to_one_that_may(
    jobq: Run, start_worker: Callable[..., Any], app: JobQ
) -> None:
    """deploying.md's layout: one host runs commands (--allow-shell --queues commands), the
    others serve every queue without it. Before, those claimed commands too and failed them
    with ShellRefused; now they leave them to the one that may."""
    ids = [
        cli_submit(jobq, "--queue", "commands", "--cmd", f"echo command {number}")
        for number in range(12)
    ]
    elsewhere = start_worker("--procs", "2", "--threads", "4")  # every queue, no --allow-shell
    time.sleep(1.0)  # long enough to claim every command, as it did
    runs_them = start_worker("--procs", "1", "--allow-shell", "--queues", "commands")
    wait_for(lambda: all(app.job(job_id).status() in FINISHED for job_id in ids), timeout=30)
    outcomes = {job_id: app.job(job_id).info() for job_id in ids}
    assert {record.status for record in outcomes.values()} == {"succeeded"}, {
        job_id: (record.status, record.error) for job_id, record in outcomes.items()
    }
    assert {record.worker for record in outcomes.values()} <= {
        worker.id for worker in app.workers() if worker.queues == ["commands"]
    } | {None}
    for worker in (elsewhere, runs_them):
        assert worker.stop(timeout=20) == 0


def test_a_worker_with_nothing_it_may_run_refuses_to_start(jobq: Run, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # other users could write the database: no commands without the flag
    done = jobq("worker", "--db", str(shared / "jobq.db"), "--procs", "0", "--burst")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("Error: this worker would have nothing to run") and "--allow-shell" in last
    )
