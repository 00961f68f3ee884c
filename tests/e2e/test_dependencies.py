"""``--after``: jobs that wait for others, through the CLI and the library."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobq import JobQ
from tests.support.helpers import assert_refused, cli_status, cli_submit

pytestmark = pytest.mark.slow

Run = Callable[..., subprocess.CompletedProcess[str]]


def test_a_chain_runs_in_order_and_a_failure_cancels_what_waits_for_it(
    jobq: Run, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    first = cli_submit(jobq, "--cmd", "sleep 0.3; echo first >> order.txt")
    second = cli_submit(jobq, "--cmd", "echo second >> order.txt", "--after", str(first))
    third = cli_submit(
        jobq, "--cmd", "echo third >> order.txt", "--after", str(second), "--after", str(first)
    )
    broken = cli_submit(jobq, "--cmd", "exit 1", "--after", str(third))
    never = cli_submit(jobq, "--cmd", "echo never >> order.txt", "--after", str(broken))
    never_either = cli_submit(jobq, "--cmd", "echo never >> order.txt", "--after", str(never))
    assert [cli_status(jobq, n)["status"] for n in (first, second, never)] == [
        "queued",
        "deferred",
        "deferred",
    ]
    worker = start_worker("--procs", "2", "--burst", app=None)
    assert worker.wait(timeout=60) == 0, worker.output()
    assert (tmp_path / "order.txt").read_text() == "first\nsecond\nthird\n"
    assert cli_status(jobq, broken)["status"] == "failed"
    for job_id, cause in ((never, broken), (never_either, never)):
        record = cli_status(jobq, job_id)
        assert record["status"] == "cancelled" and record["attempts"] == 0
        assert record["error"]["message"] == f"job {cause}, which this job waited for, " + (
            "failed" if cause == broken else "cancelled"
        )


def test_after_an_unknown_job_is_refused_and_nothing_is_written(jobq: Run, database: str) -> None:
    real = cli_submit(jobq, "--cmd", "true")
    assert_refused(jobq("submit", "--cmd", "true", "--after", str(real), "--after", "4242"), "4242")
    assert_refused(jobq("submit", "--cmd", "true", "--after", "zero"), "--after")
    assert cli_status(jobq)["counts"]["queued"] == 1


def test_the_library_takes_jobs_or_ids_in_after(sample_app: JobQ) -> None:
    from tests.support import sample_tasks

    first = sample_tasks.add.submit(1, 2)
    then = sample_tasks.add.options(after=[first]).submit(3, 4)
    by_id = sample_app.submit(sample_tasks.add.name, args=[5, 6], after=[first.id, then.id])
    assert then.status() == "deferred" and by_id.status() == "deferred"
    sample_app.run_worker(procs=0, burst=True)
    assert [first.result(), then.result(), by_id.result()] == [3, 7, 11]
    with pytest.raises(Exception, match="after takes jobs or job ids"):
        sample_tasks.add.options(after=["x"])
