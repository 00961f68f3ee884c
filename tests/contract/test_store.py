"""What every store must do. Written against the Store interface only."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from jobq.errors import InvalidStateError, JobNotFoundError
from jobq.models import NewJob, Outcome
from jobq.store import Store


def new(task: str = "t.add", queue: str = "default", **fields: object) -> NewJob:
    return NewJob(
        task=task, args=json.dumps(fields.pop("args", [1, 2])), kwargs="{}", queue=queue, **fields
    )  # type: ignore[arg-type]


def register(store: Store, worker_id: str = "w1", pid: int = 1, host: str = "h") -> str:
    store.register_worker(
        worker_id, kind="worker", pid=pid, host=host, supervisor_pid=None, queues=None, threads=4
    )
    return worker_id


def done(
    job_id: int, worker: str, attempt: int = 1, status: str = "succeeded", **kw: Any
) -> Outcome:
    return Outcome(job_id, worker, attempt, status, finished_at=time.time(), **kw)  # type: ignore[arg-type]


def test_enqueue_returns_ids_in_order_and_jobs_start_queued(store: Store) -> None:
    ids = store.enqueue([new(args=[n]) for n in range(5)])
    assert ids == sorted(ids) and len(set(ids)) == 5
    records = [store.get_job(job_id) for job_id in ids]
    assert [record.args for record in records] == [[n] for n in range(5)]
    assert {record.status for record in records} == {"queued"}
    assert all(record.attempts == 0 and record.max_attempts == 3 for record in records)


def test_a_job_with_a_future_run_at_is_scheduled_and_not_claimed(store: Store) -> None:
    worker = register(store)
    [job_id] = store.enqueue([new(run_at=time.time() + 60)])
    assert store.get_job(job_id).status == "scheduled"
    assert store.claim(worker, None, 10) == []
    assert store.runnable_count(None) == 0
    assert store.next_run_at(None) == pytest.approx(time.time() + 60, abs=5)


def test_claim_takes_priority_then_age_and_marks_running(store: Store) -> None:
    worker = register(store)
    low, high, low2 = store.enqueue([new(priority=0), new(priority=5), new(priority=0)])
    claimed = store.claim(worker, None, 2)
    assert [job.id for job in claimed] == [high, low]
    assert all(job.attempts == 1 for job in claimed)
    record = store.get_job(high)
    assert record.status == "running" and record.worker == worker and record.started_at
    assert [job.id for job in store.claim(worker, None, 5)] == [low2]


def test_claim_respects_limit_and_queues(store: Store) -> None:
    worker = register(store)
    store.enqueue([new(queue="a") for _ in range(3)] + [new(queue="b") for _ in range(3)])
    assert len(store.claim(worker, ["a"], 2)) == 2
    assert {job.queue for job in store.claim(worker, ["b"], 10)} == {"b"}
    assert len(store.claim(worker, ["a", "b"], 10)) == 1
    assert store.claim(worker, None, 0) == []


def test_a_job_is_claimed_by_one_worker_only(store: Store) -> None:
    one, two = register(store, "w1"), register(store, "w2")
    store.enqueue([new() for _ in range(10)])
    first = {job.id for job in store.claim(one, None, 6)}
    second = {job.id for job in store.claim(two, None, 6)}
    assert len(first) == 6 and len(second) == 4 and not first & second


def test_an_unregistered_worker_claims_nothing(store: Store) -> None:
    store.enqueue([new()])
    assert store.claim("ghost", None, 5) == []


def test_complete_records_outcomes_and_is_fenced(store: Store) -> None:
    worker, other = register(store, "w1"), register(store, "w2")
    a, b, c = store.enqueue([new(), new(), new()])
    store.claim(worker, None, 3)
    applied = store.complete(
        [
            done(a, worker, result="3"),
            done(
                b, worker, status="failed", error=json.dumps({"type": "ValueError", "message": "x"})
            ),
            done(c, other),  # not held by `other`: must change nothing
        ]
    )
    assert applied == [True, True, False]
    assert store.get_job(a).status == "succeeded" and store.get_job(a).result == 3
    assert store.get_job(b).error == {"type": "ValueError", "message": "x"}
    assert store.get_job(c).status == "running"
    # a second completion of a finished job changes nothing
    assert store.complete([done(a, worker, status="failed")]) == [False]
    assert store.get_job(a).status == "succeeded"


def test_a_late_outcome_of_an_older_attempt_changes_nothing(store: Store) -> None:
    worker = register(store)
    [job_id] = store.enqueue([new()])
    store.claim(worker, None, 1)
    retry_at = time.time() - 1
    store.complete([done(job_id, worker, status="scheduled", error="{}", run_at=retry_at)])
    [again] = store.claim(worker, None, 1)
    assert again.attempts == 2
    assert store.complete([done(job_id, worker, attempt=1)]) == [False]
    assert store.complete([done(job_id, worker, attempt=2, result="1")]) == [True]


def test_retry_outcome_schedules_the_job(store: Store) -> None:
    worker = register(store)
    [job_id] = store.enqueue([new()])
    store.claim(worker, None, 1)
    store.complete([done(job_id, worker, status="scheduled", error="{}", run_at=time.time() + 60)])
    record = store.get_job(job_id)
    assert record.status == "scheduled" and record.attempts == 1 and record.worker is None
    assert store.claim(worker, None, 1) == []


def test_release_worker_after_a_crash_counts_the_attempt(store: Store) -> None:
    worker = register(store)
    fresh, last = store.enqueue([new(), new(max_attempts=1)])
    store.claim(worker, None, 2)
    assert store.release_worker(worker, reason="died", refund=False) == 2
    assert store.get_job(fresh).status == "queued" and store.get_job(fresh).attempts == 1
    lost = store.get_job(last)
    assert lost.status == "failed" and lost.error["type"] == "WorkerLost"
    assert store.workers() == []


def test_release_worker_on_a_clean_stop_refunds_the_attempt(store: Store) -> None:
    worker = register(store)
    [job_id] = store.enqueue([new(max_attempts=1)])
    store.claim(worker, None, 1)
    assert store.release_worker(worker, reason="stopped", refund=True) == 1
    record = store.get_job(job_id)
    assert record.status == "queued" and record.attempts == 0


def test_release_jobs_hands_back_prefetched_jobs(store: Store) -> None:
    worker = register(store)
    ids = store.enqueue([new(), new()])
    first, second = sorted(store.claim(worker, None, 2), key=lambda job: job.id)
    assert store.release_jobs(worker, [(first.id, first.claim + 1)]) == 0  # a stale claim
    assert store.release_jobs(worker, [(first.id, first.claim)]) == 1
    assert store.get_job(ids[0]).status == "queued" and store.get_job(ids[0]).attempts == 0
    assert store.get_job(ids[1]).status == "running"


def test_reap_recovers_workers_past_their_lease(store: Store) -> None:
    worker = register(store)
    [job_id] = store.enqueue([new()])
    store.claim(worker, None, 1)
    assert store.reap(lease=60) == []
    time.sleep(0.05)
    assert store.reap(lease=0.01) == [worker]
    assert store.get_job(job_id).status == "queued"
    assert store.heartbeat(worker) is False


def test_reap_recovers_dead_processes_on_this_host_at_once(store: Store) -> None:
    dead_pid = 2**22 + 12345  # above pid_max on Linux: never a live process
    worker = register(store, pid=dead_pid, host="here")
    [job_id] = store.enqueue([new()])
    store.claim(worker, None, 1)
    assert store.reap(lease=3600, host="elsewhere") == []
    assert store.reap(lease=3600, host="here") == [worker]
    assert store.get_job(job_id).status == "queued"


def test_heartbeat_keeps_a_worker_alive(store: Store) -> None:
    worker = register(store)
    time.sleep(0.05)
    assert store.heartbeat(worker) is True
    assert store.reap(lease=0.04) == []
    assert [record.id for record in store.workers()] == [worker]


def test_changed_notices_commits_from_other_connections(store: Store, tmp_path) -> None:
    from jobq.store import open_store

    store.changed()
    assert store.changed() is False
    other = open_store(store.url)
    other.enqueue([new()])
    # PostgreSQL delivers its notification a moment after the commit: wait for it, briefly.
    deadline = time.monotonic() + 5
    while not store.changed():
        assert time.monotonic() < deadline, "no change seen 5 s after a commit"
        time.sleep(0.001)
    assert store.changed() is False
    other.close()


def test_get_job_of_a_missing_id_raises(store: Store) -> None:
    with pytest.raises(JobNotFoundError, match="no job with id 42"):
        store.get_job(42)


def test_counts_and_lists(store: Store) -> None:
    worker = register(store)
    store.enqueue([new(queue="a"), new(queue="a"), new(queue="b", task="t.other")])
    store.claim(worker, ["b"], 1)
    summary = store.counts()
    assert summary["counts"]["queued"] == 2 and summary["counts"]["running"] == 1
    assert summary["queues"]["a"]["queued"] == 2 and summary["queues"]["b"]["running"] == 1
    assert [record.task for record in store.list_jobs(task="t.other")] == ["t.other"]
    assert len(store.list_jobs(queue="a", limit=1)) == 1
    assert len(store.list_jobs(status="running")) == 1


def test_cancel_and_retry(store: Store) -> None:
    worker = register(store)
    queued, scheduled, running = store.enqueue([new(), new(run_at=time.time() + 60), new()])
    store.cancel_job(queued)
    store.cancel_job(scheduled)
    record = store.get_job(queued)
    assert record.status == "cancelled" and record.error is not None
    assert record.error["message"] == "cancelled before it ran (jobq cancel)"
    store.claim(worker, None, 1)
    with pytest.raises(InvalidStateError):
        store.retry_job(running)
    store.retry_job(queued)
    record = store.get_job(queued)
    assert record.status == "queued" and record.attempts == 0 and record.finished_at is None
    with pytest.raises(JobNotFoundError):
        store.cancel_job(999)


def test_purge_deletes_only_old_finished_jobs_of_the_statuses(store: Store) -> None:
    worker = register(store)
    ok, bad, waiting = store.enqueue([new(), new(), new()])
    store.claim(worker, None, 2)
    store.complete([done(ok, worker), done(bad, worker, status="failed", error="{}")])
    assert store.purge(["succeeded"], older_than=3600) == 0
    time.sleep(0.02)
    assert store.purge(["succeeded"], older_than=0) == 1
    assert {record.id for record in store.list_jobs()} == {bad, waiting}


def test_names_full_of_quotes_are_data_not_sql(store: Store) -> None:
    nasty = "x'; DROP TABLE jobs; --\""
    worker = register(store, worker_id=nasty)
    [job_id] = store.enqueue([new(task=nasty, queue=nasty)])
    [job] = store.claim(worker, [nasty], 1)
    assert job.task == nasty and job.queue == nasty
    assert store.list_jobs(task=nasty, queue=nasty)[0].id == job_id
    assert store.counts()["queues"][nasty]["running"] == 1


def test_migrate_is_idempotent(store: Store) -> None:
    version = store.schema_version()
    assert version >= 1
    assert store.migrate() == []
    assert store.schema_version() == version


def test_describe_reports_schema_counts_and_integrity(store: Store) -> None:
    store.enqueue([new(), new()])
    facts = store.describe(integrity=True)
    assert facts["schema_version"] == store.schema_version()
    assert facts["tables"]["jobs"] == 2
    assert facts["integrity"] == "ok"


def test_a_late_outcome_never_lands_on_a_later_claim_of_the_same_worker(store: Store) -> None:
    # w1 claims, stalls and is reaped (the job fails: no attempt left); an operator retries
    # it; w1 registers again and claims it again as attempt 1. The first claim's late outcome
    # must not land on the second.
    worker = register(store)
    [job_id] = store.enqueue([new(max_attempts=1)])
    [first] = store.claim(worker, None, 1)
    time.sleep(0.02)
    assert store.reap(lease=0.01) == [worker]
    assert store.get_job(job_id).status == "failed"
    store.retry_job(job_id)
    register(store)
    [second] = store.claim(worker, None, 1)
    assert second.attempts == first.attempts == 1 and second.claim > first.claim
    late = Outcome(job_id, worker, first.claim, "failed", error="{}", finished_at=time.time())
    assert store.complete([late]) == [False]
    assert store.complete([done(job_id, worker, attempt=second.claim, result="2")]) == [True]
    assert store.get_job(job_id).result == 2


def test_ids_are_never_reused_after_a_purge(store: Store) -> None:
    worker = register(store)
    first, newest = store.enqueue([new(), new()])
    for job in store.claim(worker, None, 2):
        store.complete([done(job.id, worker, attempt=job.claim)])
    time.sleep(0.01)
    if store.url.startswith("postgresql"):  # an identity column: every finished job can go
        assert store.purge(["succeeded"], older_than=0) == 2
        assert store.list_jobs() == []
    else:  # SQLite gives a new row the highest id + 1: the newest job stays
        assert store.purge(["succeeded"], older_than=0) == 1
        assert [record.id for record in store.list_jobs()] == [newest]
    [later] = store.enqueue([new()])
    assert later > newest


def test_complete_and_claim_is_one_transaction_of_both(store: Store) -> None:
    worker = register(store)
    first, second, third = store.enqueue([new(), new(), new()])
    [job] = store.claim(worker, None, 1)
    applied, jobs = store.complete_and_claim([done(job.id, worker)], worker, None, 5)
    assert applied == [True]
    assert store.get_job(first).status == "succeeded"
    assert sorted(claimed.id for claimed in jobs) == [second, third]
    assert store.complete_and_claim([], worker, None, 0) == ([], [])
    stale = done(first, worker)
    assert store.complete_and_claim([stale], worker, None, 1) == ([False], [])


def test_a_commands_only_claim_takes_shell_commands_and_nothing_else(store: Store) -> None:
    worker = register(store)
    task_job, command, other_queue, later = store.enqueue(
        [
            new(priority=9),
            new(task="jobq.shell"),
            new(task="jobq.shell", queue="other"),
            new(task="jobq.shell", run_at=time.time() + 60),
        ]
    )
    assert store.runnable_count(None, commands="only") == 2
    assert store.runnable_count(None) == 3
    assert store.next_run_at(["other"], commands="only") is not None
    claimed = store.claim(worker, None, 10, commands="only")
    assert sorted(job.id for job in claimed) == [command, other_queue]
    assert store.claim(worker, None, 10, commands="only") == []
    assert store.get_job(task_job).status == "queued"
    assert store.get_job(later).status == "scheduled"
    assert store.runnable_count(None, commands="only") == 0


def test_a_job_after_others_is_deferred_until_every_one_has_succeeded(store: Store) -> None:
    worker = register(store)
    first, second = store.enqueue([new(), new()])
    [waiting] = store.enqueue([new(after=(first, second))])
    assert store.get_job(waiting).status == "deferred"
    assert store.counts()["counts"]["deferred"] == 1
    assert [job.id for job in store.claim(worker, None, 10)] == [first, second]
    store.complete([done(first, worker)])
    assert store.get_job(waiting).status == "deferred"  # second has not succeeded yet
    store.complete([done(second, worker)])
    assert store.get_job(waiting).status == "queued"
    assert [job.id for job in store.claim(worker, None, 10)] == [waiting]


def test_a_failed_dependency_cancels_the_whole_chain_naming_it(store: Store) -> None:
    worker = register(store)
    [root] = store.enqueue([new()])
    [child] = store.enqueue([new(after=(root,))])
    [grandchild] = store.enqueue([new(after=(child,))])
    store.claim(worker, None, 1)
    store.complete([done(root, worker, status="failed", error="{}")])
    for job_id, cause in ((child, root), (grandchild, child)):
        record = store.get_job(job_id)
        assert record.status == "cancelled" and record.attempts == 0
        assert record.error is not None and record.error["type"] == "DependencyFailed"
        assert f"job {cause}" in record.error["message"]
    assert store.claim(worker, None, 10) == []


def test_cancelling_a_waited_for_job_cancels_its_dependents(store: Store) -> None:
    [root] = store.enqueue([new()])
    [child] = store.enqueue([new(after=(root,))])
    assert store.cancel_job(root) == "cancelled"
    assert store.get_job(child).status == "cancelled"


def test_after_finished_jobs_settles_at_submit_and_unknown_ids_write_nothing(
    store: Store,
) -> None:
    worker = register(store)
    ok, bad = store.enqueue([new(), new()])
    store.claim(worker, None, 2)
    store.complete([done(ok, worker), done(bad, worker, status="failed", error="{}")])
    [runs, never] = store.enqueue([new(after=(ok,)), new(after=(ok, bad))])
    assert store.get_job(runs).status == "queued"
    assert store.get_job(never).status == "cancelled"
    before = store.counts()["counts"]
    with pytest.raises(JobNotFoundError, match="no job with id 999"):
        store.enqueue([new(), new(after=(ok, 999))])
    assert store.counts()["counts"] == before


def test_cancel_of_a_running_job_asks_its_worker_and_it_never_goes_back(store: Store) -> None:
    worker = register(store)
    retried, released, finished = store.enqueue([new(), new(), new()])
    claims = {job.id: job.claim for job in store.claim(worker, None, 3)}
    [child] = store.enqueue([new(after=(released,))])
    assert [store.cancel_job(job_id) for job_id in (retried, released, finished)] == [
        "cancelling"
    ] * 3
    assert sorted(store.cancel_requests(worker)) == sorted(claims.items())
    assert store.get_job(retried).status == "running"  # until its worker says so
    # A retry that raced with the cancel ends cancelled; a finished job keeps its outcome.
    retry = done(retried, worker, claims[retried], status="scheduled", error="{}")
    retry.run_at = time.time()
    assert store.complete([retry, done(finished, worker, claims[finished])]) == [True, True]
    assert store.get_job(retried).status == "cancelled"
    assert store.get_job(finished).status == "succeeded"
    # A worker that goes away does not hand a cancelled job back to the queue.
    store.release_worker(worker, reason="stopped", refund=True)
    record = store.get_job(released)
    assert record.status == "cancelled" and record.error is not None
    assert record.error["type"] == "Cancelled"
    assert store.get_job(child).status == "cancelled"
    with pytest.raises(InvalidStateError, match="only waiting or running"):
        store.cancel_job(finished)


def test_cancelling_a_retry_that_waits_keeps_its_last_error(store: Store) -> None:
    worker = register(store)
    [job_id] = store.enqueue([new()])
    [job] = store.claim(worker, None, 1)
    error = json.dumps({"type": "ValueError", "message": "boom", "traceback": "Traceback..."})
    retry = done(job_id, worker, job.claim, status="scheduled", error=error)
    retry.run_at = time.time() + 60
    assert store.complete([retry]) == [True]
    assert store.cancel_job(job_id) == "cancelled"
    record = store.get_job(job_id)
    assert record.error == {
        "type": "Cancelled",
        "message": "cancelled while waiting to retry (jobq cancel); last error: ValueError: boom",
        "traceback": "Traceback...",
    }


@pytest.mark.parametrize("queues", [None, ["default", "other"]])
def test_a_claim_without_commands_leaves_every_shell_command_queued(
    store: Store, queues: list[str] | None
) -> None:
    """A worker that may not run shell commands claims none: another worker that may (on
    this host or another) runs them, where before they were claimed and failed ShellRefused."""
    worker = register(store)
    command, task_job, other_command, other_task = store.enqueue(
        [
            new(task="jobq.shell", priority=9),
            new(),
            new(task="jobq.shell", queue="other", priority=9),
            new(queue="other"),
        ]
    )
    assert store.runnable_count(queues, commands="never") == 2
    claimed = store.claim(worker, queues, 10, commands="never")
    assert sorted(job.id for job in claimed) == [task_job, other_task]
    assert store.claim(worker, queues, 10, commands="never") == []
    assert store.runnable_count(queues, commands="never") == 0
    assert store.next_run_at(queues, commands="never") is None
    assert {store.get_job(command).status, store.get_job(other_command).status} == {"queued"}


def test_a_deferred_job_says_which_jobs_it_still_waits_for(store: Store) -> None:
    worker = register(store)
    first, second = store.enqueue([new(), new()])
    [waiting] = store.enqueue([new(after=(second, first))])
    assert store.get_job(waiting).waiting_for == [first, second]
    [claimed] = store.claim(worker, None, 1)
    assert claimed.id == first
    store.complete([done(claimed.id, worker, claimed.claim)])
    assert store.get_job(waiting).waiting_for == [second]
    assert store.get_job(first).waiting_for == []
