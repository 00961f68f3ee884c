"""Many queues: does a claim cost the same however many queues hold waiting jobs?

    python bench/queues.py [--jobs 5000] [--queues 1,5000] [--rounds 1]

For each queue count, on a fresh SQLite file in a temporary directory: ``--jobs`` no-op jobs
spread evenly over that many queues, drained by a burst pool of 5 worker processes (jobq's
defaults otherwise) started in a subprocess, timed from its start to its exit. Meanwhile this
process submits one job every 20 ms (due in an hour, so the pool has no more to do) and times
each submit: the claim
holds the write lock, so a slow claim shows as slow (or refused) submits.

To compare two trees side by side, run it with each on PYTHONPATH, alternating:

    PYTHONPATH=/path/to/old:bench python bench/queues.py
    PYTHONPATH=.:bench python bench/queues.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import jobq
from jobq import DatabaseError, JobQ

app = JobQ()


@app.task(name="bench.noop")
def noop(number: int) -> None:
    return None


_RUN_WORKER = """
import sys
from queues import app
app.use_database(sys.argv[1])
app.run_worker(procs=5, burst=True)
"""


def fill(database: Path, jobs: int, queues: int) -> None:
    app.use_database(database)
    by_queue: dict[str, list[tuple[int]]] = {}
    for number in range(jobs):
        by_queue.setdefault(f"q{number % queues}", []).append((number,))
    for queue, calls in by_queue.items():
        noop.options(queue=queue).submit_many(calls)
    app.close()


def drain(database: Path) -> tuple[float, list[float], int]:
    """Seconds the burst pool took, the submit times meanwhile, and the submits refused."""
    times: list[float] = []
    refused = 0
    done = threading.Event()

    def submit() -> None:
        nonlocal refused
        submitter = JobQ(database)
        try:
            while not done.wait(0.02):
                start = time.perf_counter()
                try:
                    # Due in an hour: a write like any submit, but no work for the pool.
                    submitter.submit("bench.noop", args=[0], queue="elsewhere", delay=3600)
                except DatabaseError:
                    refused += 1
                times.append(time.perf_counter() - start)
        finally:
            submitter.close()

    thread = threading.Thread(target=submit)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    start = time.perf_counter()
    thread.start()
    try:
        subprocess.run(
            [sys.executable, "-c", _RUN_WORKER, str(database)],
            env=env,
            cwd=database.parent,  # not this folder: '' on sys.path would find its jobq first
            check=True,
            stderr=subprocess.DEVNULL,
            timeout=600,
        )
    finally:
        elapsed = time.perf_counter() - start
        done.set()
        thread.join()
    return elapsed, times, refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--queues", default="1,5000", help="queue counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=1)
    options = parser.parse_args()
    print(f"jobq from {Path(jobq.__file__).parent.parent}")
    for _ in range(options.rounds):
        for queues in (int(part) for part in options.queues.split(",")):
            with tempfile.TemporaryDirectory() as folder:
                database = Path(folder) / "queues.db"
                fill(database, options.jobs, queues)
                elapsed, times, refused = drain(database)
                app.use_database(database)
                counts = app.store.counts()["counts"]
                app.close()
                if counts["succeeded"] != options.jobs:
                    raise SystemExit(f"the pool ran {counts['succeeded']} jobs, not {options.jobs}")
            times.sort()
            p99 = times[int(len(times) * 0.99)] if times else 0.0
            print(
                f"{options.jobs} jobs in {queues} queues: drained in {elapsed:.2f} s "
                f"({options.jobs / elapsed:,.0f} jobs/s); {len(times)} submits meanwhile: "
                f"p99 {p99 * 1000:.0f} ms, max {max(times, default=0) * 1000:.0f} ms, "
                f"{refused} refused"
            )


if __name__ == "__main__":
    main()
