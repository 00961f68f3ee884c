"""Scale checks for one machine: a million queued jobs.

    python bench/scale.py [--jobs 1000000] [--small 10000] [--sample 10000]

On a fresh database in a temporary directory, with jobq's defaults (`--procs 5`):

1. fills the queue with ``--jobs`` no-op jobs (submit_many) and times ``jobq status``;
2. drains the first ``--sample`` jobs and reports the rate, next to the rate for the same
   number of jobs from a database holding only ``--small`` (claims must not slow down with
   the queue's length);
3. drains the rest while sampling the WAL file's size every 0.5 s (it must stay bounded);
4. purges the finished jobs while a worker drains a fresh batch (pruning must not stall it).

Prints one line per figure. Takes a few minutes for a million jobs on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from jobq import JobQ

app = JobQ()


@app.task(name="bench.noop")
def noop(number: int) -> None:
    return None


def fill(database: Path, count: int) -> float:
    app.use_database(database)
    start = time.perf_counter()
    for offset in range(0, count, 10_000):
        noop.submit_many([(offset + n,) for n in range(min(10_000, count - offset))])
    app.close()
    return count / (time.perf_counter() - start)


def drain_all(database: Path) -> float:
    """Run a burst pool (`procs=5`) until nothing is runnable: jobs/s."""
    app.use_database(database)
    before = app.store.counts()["counts"]["succeeded"]
    app.close()
    start = time.perf_counter()
    app.run_worker(procs=5, burst=True)
    done = app.store.counts()["counts"]["succeeded"] - before
    app.close()
    return done / (time.perf_counter() - start)


def drain_some(database: Path, count: int) -> float:
    """Run a pool (`procs=5`, its own process) until ``count`` more jobs succeeded: jobs/s."""
    target = succeeded(database) + count
    start = time.perf_counter()
    process = start_pool(database)
    try:
        while succeeded(database) < target:
            time.sleep(0.05)
        return count / (time.perf_counter() - start)
    finally:
        process.terminate()
        process.wait(timeout=60)


def succeeded(database: Path) -> int:
    """Jobs succeeded so far, from the finished jobs' index alone (cheap with 1M queued:
    ``counts()`` would count the queued ones too, and its cost would skew the timing)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        row = connection.execute(
            "SELECT COUNT(*) FROM jobs INDEXED BY jobs_finished"
            " WHERE status IN ('succeeded', 'failed', 'cancelled') AND status = 'succeeded'"
        ).fetchone()
    return int(row[0])


def start_pool(database: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _RUN_WORKER, str(database)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
    )


_RUN_WORKER = """
import sys
from scale import app
app.use_database(sys.argv[1])
app.run_worker(procs=5)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=10_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        small = Path(folder) / "small.db"
        fill(small, options.small)
        small_rate = drain_some(small, options.small)  # measured as the large queue's sample
        print(f"drain with {options.small:,} queued: {small_rate:,.0f} jobs/s")

        big = Path(folder) / "big.db"
        print(f"submit_many {options.jobs:,} jobs: {fill(big, options.jobs):,.0f} jobs/s")
        started = time.perf_counter()
        subprocess.run(
            ["jobq", "--db", str(big), "status", "--json"], check=True, capture_output=True
        )
        print(f"jobq status with {options.jobs:,} jobs: {time.perf_counter() - started:.2f} s")
        big_rate = drain_some(big, options.sample)
        print(
            f"drain of the first {options.sample:,} with {options.jobs:,} queued: "
            f"{big_rate:,.0f} jobs/s ({big_rate / small_rate:.0%} of the small queue's rate)"
        )

        wal = Path(f"{big}-wal")
        sizes: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.5):
                sizes.append(wal.stat().st_size if wal.exists() else 0)

        sampler = threading.Thread(target=sample)
        sampler.start()
        rest = drain_all(big)
        stop.set()
        sampler.join()
        largest = max(sizes, default=0) / 2**20
        last = sizes[-1] / 2**20 if sizes else 0.0
        print(
            f"drain of the rest: {rest:,.0f} jobs/s; WAL max {largest:.1f} MiB over"
            f" {len(sizes)} samples, {last:.1f} MiB at the end"
        )

        fill(big, options.small)
        process = start_pool(big)
        started = time.perf_counter()
        purge = subprocess.Popen(
            ["jobq", "--db", str(big), "purge", "--status", "succeeded", "--older-than", "0s"],
            stdout=subprocess.PIPE,
            text=True,
        )
        app.use_database(big)
        while app.store.runnable_count(None):  # an index lookup, unlike counts() over 1M rows
            time.sleep(0.02)
        drained = time.perf_counter() - started
        output, _ = purge.communicate(timeout=600)
        purge_seconds = time.perf_counter() - started
        process.terminate()
        process.wait(timeout=60)
        app.close()
        print(
            f"{output.strip()} in {purge_seconds:.1f} s; meanwhile a pool drained "
            f"{options.small:,} new jobs in {drained:.1f} s"
        )


if __name__ == "__main__":
    main()
