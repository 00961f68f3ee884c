"""The blog's process-pool example (``Pool(5).apply_async(task, callback=...)``), on jobq.

The blog starts a ``multiprocessing.Pool(5)``, hands it 8 calls of ``task(i)`` with
``apply_async``, and prints "Complete task N" from a callback as each call returns. Here:

- ``@app.task(on_success=...)`` registers the function and its completion callback;
- ``task.submit_many(...)`` writes the 8 jobs to the database in one transaction (the blog's
  loop of ``apply_async`` calls);
- ``app.run_worker(procs=5, threads=1, burst=True)`` is ``Pool(5)`` plus ``close()`` and
  ``join()``: a supervisor forks 5 worker processes, each runs one job at a time, and the
  call returns once no runnable job is left.

What jobq adds: the jobs are rows in SQLite, not messages in a pipe. If a worker process is
killed mid-task, the supervisor queues its job again at once; if the whole program dies, the
jobs that did not finish are still in the database and the next worker runs them. Results
stay in the database too, so any process can read them later (``jobq status ID``).

Run from the repository root::

    python examples/pool_callback.py            # database: $JOBQ_DB, else ./pool_callback.db
    SLEEP_SCALE=0.1 python examples/pool_callback.py   # sleep 10 times less
"""

from __future__ import annotations

import os
import random
import sys
import time

from jobq import JobContext, JobQ

# Each job sleeps random() * SLEEP_SCALE * 2 seconds, like the blog's random.random() * 2.
SLEEP_SCALE = float(os.environ.get("SLEEP_SCALE", "1"))

app = JobQ(os.environ.get("JOBQ_DB") or "pool_callback.db")


def say(line: str) -> None:
    """Print a line with one write and flush it at once.

    Several processes share this terminal or pipe: one write per line keeps their lines whole,
    and the flush matters because worker processes end with os._exit, which drops buffers.
    """
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def callback_func(job: JobContext, result: int) -> None:
    """Called with the task's return value once its success is recorded.

    Unlike the blog's callback, which runs in the parent, this one runs in the worker process
    that ran the job, after the outcome is safely in the database.
    """
    say(f"Complete task {result}")


@app.task(on_success=callback_func)
def task(task_name: int) -> int:
    say(f"start process {task_name}, process id {os.getpid()}")
    start = time.time()
    time.sleep(random.random() * 2 * SLEEP_SCALE)
    say(f"resume time {time.time() - start:.2f}, process id {os.getpid()}")
    return task_name


if __name__ == "__main__":
    # One transaction for all 8 jobs; each item is the tuple of positional arguments.
    jobs = task.submit_many([(i,) for i in range(8)])
    # Pool(5) + close() + join(): 5 processes of 1 thread, returning when the queue is empty.
    app.run_worker(procs=5, threads=1, burst=True)
    for job in jobs:
        print(f"job {job.id}: {job.status()}, result {job.result(timeout=10)}")
