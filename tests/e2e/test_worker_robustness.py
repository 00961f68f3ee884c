"""A worker survives whatever its tasks and callbacks do, and never mistakes a task's exit for
its own clean stop."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from jobq import JobQ
from tests.support.helpers import TASKS, all_have, log_lines, record, wait_for

pytestmark = pytest.mark.slow


def test_results_and_errors_jobq_cannot_store_fail_the_job_and_the_worker_goes_on(
    sample_app: JobQ, start_worker: Any
) -> None:
    huge = sample_app.submit(f"{TASKS}.huge_number").id
    unreadable = sample_app.submit(f"{TASKS}.unreadable_error").id
    after = [sample_app.submit(f"{TASKS}.add", args=[n, n]).id for n in range(6)]
    worker = start_worker("--procs", "1", "--threads", "2")
    wait_for(lambda: all_have(sample_app, [huge, unreadable, *after], "succeeded", "failed"))
    assert record(sample_app, huge).status == "failed"
    assert record(sample_app, huge).error["type"] == "PayloadError"
    broken = record(sample_app, unreadable)
    assert broken.status == "failed" and broken.error["type"] == "UnreadableError"
    assert "could not be read" in broken.error["message"]
    assert [record(sample_app, job).result for job in after] == [n + n for n in range(6)]
    assert worker.stop(timeout=10) == 0


def test_a_task_that_exits_its_process_with_code_zero_uses_up_its_attempts(
    sample_app: JobQ, start_worker: Any, tmp_path: Path
) -> None:
    job = sample_app.submit(f"{TASKS}.exit_zero").id
    others = [sample_app.submit(f"{TASKS}.add", args=[n, 1], max_attempts=10).id for n in range(4)]
    worker = start_worker("--procs", "1", "--threads", "1", "--burst")
    assert worker.wait(timeout=30) == 0
    lost = record(sample_app, job)
    assert lost.status == "failed" and lost.attempts == 2
    assert lost.error["type"] == "WorkerLost" and "from a task" in lost.error["message"]
    assert [tag for tag, _, _ in log_lines(tmp_path)].count("exit-zero") == 2
    assert all(record(sample_app, other).status == "succeeded" for other in others)


def test_sigterm_to_the_whole_process_group_is_still_one_graceful_stop(
    sample_app: JobQ, start_worker: Any
) -> None:
    jobs = [sample_app.submit(f"{TASKS}.sleep", args=[1.5, f"long-{n}"]).id for n in range(2)]
    worker = start_worker("--procs", "2", "--threads", "1", "--grace", "20")
    wait_for(lambda: all_have(sample_app, jobs, "running"))
    time.sleep(0.2)  # the tasks are inside time.sleep now
    # What systemd does by default (KillMode=control-group): SIGTERM to every process.
    for pid in [worker.pid, *worker.children()]:
        os.kill(pid, signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    # Both jobs were allowed to finish: the grace applied, nothing was cut short.
    assert [record(sample_app, job).status for job in jobs] == ["succeeded", "succeeded"]
    assert "stopped at once" not in worker.output()


def test_a_callback_that_exits_does_not_stop_the_completer(tmp_path: Path) -> None:
    app = JobQ(tmp_path / "callbacks.db")

    def leave(job: object, result: object) -> None:
        raise SystemExit("a callback tried to exit")

    @app.task(name="exiting.callback", on_success=leave)
    def first() -> int:
        return 1

    @app.task(name="plain")
    def plain(number: int) -> int:
        return number

    jobs = [first.submit(), *(plain.submit(n) for n in range(5))]
    runner = threading.Thread(target=lambda: app.run_worker(procs=0, threads=1, burst=True))
    runner.start()
    runner.join(timeout=20)
    assert not runner.is_alive(), "the burst worker hung: its completer died"
    assert [job.result(timeout=1) for job in jobs] == [1, 0, 1, 2, 3, 4]
