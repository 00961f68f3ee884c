"""``jobq wait`` (exit codes, plain lines when piped, a progress bar on a terminal) and
``jobq status --watch`` / ``jobq list`` as a user sees them."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import JOBQ, assert_refused, cli_submit, wait_for

pytestmark = pytest.mark.slow

Run = Callable[..., subprocess.CompletedProcess[str]]


def run_on_a_terminal(command: list[str], env: dict[str, str], cwd: Path, timeout: float) -> str:
    """Run ``command`` with a pseudo-terminal as stdout; return what it drew."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed: the program ended
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=10)
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_wait_piped_prints_a_line_per_job_and_exits_1_when_one_failed(
    jobq: Run, start_worker: Callable[..., Any], cli_env: dict[str, str], tmp_path: Path
) -> None:
    good = cli_submit(jobq, "--cmd", "true")
    bad = cli_submit(jobq, "--cmd", "exit 5")
    slow = cli_submit(jobq, "--cmd", "sleep 0.5")
    # No ids: every job not finished yet, read before the worker starts.
    waiter = subprocess.Popen(
        [*JOBQ, "wait"], env=cli_env, cwd=tmp_path, stdout=subprocess.PIPE, text=True
    )
    time.sleep(1)
    start_worker("--procs", "1", app=None)
    output, _ = waiter.communicate(timeout=60)
    assert waiter.returncode == 1, output
    lines = output.splitlines()
    assert sorted(lines[:-1]) == sorted(
        [
            f"job {good} succeeded",
            f"job {bad} failed: the command exited with code 5",
            f"job {slow} succeeded",
        ]
    )
    assert lines[-1] == "3 jobs ended: 2 succeeded, 1 did not"
    again = jobq("wait", str(good), str(slow))
    assert again.returncode == 0
    assert again.stdout.splitlines()[-1] == "2 jobs ended: 2 succeeded, 0 did not"


def test_wait_gives_up_after_its_timeout_and_refuses_unknown_ids(jobq: Run) -> None:
    job_id = cli_submit(jobq, "--cmd", "true")  # no worker: it never ends
    started = time.monotonic()
    done = jobq("wait", str(job_id), "--timeout", "0.5")
    assert done.returncode == 2
    assert time.monotonic() - started < 15
    assert "gave up after 0.5 s: 1 job not finished" in done.stdout
    assert_refused(jobq("wait", str(job_id), "987654"), "987654")


def test_wait_on_a_terminal_draws_a_progress_bar(
    jobq: Run, start_worker: Callable[..., Any], cli_env: dict[str, str], tmp_path: Path
) -> None:
    ids = [cli_submit(jobq, "--cmd", "sleep 0.2") for _ in range(4)] + [
        cli_submit(jobq, "--cmd", "exit 1")
    ]
    # The worker starts once wait has read the unfinished jobs.
    threading.Timer(1.0, lambda: start_worker("--procs", "1", app=None)).start()
    screen = run_on_a_terminal([*JOBQ, "wait"], cli_env, tmp_path, timeout=60)
    assert "waiting" in screen and "5/5" in screen and "jobs/s" in screen
    assert "1 failed" in screen
    assert f"job {ids[-1]} failed" in screen
    assert "5 jobs ended: 4 succeeded, 1 did not" in screen


def test_status_watch_refreshes_until_interrupted(
    jobq: Run, start_worker: Callable[..., Any], cli_env: dict[str, str], tmp_path: Path
) -> None:
    cli_submit(jobq, "--cmd", "sleep 30")
    start_worker("--procs", "1", app=None)
    watcher = subprocess.Popen(
        [*JOBQ, "status", "--watch", "--interval", "0.2"],
        env={**cli_env, "PYTHONFAULTHANDLER": "1"},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal. A test run started in the background of a shell without job
        # control inherits SIGINT ignored, and Python then rightly ignores it too: that is
        # what the stacks below showed when this test ran that way.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert watcher.stdout is not None and watcher.stderr is not None
    lines = [watcher.stdout.readline() for _ in range(3)]
    watcher.send_signal(signal.SIGINT)
    try:
        code = watcher.wait(timeout=10)
    except subprocess.TimeoutExpired:
        # Say where it was stuck (it once looped on, SIGINT ignored: see preexec_fn above).
        watcher.send_signal(signal.SIGABRT)
        watcher.wait(timeout=10)
        pytest.fail("status --watch ignored Ctrl-C; its stacks:\n" + watcher.stderr.read())
    assert code == 0, watcher.stderr.read()
    assert all(" running=" in line and "finished/s=" in line for line in lines)
    wait_for(lambda: "running=1" in lines[-1] or None, timeout=1)


def test_status_watch_on_a_terminal_shows_running_jobs_with_their_age(
    jobq: Run, start_worker: Callable[..., Any], cli_env: dict[str, str], tmp_path: Path
) -> None:
    job_id = cli_submit(jobq, "--cmd", "sleep 30")
    start_worker("--procs", "1", app=None)
    wait_for(lambda: json.loads(jobq("status", "--json").stdout)["counts"]["running"], timeout=30)
    command = [
        "timeout",
        "--signal=INT",
        "2",
        *JOBQ,
        "status",
        "--watch",
        "--interval",
        "0.3",
    ]
    screen = run_on_a_terminal(command, cli_env, tmp_path, timeout=30)
    assert "throughput" in screen and "running" in screen and "workers" in screen
    assert "$ sleep 30" in screen and str(job_id) in screen


def test_list_shows_a_commands_text_and_json_for_programs(jobq: Run, tmp_path: Path) -> None:
    job_id = cli_submit(jobq, "--cmd", "echo hello", "--queue", "media")
    table = jobq("list")
    assert "$ echo hello" in table.stdout and "media" in table.stdout
    [row] = json.loads(jobq("list", "--json").stdout)
    assert row["id"] == job_id and row["task"] == "jobq.shell"
    assert row["kwargs"] == {"command": "echo hello", "cwd": str(tmp_path), "env": {}}
