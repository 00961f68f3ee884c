"""Which claimed jobs share a run (one executor, one after the other)."""

from __future__ import annotations

from jobq.models import SHELL_TASK, ClaimedJob
from jobq.worker.runs import QUICK, RUN_BUDGET, SAMPLES, Pace, Run


def job(number: int, task: str) -> ClaimedJob:
    return ClaimedJob(number, task, "default", "[]", "{}", 1, 3, None)


def shape(items: list[ClaimedJob | Run]) -> list[object]:
    return [[j.id for j in item.pending] if isinstance(item, Run) else item.id for item in items]


def test_only_consecutive_jobs_of_tasks_seen_to_be_quick_share_a_run() -> None:
    pace = Pace()
    for _ in range(SAMPLES):
        pace.record("quick", QUICK / 10)
        pace.record("slow", QUICK * 10)
    pace.record("new", QUICK / 10)  # too few jobs seen to tell
    jobs = [job(1, "quick"), job(2, "quick"), job(3, "slow"), job(4, "quick"), job(5, "new")]
    jobs += [job(6, "quick"), job(7, "quick"), job(8, "quick")]
    assert shape(pace.group(jobs)) == [[1, 2], 3, 4, 5, [6, 7, 8]]


def test_a_run_holds_at_most_its_budget_of_expected_time() -> None:
    pace = Pace()
    for _ in range(SAMPLES):
        pace.record("quick", QUICK * 0.9)
    per_run = int(RUN_BUDGET // (QUICK * 0.9))
    items = pace.group([job(number, "quick") for number in range(per_run * 2 + 1)])
    assert [len(item.pending) if isinstance(item, Run) else 1 for item in items] == [
        per_run,
        per_run,
        1,
    ]


def test_one_slow_job_makes_its_task_slow_and_commands_are_never_grouped() -> None:
    pace = Pace(unbatched=frozenset({SHELL_TASK}))  # as the worker makes it for shell jobs
    for _ in range(SAMPLES):
        pace.record("quick", QUICK / 10)
        pace.record(SHELL_TASK, QUICK / 10)
    assert pace.quick("quick") is not None and pace.quick(SHELL_TASK) is None
    pace.record("quick", 1.0)
    assert pace.quick("quick") is None
    assert shape(pace.group([job(1, SHELL_TASK), job(2, SHELL_TASK)])) == [1, 2]
