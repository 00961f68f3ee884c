"""The plumbing bench/compare.py and bench/postgres_peers.py share: worker processes in
their own process groups, the "job ran" signals of bench/peers/peer_common.py, the latency
loop and the table of results."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
sys.path.insert(0, str(PEERS))
BIN = Path(sys.executable).parent

PROCS = 5  # worker processes, for every system
# Columns of the table, in order; jobq on SQLite against the first three peers, jobq on
# PostgreSQL against Procrastinate (bench/postgres_peers.py).
SYSTEMS = ("jobq", "Huey", "RQ", "Celery", "jobq-pg", "Procrastinate")

# -- results -------------------------------------------------------------------------------

# row key -> (label, unit, higher_is_better)
ROWS: dict[str, tuple[str, str, bool]] = {
    "submit_default": (
        "submit, one call per job, each side's default durability",
        "jobs/s",
        True,
    ),
    "submit_full": ("submit, one call per job, SQLite synchronous=FULL", "jobs/s", True),
    "submit_normal": ("submit, one call per job, SQLite synchronous=NORMAL", "jobs/s", True),
    "submit_bulk": (
        "bulk submit (jobq submit_many, RQ enqueue_many, Procrastinate batch_defer)",
        "jobs/s",
        True,
    ),
    "drain": ("drain N no-op jobs, 5 procs, start-up included", "jobs/s", True),
    "drain_steady": ("drain, first job done -> last job done", "jobs/s", True),
    "drain_startup": ("drain, workers started -> first job done", "s", False),
    "drain_fork": ("drain, RQ default forking Worker (smaller N)", "jobs/s", True),
    "latency_p50": ("latency submit -> start, idle pool, p50", "ms", False),
    "latency_p99": ("latency submit -> start, idle pool, p99", "ms", False),
    "latency_fork_p50": ("latency, RQ default forking Worker, p50", "ms", False),
    "latency_fork_p99": ("latency, RQ default forking Worker, p99", "ms", False),
}


class Results:
    def __init__(self) -> None:
        self.values: dict[str, dict[str, float]] = {key: {} for key in ROWS}
        self.notes: dict[str, list[str]] = {system: [] for system in SYSTEMS}
        self.status: dict[str, str] = {}

    def put(self, row: str, system: str, value: float) -> None:
        self.values[row][system] = value
        label, unit, _ = ROWS[row]
        print(f"  {system:13} {label}: {fmt(value, unit)} {unit}", flush=True)

    def note(self, system: str, text: str) -> None:
        self.notes[system].append(text)
        print(f"  {system:13} note: {text}", flush=True)


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == "jobs/s":
        return f"{value:,.0f}"
    if unit == "s":
        return f"{value:.2f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# -- subprocesses: one process group each, always cleaned up ---------------------------------

_live: list[subprocess.Popen[bytes]] = []


def start(command: list[str], env: dict[str, str], log: Path, cwd: Path | None = None):
    """Start ``command`` in its own session (process group), output to ``log``."""
    with open(log, "ab") as out:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _live.append(process)
    return process


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 20.0) -> None:
    """Signal the leader (it stops its own workers), wait up to ``grace`` s, SIGKILL the group.

    Only the leader gets the graceful signal: a pool whose children also receive it directly
    may treat the second signal it forwards as "stop now" (RQ's forking workers then hang).
    """
    try:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, sig)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                print(f"  (pid {process.pid} ignored signal {sig} for {grace:.0f} s: SIGKILL)")
        # Kill whatever is left in the group (children that outlived their parent), then reap.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
    finally:
        if process in _live:
            _live.remove(process)


def stop_all() -> None:
    for process in list(_live):
        stop(process, signal.SIGKILL, grace=5)


class Running(Protocol):
    """What the waiting loops need of a worker command: one process, or a :class:`Group`."""

    returncode: int | None

    def poll(self) -> int | None: ...


class Group:
    """Several worker processes started side by side (for systems with no process pool of
    their own), seen as one: failed when any exits with an error, ended when all have."""

    def __init__(self, processes: list[subprocess.Popen[bytes]]) -> None:
        self.processes = processes
        self.returncode: int | None = None

    def poll(self) -> int | None:
        codes = [process.poll() for process in self.processes]
        failed = [code for code in codes if code not in (None, 0)]
        if failed:
            self.returncode = failed[0]
        elif all(code is not None for code in codes):
            self.returncode = 0
        return self.returncode

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))

    def stop(self, sig: int = signal.SIGTERM, grace: float = 20.0) -> None:
        """Signal every process at once, then :func:`stop` each."""
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, sig)
        for process in self.processes:
            stop(process, sig, grace)


def tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def child_env(bench_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PEERS)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env["BENCH_DIR"] = str(bench_dir)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


# -- completion signals --------------------------------------------------------------------


def wait_count(
    bench_dir: Path, count: int, timeout: float, process: Running, log: Path
) -> tuple[float, float]:
    """Poll ``bench_dir/count`` until ``count`` jobs ran: returns (first seen, all seen)."""
    path = bench_dir / "count"
    deadline = time.perf_counter() + timeout
    first = None
    while True:
        now = time.perf_counter()
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            size = 0
        if size and first is None:
            first = now
        if size >= count:
            return (first if first is not None else now), now
        if process.poll() is not None:
            raise RuntimeError(
                f"workers exited (code {process.returncode}) after {size}/{count} jobs:\n"
                + tail(log)
            )
        if now > deadline:
            raise TimeoutError(f"only {size}/{count} jobs ran within {timeout:.0f} s")
        time.sleep(0.002)


def wait_for_pool(
    app: Any, process: subprocess.Popen[bytes], log: Path, timeout: float = 60
) -> None:
    """Wait until a jobq pool's PROCS worker processes have registered in ``app``'s store."""
    deadline = time.monotonic() + timeout
    while len(app.store.workers()) < PROCS:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the jobq pool did not start:\n" + tail(log))
        time.sleep(0.05)


def read_stamps(bench_dir: Path) -> dict[int, float]:
    stamps: dict[int, float] = {}
    with contextlib.suppress(FileNotFoundError), open(bench_dir / "stamps") as lines:
        for line in lines:
            parts = line.split()
            if len(parts) == 2:
                stamps[int(parts[0])] = float(parts[1])
    return stamps


WARMUP = 1_000_000  # indices of warm-up jobs, excluded from the figures


def measure_latency(
    submit: Callable[[int], Any],
    bench_dir: Path,
    count: int,
    gap: float,
    process: Running,
    log: Path,
    ready_timeout: float = 60.0,
) -> list[float]:
    """Warm the pool up, let it go idle, then time ``count`` spaced submits."""
    warm = 10
    deadline = time.monotonic() + ready_timeout
    for k in range(warm):
        submit(WARMUP + k)
        time.sleep(gap)
    while sum(1 for i in read_stamps(bench_dir) if i >= WARMUP) < warm:
        if process.poll() is not None:
            raise RuntimeError(f"workers exited (code {process.returncode}):\n" + tail(log))
        if time.monotonic() > deadline:
            raise TimeoutError("the pool did not run its warm-up jobs in time")
        time.sleep(0.01)
    time.sleep(0.5)  # idle again
    returned: dict[int, float] = {}
    for index in range(count):
        submit(index)
        returned[index] = time.time()
        time.sleep(gap)
    deadline = time.monotonic() + 30 + count * gap
    while True:
        stamps = read_stamps(bench_dir)
        if all(index in stamps for index in returned):
            break
        if process.poll() is not None:
            raise RuntimeError(f"workers exited (code {process.returncode}):\n" + tail(log))
        if time.monotonic() > deadline:
            missing = sum(1 for index in returned if index not in stamps)
            raise TimeoutError(f"{missing} latency jobs never started")
        time.sleep(0.01)
    return [(stamps[index] - returned[index]) * 1000 for index in range(count)]


def put_latency(results: Results, system: str, latencies: list[float], fork: bool = False) -> None:
    prefix = "latency_fork" if fork else "latency"
    results.put(f"{prefix}_p50", system, percentile(latencies, 0.50))
    results.put(f"{prefix}_p99", system, percentile(latencies, 0.99))


def timed_submits(submit: Callable[[int], Any], count: int) -> float:
    submit(-1)  # connection / schema set-up is not what we time
    start = time.perf_counter()
    for number in range(count):
        submit(number)
    return count / (time.perf_counter() - start)


BULK_CHUNK = 10_000  # jobs per bulk call (submit_many, batch_defer), the same for every system


def put_bulk(
    results: Results, system: str, count: int, submit_chunk: Callable[[range], Any]
) -> None:
    """Time ``count`` jobs submitted in bulk, ``submit_chunk(numbers)`` for each
    BULK_CHUNK of them, as the "submit_bulk" row of ``system``."""
    start = time.perf_counter()
    for offset in range(0, count, BULK_CHUNK):
        submit_chunk(range(offset, min(offset + BULK_CHUNK, count)))
    results.put("submit_bulk", system, count / (time.perf_counter() - start))


@contextlib.contextmanager
def workdir(name: str) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def fresh(folder: Path, name: str) -> Path:
    path = folder / name
    path.mkdir()
    return path


def timed_drain(
    results: Results,
    system: str,
    options: Any,
    folder: Path,
    launch: Callable[[Path, Path], Any],
    halt: Callable[[Any], None],
    what: str,
) -> None:
    """Launch workers (``launch(bench_dir, log)``) on a filled queue and time them until every
    job has run (see ``put_drain``); then let them exit on their own (burst, one-shot) and
    note how long after the last job they did. ``halt`` stops them whatever happened."""
    bench_dir, log = fresh(folder, "drain"), folder / "drain.log"
    started = time.perf_counter()
    workers = launch(bench_dir, log)
    exited = None
    try:
        first, done = wait_count(bench_dir, options.jobs, options.timeout, workers, log)
        with contextlib.suppress(subprocess.TimeoutExpired):
            workers.wait(timeout=60)
            exited = time.perf_counter()
    finally:
        halt(workers)
    put_drain(results, system, options.jobs, started, first, done)
    if exited is not None:
        results.note(system, f"drain: {what} exited {exited - done:.2f} s after the last job ran")


def jobq_latency(
    results: Results,
    system: str,
    options: Any,
    folder: Path,
    app: Any,
    database: str,
    command: list[str],
) -> None:
    """The latency rows for a jobq pool (``command``) on ``database``, which ``app`` (whose
    ``stamp`` task the pool runs) sets up first."""
    app.use_database(database)
    app.store.migrate()
    bench_dir, log = fresh(folder, "latency"), folder / "latency.log"
    process = start(command, child_env(bench_dir), log)
    try:
        wait_for_pool(app, process, log)
        stamp = app.tasks["bench.stamp"]
        latencies = measure_latency(
            stamp.submit, bench_dir, options.latency, options.gap, process, log
        )
    finally:
        app.close()
        stop(process)
    put_latency(results, system, latencies)


def put_drain(
    results: Results, system: str, jobs: int, started: float, first: float, done: float
) -> None:
    results.put("drain", system, jobs / (done - started))
    results.put("drain_startup", system, first - started)
    if done > first:
        results.put("drain_steady", system, (jobs - 1) / (done - first))
