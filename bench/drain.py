"""Quick figures for jobq alone: submit one at a time, submit_many, and drain with a pool.

    python bench/drain.py [--jobs 20000] [--procs 5] [--threads 32]
    python bench/drain.py --db 'postgresql://postgres@127.0.0.1:5432/test?schema=jobq_drain'

Runs against a fresh SQLite database in a temporary directory, durable defaults (WAL,
synchronous=NORMAL), or against a PostgreSQL schema given with --db (emptied first: give one
used for nothing else). Prints jobs per second for each phase.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from jobq import JobQ
from jobq.worker.settings import WorkerSettings

app = JobQ()


@app.task(name="bench.noop")
def noop(number: int) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=3_000, help="jobs submitted one by one")
    parser.add_argument("--procs", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=WorkerSettings.threads, help="default: jobq's own"
    )
    parser.add_argument("--db", help="a postgresql:// URL whose schema may be emptied")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        app.use_database(options.db or Path(folder) / "bench.db")
        if options.db:
            app.store.purge(["succeeded", "failed", "cancelled"], older_than=0)
            assert not app.store.unfinished_job_ids(), "the schema holds unfinished jobs"

        start = time.perf_counter()
        for number in range(options.single):
            noop.submit(number)
        single = options.single / (time.perf_counter() - start)

        start = time.perf_counter()
        for offset in range(0, options.jobs - options.single, 10_000):
            count = min(10_000, options.jobs - options.single - offset)
            noop.submit_many([(number,) for number in range(count)])
        many = (options.jobs - options.single) / (time.perf_counter() - start)
        app.close()

        start = time.perf_counter()
        app.run_worker(procs=options.procs, threads=options.threads, burst=True)
        drain = options.jobs / (time.perf_counter() - start)
        counts = app.store.counts()["counts"]
        assert counts["succeeded"] == options.jobs, counts
        app.close()
    print(f"submit, one call per job : {single:10,.0f} jobs/s")
    print(f"submit_many              : {many:10,.0f} jobs/s")
    print(
        f"drain {options.jobs} no-op jobs    : {drain:10,.0f} jobs/s "
        f"(--procs {options.procs} --threads {options.threads}, process start-up included)"
    )


if __name__ == "__main__":
    main()
