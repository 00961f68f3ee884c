"""Mixed load: a backlog of slow jobs and a stream of fast ones on the same pool.

    python bench/mixed.py [--slow 1000] [--slow-ms 100] [--rate 200] [--procs 5]

On a fresh SQLite database in a temporary directory, starts ``jobq worker --procs P`` with
jobq's defaults (32 threads a process), queues ``--slow`` jobs that each sleep ``--slow-ms``,
then submits fast jobs one at a time, ``--rate`` a second, until the slow backlog is done.
Twice: once with the fast jobs at a higher priority (they should start at the next free
slot, whatever waits in the queue), once at the same priority (they wait their turn behind
the slow jobs queued before them, and behind nothing a worker prefetched). Prints the fast
jobs' latency from submit returning to the task's first line, and the bounds it must keep.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TASKS = """
import os, time
from jobq import JobQ

app = JobQ()
STAMPS = os.environ["MIXED_STAMPS"]

@app.task(name="mixed.slow")
def slow(seconds: float) -> None:
    time.sleep(seconds)

@app.task(name="mixed.fast")
def fast(index: int) -> None:
    now = time.time()
    with open(STAMPS, "a") as stamps:
        stamps.write(f"{index} {now}\\n")
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def phase(folder: Path, options: argparse.Namespace, priority: int) -> dict[str, float]:
    database = folder / f"mixed-{priority}.db"
    stamps = folder / f"stamps-{priority}"
    os.environ["MIXED_STAMPS"] = str(stamps)
    env = {**os.environ, "PYTHONPATH": str(folder)}
    sys.path.insert(0, str(folder))
    import mixed_tasks  # noqa: PLC0415 - written into the folder just before

    app = mixed_tasks.app
    app.use_database(database)
    app.store.migrate()
    log = (folder / f"worker-{priority}.log").open("w")
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "jobq"), "--db", str(database), "--log-level", "warning"]
        + ["worker", "--app", "mixed_tasks:app", "--procs", str(options.procs)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        while len(app.store.workers()) < options.procs:  # every worker process registered
            if worker.poll() is not None:
                raise RuntimeError((folder / f"worker-{priority}.log").read_text())
            time.sleep(0.05)
        for index in range(20):  # warm up: the pool has seen both tasks
            mixed_tasks.fast.submit(-1 - index)
        time.sleep(0.5)
        slow_ids = mixed_tasks.slow.submit_many([(options.slow_ms / 1000,)] * options.slow)
        started = time.monotonic()
        submitted: dict[int, float] = {}
        fast = mixed_tasks.fast.options(priority=priority)
        index = 0
        while True:
            counts = app.store.counts()["counts"]
            if counts.get("succeeded", 0) >= options.slow + 20 + index and index:
                break
            fast.submit(index)
            submitted[index] = time.time()
            index += 1
            time.sleep(1 / options.rate)
        backlog = time.monotonic() - started
        deadline = time.monotonic() + 30
        seen: dict[int, float] = {}
        while len(seen) < len(submitted) and time.monotonic() < deadline:
            for line in stamps.read_text().splitlines():
                number, when = line.split()
                if int(number) >= 0:
                    seen[int(number)] = float(when)
            time.sleep(0.05)
        assert len(slow_ids) == options.slow
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        app.close()
        sys.path.remove(str(folder))
        del sys.modules["mixed_tasks"]
    waits = [(seen[i] - submitted[i]) * 1000 for i in submitted if i in seen]
    return {
        "fast jobs": len(submitted),
        "backlog seconds": backlog,
        "p50": statistics.median(waits),
        "p95": percentile(waits, 0.95),
        "p99": percentile(waits, 0.99),
        "max": max(waits),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=1000)
    parser.add_argument("--slow-ms", type=float, default=100)
    parser.add_argument("--rate", type=float, default=200, help="fast jobs submitted a second")
    parser.add_argument("--procs", type=int, default=5)
    options = parser.parse_args()
    from jobq.worker.settings import WorkerSettings

    slots = options.procs * WorkerSettings.threads
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "mixed_tasks.py").write_text(textwrap.dedent(TASKS))
        for priority, label in ((5, "higher priority"), (0, "same priority")):
            figures = phase(folder, options, priority)
            print(
                f"fast jobs at {label}: {figures['fast jobs']:.0f} submitted during a backlog of"
                f" {options.slow} x {options.slow_ms:.0f} ms ({figures['backlog seconds']:.2f} s"
                f" on {slots} slots); start latency p50 {figures['p50']:.1f} ms, p95"
                f" {figures['p95']:.1f}, p99 {figures['p99']:.1f}, max {figures['max']:.1f}"
            )
    print(
        f"bounds: at the higher priority a fast job waits for the next slot to come free, at"
        f" most one slow job ({options.slow_ms:.0f} ms: the first {slots} slow jobs start"
        f" together, so their slots come free together); at the same priority, for the slow"
        f" jobs queued before it, at most {options.slow} / {slots} x {options.slow_ms:.0f} ms ="
        f" {options.slow / slots * options.slow_ms:.0f} ms. A worker that prefetched would add"
        f" a slow job's length for every one it held in front of the fast one."
    )


if __name__ == "__main__":
    main()
