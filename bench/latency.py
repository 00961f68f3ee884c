"""Submit-to-start latency on an idle worker pool.

Starts a supervised pool (``app.run_worker(procs=P, threads=T)``, the same code path as
``jobq worker --procs P --threads T``) in a child process, waits until its worker has
registered, then submits N jobs one at a time, GAP seconds apart. Each job's first line
records ``time.time()`` into its result; the latency of a job is that time minus the moment
its ``submit()`` returned. Prints percentiles in milliseconds.

    python bench/latency.py                      # N=200, 20 ms apart, procs=1, threads=4
    python bench/latency.py --db 'sqlite:///lat.db?synchronous=full'
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time

from jobq import JobQ

app = JobQ()


@app.task(name="bench.stamp")
def stamp() -> float:
    return time.time()  # first line: when the task started


def serve(database: str, procs: int, threads: int) -> None:
    app.use_database(database)
    app.run_worker(procs=procs, threads=threads)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--jobs", type=int, default=200)
    parser.add_argument("--gap", type=float, default=0.020, help="seconds between submits")
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--db", help="database path or URL (default: a fresh temp file)")
    options = parser.parse_args()

    database = options.db or os.path.join(tempfile.mkdtemp(prefix="jobq-latency-"), "jobq.db")
    app.use_database(database)
    app.store.migrate()  # create and migrate before the worker starts
    app.close()  # no connection may cross the fork

    server = multiprocessing.get_context("fork").Process(
        target=serve, args=(database, options.procs, options.threads)
    )
    server.start()
    try:
        deadline = time.monotonic() + 30
        while len(app.store.workers()) < options.procs:
            if time.monotonic() > deadline or not server.is_alive():
                print("the worker pool did not start", file=sys.stderr)
                return 1
            time.sleep(0.05)
        time.sleep(0.5)  # let the pool settle into its idle wait

        submitted = []
        for _ in range(options.jobs):
            job = stamp.submit()
            submitted.append((job, time.time()))
            time.sleep(options.gap)
        latencies = [(job.result(timeout=30) - returned) * 1000 for job, returned in submitted]
    finally:
        app.close()
        server.terminate()  # SIGTERM: graceful stop
        server.join(timeout=30)

    print(f"database  {app.database}")
    print(f"pool      procs={options.procs} threads={options.threads}, idle between jobs")
    print(f"jobs      {options.jobs}, one submit every {options.gap * 1000:.0f} ms")
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs"
    print(f"machine   {machine}, Python {platform.python_version()}")
    print(
        "latency   submit returned -> task started, ms: "
        f"min {min(latencies):.2f}  p50 {percentile(latencies, 0.50):.2f}  "
        f"p90 {percentile(latencies, 0.90):.2f}  p99 {percentile(latencies, 0.99):.2f}  "
        f"max {max(latencies):.2f}  mean {statistics.fmean(latencies):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
