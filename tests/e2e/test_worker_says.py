"""What a worker says about the jobs it runs: a line for each failure and each retry (task,
id, attempt, duration, error), started and succeeded lines at debug only, and the job's id on
whatever a task logs."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from jobq import JobQ
from tests.support import sample_tasks
from tests.support.helpers import WorkerHandle, wait_for_status

pytestmark = pytest.mark.slow

TASKS = "tests.support.sample_tasks"


@pytest.mark.parametrize("level", ["info", "debug"])
def test_failures_and_retries_are_logged_and_a_tasks_own_lines_carry_its_job(
    level: str, sample_app: JobQ, start_worker: Callable[..., WorkerHandle]
) -> None:
    failing = sample_tasks.fail.submit("no disk").id
    fine = sample_tasks.record.submit("ok").id
    talking = sample_tasks.chatty.submit("a task").id
    env = {"JOBQ_LOG_LEVEL": level}
    worker = start_worker("--procs", "1", "--threads", "2", env=env)
    wait_for_status(sample_app, [failing], "failed", timeout=30)
    wait_for_status(sample_app, [fine, talking], "succeeded", timeout=30)
    assert worker.stop(timeout=20) == 0
    output = worker.output()
    print(f"\n--log-level {level}:\n" + "\n".join(output.splitlines()[-12:]))
    retry = re.compile(
        rf"job {failing} \({TASKS}\.fail\) will be tried again: attempt 1/3 failed after "
        r"\d+\.\d{3} s: ValueError: no disk"
    )
    assert retry.search(output), output
    final = rf"job {failing} \({TASKS}\.fail\) failed on attempt 3/3 after \d+\.\d{{3}} s"
    assert re.search(final + r": ValueError: no disk", output), output
    assert re.search(rf"WARNING tasks\.chatty: \[job {talking}\] hello from a task", output)
    succeeded = rf"job {fine} \({TASKS}\.record\) succeeded on attempt 1/3 in \d+\.\d{{3}} s"
    started = rf"job {fine} \({TASKS}\.record\) started, attempt 1/3"
    if level == "debug":
        assert re.search(succeeded, output) and re.search(started, output), output
    else:  # a line per quick job would cost a drain: not at the default level
        assert not re.search(succeeded, output) and not re.search(started, output)
