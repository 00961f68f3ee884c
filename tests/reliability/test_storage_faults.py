"""Storage faults, with real processes: a locked database, a full disk, processes killed while
they write (the power loss one machine can test), and a graceful stop under load.

Every test asserts what a user sees (exit codes, one-line errors, job statuses, the database
afterwards) and prints the figure it checks (run with ``-s`` to see them).
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from jobq import DatabaseBusyError, DatabaseError, JobQ
from tests.support import sample_tasks
from tests.support.helpers import TASKS, WorkerHandle, log_lines, pid_alive, query, wait_for

pytestmark = pytest.mark.slow


# -- helpers -------------------------------------------------------------------------------


def job_count(database: str) -> int:
    return int(query(database, "SELECT COUNT(*) FROM jobs", timeout=10)[0][0])


def statuses(database: str, ids: Sequence[int]) -> dict[int, str]:
    marks = ", ".join("?" * len(ids))
    return dict(
        query(database, f"SELECT id, status FROM jobs WHERE id IN ({marks})", ids, timeout=10)
    )


def all_succeeded(database: str, ids: Sequence[int]) -> bool:
    return set(statuses(database, ids).values()) == {"succeeded"}


def runs(tmp_path: Path, prefix: str) -> Counter[int]:
    """How many times each job recorded a tag starting with ``prefix``."""
    return Counter(job_id for tag, job_id, _ in log_lines(tmp_path) if tag.startswith(prefix))


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return done.stderr.strip().splitlines()


# -- 1. a database locked by another process ------------------------------------------------

LOCK_HOLDER = """
import select, sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
connection.execute("BEGIN EXCLUSIVE")
start = time.monotonic()
print("locked", flush=True)
select.select([sys.stdin], [], [], 20)  # held until the test says so (20 s at most)
time.sleep(max(0.0, float(sys.argv[2]) - (time.monotonic() - start)))
connection.execute("ROLLBACK")
print(f"released {time.monotonic() - start:.2f}", flush=True)
"""


class HeldLock:
    """The write lock, held by another process (LOCK_HOLDER)."""

    def __init__(self, holder: subprocess.Popen[str]) -> None:
        self.holder = holder

    def still_held(self) -> bool:
        return self.holder.poll() is None

    def release(self) -> float:
        """Let it go once held its ``seconds`` in all; how long it was held."""
        assert self.holder.stdin is not None and self.holder.stdout is not None
        self.holder.stdin.write("release\n")
        self.holder.stdin.flush()
        released = self.holder.stdout.readline().strip()
        assert self.holder.wait(timeout=20) == 0
        return float(released.split()[1])


@contextlib.contextmanager
def lock_held(database: str, seconds: float) -> Iterator[HeldLock]:
    """The write lock, held by another process from entry for ``seconds`` at least."""
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, database, str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        yield HeldLock(holder)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)


def test_a_locked_database_refuses_submits_in_one_line_and_workers_wait_it_out(
    sample_app: JobQ,
    database: str,
    start_worker: Callable[..., WorkerHandle],
    jobq: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
) -> None:
    busy = f"sqlite:///{database}?busy_timeout=200"
    sleepers = [sample_tasks.sleep.submit(0.3, f"s{index}").id for index in range(40)]
    records = [sample_tasks.record.submit(f"r{index}").id for index in range(40)]
    ids = sleepers + records
    worker = start_worker(
        "--procs", "2", "--threads", "4", "--lease", "20", "--grace", "5", "--db", busy
    )
    wait_for(lambda: len(worker.children()) == 2 and len(runs(tmp_path, "end-")) >= 8, timeout=20)
    children = sorted(worker.children())
    total = job_count(database)

    with lock_held(database, 1.5) as lock:
        done_at_lock = sum(s == "succeeded" for s in statuses(database, ids).values())

        # A user's submit: one clear line, a non-zero exit, no traceback.
        refused = jobq("submit", "--db", busy, f"{TASKS}.record", "during-lock")
        # The library: DatabaseBusyError, which says nothing was written.
        locked_app = JobQ(busy)
        try:
            with pytest.raises(DatabaseBusyError) as raised:
                locked_app.submit(f"{TASKS}.record", args=["in-process"])
        finally:
            locked_app.close()
        alive_during_lock = worker.process.poll() is None and sorted(worker.children()) == children
        still_locked = lock.still_held()
        held = lock.release()
    print(
        f"\nlock held {held:.2f} s (busy_timeout 200 ms); {done_at_lock}/{len(ids)} jobs done "
        f"when it was taken; submit exit {refused.returncode}: {refused.stderr.strip()!r}; "
        f"library: {type(raised.value).__name__}"
    )
    assert still_locked, "the checks must run while the lock is held"
    assert refused.returncode == 1, refused
    assert refused.stdout == ""
    lines = error_lines(refused)
    assert len(lines) == 1, refused.stderr
    assert "locked" in lines[0] and "nothing was written" in lines[0], lines
    assert "Traceback" not in refused.stderr
    assert "locked" in str(raised.value)
    assert job_count(database) == total, "a refused submit wrote something"
    assert alive_during_lock, worker.output()

    # The worker waited the lock out: every job done, each exactly once, nothing restarted.
    wait_for(lambda: all_succeeded(database, ids), timeout=30)
    assert worker.process.poll() is None
    assert sorted(worker.children()) == children, "a worker process died and was restarted"
    attempts = dict(query(database, "SELECT id, attempts FROM jobs", timeout=10))
    assert set(attempts) == set(ids) and set(attempts.values()) == {1}, attempts
    starts, ends = runs(tmp_path, "start-"), runs(tmp_path, "end-")
    assert starts == ends == Counter(sleepers), (starts, ends)
    assert runs(tmp_path, "r") == Counter(records)
    output = worker.output()
    waits = [line for line in output.splitlines() if "is locked" in line]
    print(
        f"worker logged {len(waits)} busy retries; {len(ids)} jobs succeeded, each ran once; "
        f"children {children} unchanged"
    )
    assert waits, "the worker never met the lock: the test proved nothing"
    assert "Traceback" not in output and "crashed" not in output, output
    assert worker.stop(timeout=15) == 0


def test_a_lock_held_for_longer_than_the_lease_gets_no_live_worker_reaped_or_killed(
    sample_app: JobQ,
    database: str,
    start_worker: Callable[..., WorkerHandle],
    tmp_path: Path,
) -> None:
    """A lease of 2 s under SQLite's default busy timeout of 5 s: every heartbeat waits in the
    busy handler for longer than a lease, and the lock outlasts three leases. Workers on this
    host whose processes run are alive: none is killed as unresponsive, none reaped when
    the lock goes, and every job runs once."""
    sleepers = [sample_tasks.sleep.submit(0.4, f"s{index}").id for index in range(24)]
    worker = start_worker("--procs", "2", "--threads", "3", "--lease", "2", "--grace", "5")
    wait_for(lambda: len(worker.children()) == 2 and len(runs(tmp_path, "end-")) >= 3, timeout=20)
    children = sorted(worker.children())
    with lock_held(database, 7) as lock:
        done_at_lock = sum(s == "succeeded" for s in statuses(database, sleepers).values())
        held = lock.release()  # after 7 s in all
    wait_for(lambda: all_succeeded(database, sleepers), timeout=60)
    output = worker.output()
    starts, ends = runs(tmp_path, "start-"), runs(tmp_path, "end-")
    attempts = dict(query(database, "SELECT id, attempts FROM jobs", timeout=10))
    print(
        f"\nlock held {held:.2f} s (lease 2 s, busy timeout 5 s); "
        f"{done_at_lock}/{len(sleepers)} done when taken; children {children} -> "
        f"{sorted(worker.children())}; attempts {sorted(set(attempts.values()))}; "
        f"reaped: {output.count('recovered the jobs')}"
    )
    assert held >= 6.0, held
    assert done_at_lock < len(sleepers), "every job was done before the lock: proved nothing"
    assert "unresponsive" not in output, output[-3000:]
    assert "recovered the jobs of dead workers" not in output, output[-3000:]
    assert sorted(worker.children()) == children, "a worker process was killed and restarted"
    assert set(attempts.values()) == {1}, attempts
    assert starts == ends == Counter(sleepers), (starts, ends)
    assert worker.stop(timeout=15) == 0


# -- 2. a full disk ------------------------------------------------------------------------

RESULT_SIZE = 150_000  # a result that needs ~37 new pages of 4 KiB
FILLER_SIZE = 100_000
SLACK = 16  # pages left free under the cap: enough for claims, not for any result


def test_a_full_database_refuses_submits_cleanly_and_workers_keep_outcomes_until_space_returns(
    sample_app: JobQ,
    database: str,
    start_worker: Callable[..., WorkerHandle],
    jobq: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
) -> None:
    ids = [sample_tasks.big.submit(RESULT_SIZE).id for _ in range(6)]
    filler = [
        sample_app.submit(f"{TASKS}.echo", args=["f" * FILLER_SIZE], queue="filler").id
        for _ in range(30)
    ]
    pages = int(query(database, "PRAGMA page_count", timeout=10)[0][0])
    cap = pages + SLACK
    capped = f"sqlite:///{database}?max_page_count={cap}"
    total = job_count(database)

    # (a) Submits that need space fail with one clear line and write nothing.
    refused = jobq("submit", "--db", capped, f"{TASKS}.echo", "z" * FILLER_SIZE)
    capped_app = JobQ(capped)

    @capped_app.task(name=f"{TASKS}.echo")
    def echo(value: object = None) -> object:
        return value

    try:
        with pytest.raises(DatabaseError) as raised:
            echo.submit_many([("m" * 2000,)] * 100)
    finally:
        capped_app.close()
    print(
        f"\ncap {cap} pages ({pages} used); submit exit {refused.returncode}: "
        f"{refused.stderr.strip()!r}; submit_many(100): {raised.value}"
    )
    assert refused.returncode == 1, refused
    lines = error_lines(refused)
    assert len(lines) == 1 and "cannot grow" in lines[0], refused.stderr
    assert "Traceback" not in refused.stderr
    assert "cannot grow" in str(raised.value)
    assert not isinstance(raised.value, DatabaseBusyError)
    assert job_count(database) == total, "a refused submit left jobs behind"

    # (b) A worker on the capped database runs the jobs; their results do not fit.
    # As many threads as jobs: a process holds at most `threads` unrecorded outcomes.
    worker = start_worker(
        "--procs",
        "1",
        "--threads",
        str(len(ids)),
        "--queues",
        "default",
        "--lease",
        "20",
        "--grace",
        "5",
        "--db",
        capped,
    )
    wait_for(
        lambda: runs(tmp_path, "big") == Counter(ids) and worker.output().count("cannot grow") >= 3,
        timeout=30,
    )
    children = worker.children()
    assert worker.process.poll() is None and len(children) == 1, worker.output()
    held = statuses(database, ids)
    assert set(held.values()) == {"running"}, held  # outcomes kept, not recorded, not lost

    # Free space from a connection without the cap, as an operator would.
    for job_id in filler:
        sample_app.store.cancel_job(job_id)
    purged = jobq("purge", "--status", "cancelled", "--older-than", "0s")
    assert purged.returncode == 0, purged.stderr
    # The newest filler job stays: purge never deletes the job with the highest id.
    assert purged.stdout.strip() == f"purged {len(filler) - 1} jobs"
    free = int(query(database, "PRAGMA freelist_count", timeout=10)[0][0])

    wait_for(lambda: all_succeeded(database, ids), timeout=30)
    output = worker.output()
    retries = output.count("could not record")
    print(
        f"worker kept outcomes through {retries} failed writes; {free} pages freed; "
        f"{len(ids)} jobs succeeded; runs per job {sorted(set(runs(tmp_path, 'big').values()))}"
    )
    assert retries >= 3
    for job_id in ids:
        info = sample_app.store.get_job(job_id)
        assert info.status == "succeeded" and info.attempts == 1, info
        assert info.result == "x" * RESULT_SIZE
    assert runs(tmp_path, "big") == Counter(ids), "a job ran twice"
    assert worker.process.poll() is None and worker.children() == children
    assert "Traceback" not in output and "crashed" not in output, output
    accepted = jobq("submit", "--db", capped, f"{TASKS}.echo", "fits now")
    assert accepted.returncode == 0, accepted.stderr
    assert worker.stop(timeout=15) == 0


# -- 3. processes killed while they write ----------------------------------------------------

SUBMITTER = """
import sys
from jobq import JobQ
app = JobQ(sys.argv[1])
number = 0
while True:
    job = app.submit("tests.support.sample_tasks.record", args=[f"{sys.argv[2]}-{number}"],
                     max_attempts=100)
    print(job.id, flush=True)  # acknowledged: submit returned
    number += 1
"""
KILLS = 20


@pytest.mark.parametrize("synchronous", ["normal", "full"])
def test_killing_submitters_and_workers_mid_write_loses_no_acknowledged_job(
    synchronous: str,
    database: str,
    start_worker: Callable[..., WorkerHandle],
    cli_env: dict[str, str],
    jobq: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{database}" + ("?synchronous=full" if synchronous == "full" else "")
    rng = random.Random()
    acknowledged: list[int] = []
    worker_kills = supervisor_kills = 0
    worker: WorkerHandle | None = None
    for round_ in range(KILLS):
        out = tmp_path / f"submitter-{round_}.out"
        with out.open("w") as handle:
            submitter = subprocess.Popen(
                [sys.executable, "-c", SUBMITTER, url, f"k{round_}"],
                env=cli_env,
                cwd=tmp_path,
                stdout=handle,
                stderr=subprocess.STDOUT,
                text=True,
            )
        if worker is None:
            worker = start_worker(
                "--procs", "2", "--threads", "4", "--lease", "20", "--grace", "5", "--db", url
            )
        if rng.random() < 0.25:  # sometimes while it opens the database
            time.sleep(rng.uniform(0.05, 0.3))
        else:  # mostly in the middle of a stream of submits
            wait_for(
                lambda: out.stat().st_size > 0 or submitter.poll() is not None,  # noqa: B023
                timeout=15,
            )
            time.sleep(rng.uniform(0.0, 0.15))
        assert submitter.poll() is None, out.read_text()
        submitter.kill()
        assert submitter.wait(timeout=10) == -signal.SIGKILL
        text = out.read_text()
        complete = text if text.endswith("\n") else text.rpartition("\n")[0]
        acknowledged += [int(line) for line in complete.split()]
        # The worker is killed too: a child now and then, the supervisor every fifth round.
        if round_ % 5 == 4:
            worker.signal(signal.SIGKILL)
            worker.wait(timeout=10)
            supervisor_kills += 1
            worker = None
        elif round_ % 2 == 1 and worker.kill_random_child(rng) is not None:
            worker_kills += 1

    if worker is not None:
        assert worker.stop(timeout=15) == 0, worker.output()
    # Whatever is left runs now; the dead workers' jobs are recovered at once (dead pids).
    drain = start_worker("--procs", "1", "--threads", "8", "--lease", "20", "--burst", "--db", url)
    assert drain.wait(timeout=60) == 0, drain.output()

    rows = query(database, "SELECT id, task, status, args, kwargs, result FROM jobs", timeout=10)
    by_id = {row[0]: row for row in rows}
    missing = sorted(set(acknowledged) - set(by_id))
    integrity = query(database, "PRAGMA integrity_check", timeout=10)
    checked = jobq("check", "--db", url)
    ran = runs(tmp_path, "k")
    again = sum(count > 1 for count in ran.values())
    print(
        f"\nsynchronous={synchronous}: {KILLS} submitter kills, {worker_kills} worker-process "
        f"kills, {supervisor_kills} supervisor kills; {len(acknowledged)} acknowledged ids, "
        f"{len(rows)} jobs stored, {len(missing)} missing; integrity {integrity[0][0]}; "
        f"{again} jobs ran more than once (at least once is the promise)"
    )
    assert len(acknowledged) >= KILLS // 2, "the submitters hardly ever got to submit"
    assert not missing, missing
    assert len(set(acknowledged)) == len(acknowledged), "an id was acknowledged twice"
    assert integrity == [("ok",)], integrity
    assert checked.returncode == 0 and "integrity       ok" in checked.stdout, checked
    for job_id, task, status, args, kwargs, result in rows:
        assert task == f"{TASKS}.record", by_id[job_id]
        assert len(json.loads(args)) == 1 and json.loads(kwargs) == {}, by_id[job_id]
        assert status == "succeeded" and json.loads(result) == json.loads(args)[0], by_id[job_id]
        assert ran[job_id] >= 1, f"job {job_id} is succeeded but never ran"


# -- 4. a graceful stop with hundreds of jobs running ----------------------------------------


def test_sigterm_under_load_finishes_running_jobs_and_queues_the_rest_again(
    sample_app: JobQ,
    database: str,
    start_worker: Callable[..., WorkerHandle],
    jobq: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
) -> None:
    ids = [
        job.id
        for job in sample_tasks.sleep.submit_many([(1.0, f"g{index}") for index in range(300)])
    ]
    worker = start_worker("--procs", "5", "--threads", "40", "--lease", "20", "--grace", "10")
    wait_for(lambda: sum(runs(tmp_path, "start-").values()) >= 150, timeout=40)
    children = worker.children()
    assert len(children) == 5

    worker.signal(signal.SIGTERM)
    signalled = time.monotonic()
    code = worker.wait(timeout=10)  # within the grace
    took = time.monotonic() - signalled

    assert code == 0, worker.output()
    wait_for(lambda: not any(pid_alive(child) for child in children), timeout=5)
    records = {job_id: sample_app.store.get_job(job_id) for job_id in ids}
    started, ended = runs(tmp_path, "start-"), runs(tmp_path, "end-")
    counts = Counter(record.status for record in records.values())
    handed_back = sum(
        int(line.split("handed back ")[1].split()[0])
        for line in worker.output().splitlines()
        if "handed back" in line
    )
    print(
        f"\nstop took {took:.2f} s (grace 10 s); {len(started)} jobs had started, "
        f"{counts['succeeded']} succeeded, {counts['queued']} queued again "
        f"({handed_back} of them prefetched and handed back), {counts['running']} running"
    )
    assert counts["running"] == 0
    assert started == ended, "a started job did not finish"
    assert set(started.values()) == {1}
    for job_id, record in records.items():
        if job_id in started:
            assert record.status == "succeeded" and record.attempts == 1, record
        else:
            assert record.status == "queued" and record.attempts == 0, record
            assert record.worker is None and record.started_at is None, record
    assert counts["succeeded"] == len(started) and counts["queued"] == len(ids) - len(started)
    summary = jobq("status", "--json")
    assert summary.returncode == 0, summary.stderr
    assert json.loads(summary.stdout)["workers"] == []


# -- 5. a second app on the same database, in the same process -------------------------------


def test_opening_the_database_again_in_a_process_keeps_its_locks_and_its_view(
    database: str,
    jobq: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    """Regression: opening a store read the file's header with open()/close(), and closing
    any descriptor of a file drops all the POSIX locks the process holds on it. Another
    process then saw no other user, checkpointed and deleted the live WAL, and this process
    went on with the deleted one: it no longer saw other processes' commits, and when it
    closed last it checkpointed its stale WAL over them (a worker's claims and results were
    lost that way)."""
    first = JobQ(database)
    second = JobQ(database)
    try:
        before = [first.submit(f"{TASKS}.echo", args=[index]).id for index in range(3)]
        second.store.counts()  # opens the same file again, in this process
        assert jobq("status", "--json").returncode == 0  # another process opens and closes it
        wal = Path(f"{database}-wal")
        added = jobq("submit", f"{TASKS}.echo", "from-another-process")
        assert added.returncode == 0, added.stderr
        seen = first.store.job_statuses([*before, int(added.stdout)])
        print(
            f"\nWAL kept while in use: {wal.exists()}; this process sees {len(seen)} of "
            f"{len(before) + 1} jobs"
        )
        assert wal.exists(), "another process deleted the WAL this process is using"
        assert seen == dict.fromkeys([*before, int(added.stdout)], "queued"), seen
    finally:
        second.close()
        first.close()
    assert job_count(database) == len(before) + 1
