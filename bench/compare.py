"""Side by side: jobq, Huey (SqliteHuey), RQ, Celery, jobq on PostgreSQL and Procrastinate.

    python bench/compare.py [--jobs 20000] [--single 3000] [--latency 200] [--quick]
                            [--json results.json]

For each system it measures, each on a fresh temporary SQLite file, a flushed Redis
database (db 15 of 127.0.0.1:6379, flushed before and after; no other db is touched) or a
fresh PostgreSQL schema or database (dropped before and after):

- submit, one call per job: jobs/s for ``--single`` submits, at each side's durability;
- bulk submit (``submit_many``, ``enqueue_many``, ``batch_defer``): jobs/s for ``--jobs`` jobs;
- drain: ``--jobs`` pre-queued no-op jobs run by 5 worker processes, timed from the moment
  the workers are started (process start-up included) until the last job has run;
- latency: an idle pool of 5 worker processes, one job submitted every ``--gap`` seconds;
  the latency is the task's first line (``time.time()``) minus the moment submit returned.

Every system signals "job ran" the same way (bench/peers/peer_common.py: one O_APPEND
write per job to a file the harness polls), so completion is detected identically.
RQ and Celery run only when Redis answers PING at 127.0.0.1:6379. jobq on PostgreSQL
(column jobq-pg) and Procrastinate run only when PostgreSQL answers at 127.0.0.1:5432; they
live in bench/postgres_peers.py, which says where each keeps its tables (``--only
jobq-pg,procrastinate`` runs just that pair). The plumbing all systems share (worker
processes, completion signals, the latency loop) is in bench/harness.py. Install the peers
with ``pip install -e '.[bench]'``. See docs/benchmarks.md for what the numbers mean.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import (
    BIN,
    PEERS,
    PROCS,
    ROWS,
    SYSTEMS,
    Results,
    child_env,
    fmt,
    fresh,
    jobq_latency,
    measure_latency,
    put_bulk,
    put_drain,
    put_latency,
    start,
    stop,
    stop_all,
    timed_drain,
    timed_submits,
    wait_count,
    workdir,
)
from postgres_peers import (
    bench_jobq_pg,
    bench_procrastinate,
    postgres_reachable,
    procrastinate_missing,
    server_info,
)

REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 15
SYNC_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}  # PRAGMA synchronous
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"


# -- jobq ----------------------------------------------------------------------------------


def bench_jobq(options: argparse.Namespace, results: Results) -> None:
    import jobq_tasks

    app = jobq_tasks.app
    with workdir("jobq") as folder:
        try:
            database = folder / "drain.db"
            app.use_database(database)
            app.store.migrate()
            put_bulk(
                results,
                "jobq",
                options.jobs,
                lambda numbers: jobq_tasks.noop.submit_many([(n,) for n in numbers]),
            )
        finally:
            app.close()  # no connection may be open while workers write

        def worker(db: Path, burst: bool) -> list[str]:
            command = [str(BIN / "jobq"), "--db", str(db), "--log-level", "warning", "worker"]
            # jobq defaults (threads per process included), as a user runs it: --procs 5 only
            command += ["--app", "jobq_tasks:app", "--procs", str(PROCS)]
            return command + (["--burst"] if burst else [])

        timed_drain(
            results,
            "jobq",
            options,
            folder,
            lambda bench_dir, log: start(worker(database, True), child_env(bench_dir), log),
            stop,
            "burst worker",
        )
        app.use_database(database)
        try:
            counts = app.store.counts()["counts"]
        finally:
            app.close()
        if counts["succeeded"] != options.jobs:
            results.note("jobq", f"drain: expected {options.jobs} succeeded, store says {counts}")

        database = folder / "latency.db"
        jobq_latency(results, "jobq", options, folder, app, str(database), worker(database, False))


# -- Huey ----------------------------------------------------------------------------------


def load_huey(filename: Path, sync: str) -> Any:
    """(Re)load bench/peers/huey_tasks.py against ``filename`` at durability ``sync``."""
    import importlib

    os.environ["BENCH_HUEY_DB"] = str(filename)
    os.environ["BENCH_HUEY_SYNC"] = sync
    import huey_tasks

    return importlib.reload(huey_tasks)


SUBMIT_ROUNDS = 6


def bench_single_submits(options: argparse.Namespace, results: Results, names: set[str]) -> None:
    """One call per job, jobq and Huey at each durability, in alternating rounds.

    A submit at synchronous=FULL waits for an fsync, whose cost drifts over seconds on a VM's
    disk: timed one system after the other, the drift lands on one side (four rounds of 3,000
    each in one process, measured: jobq/Huey at FULL 0.95x to 1.21x from one round to the
    next). So every round times a slice of each (system, durability) pair, in an order that
    rotates, each on a connection kept open throughout (closing the last one deletes SQLite's
    WAL, and a growing WAL costs more per fsync); each figure is over all rounds.
    """
    import huey_tasks
    import jobq_tasks

    with workdir("single") as folder, contextlib.ExitStack() as opened:
        pairs: list[tuple[str, str, Callable[[int], Any]]] = []
        if "jobq" in names:
            for sync, url in (
                ("normal", f"sqlite:///{folder}/jobq-normal.db"),
                ("full", f"sqlite:///{folder}/jobq-full.db?synchronous=full"),
            ):
                app, task = jobq_tasks.submitter(url)
                opened.callback(app.close)
                pairs.append(("jobq", sync, task.submit))  # type: ignore[attr-defined]
        if "huey" in names:
            for sync, huey_sync in (("full", "default"), ("normal", "normal")):
                huey, task = huey_tasks.submitter(str(folder / f"huey-{sync}.db"), huey_sync)
                opened.callback(huey.storage.close)
                pairs.append(("Huey", sync, task))  # type: ignore[arg-type]
                connection = huey.storage.conn
                level = connection.execute("pragma synchronous").fetchone()[0]
                mode = connection.execute("pragma journal_mode").fetchone()[0]
                results.note(
                    "Huey",
                    f"SqliteHuey {huey_sync}: journal_mode={mode}, synchronous={SYNC_NAMES[level]}",
                )
        spent = dict.fromkeys([(system, sync) for system, sync, _ in pairs], 0.0)
        share = max(1, options.single // SUBMIT_ROUNDS)
        for round_number in range(SUBMIT_ROUNDS):
            turn = round_number % len(pairs)
            for system, sync, submit in pairs[turn:] + pairs[:turn]:
                spent[system, sync] += share / timed_submits(submit, share)
        total = share * SUBMIT_ROUNDS
        for (system, sync), seconds in spent.items():
            rate = total / seconds
            results.put(f"submit_{sync}", system, rate)
            if (system, sync) in (("jobq", "normal"), ("Huey", "full")):
                results.put("submit_default", system, rate)


def bench_huey(options: argparse.Namespace, results: Results) -> None:
    with workdir("huey") as folder:
        # Fill the drain queue at NORMAL (Huey has no bulk submit; this only saves time), then
        # let the consumer run with Huey's defaults.
        database = folder / "drain.db"
        tasks = load_huey(database, "normal")
        try:
            for number in range(options.jobs):
                tasks.noop(number)
            queued = tasks.huey.pending_count()
        finally:
            tasks.huey.storage.close()
        if queued != options.jobs:
            raise RuntimeError(f"Huey queued {queued} jobs, expected {options.jobs}")

        def consumer(db: Path, bench_dir: Path) -> tuple[list[str], dict[str, str]]:
            command = [str(BIN / "huey_consumer"), "huey_tasks.huey", "-w", str(PROCS)]
            command += ["-k", "process", "-q"]
            return command, child_env(bench_dir, BENCH_HUEY_DB=str(db), BENCH_HUEY_SYNC="default")

        bench_dir, log = fresh(folder, "drain"), folder / "drain.log"
        command, env = consumer(database, bench_dir)
        started = time.perf_counter()
        process = start(command, env, log)
        try:
            first, done = wait_count(bench_dir, options.jobs, options.timeout, process, log)
        finally:
            stop(process, signal.SIGINT)  # SIGINT: Huey's graceful shutdown
        put_drain(results, "Huey", options.jobs, started, first, done)

        database = folder / "latency.db"
        tasks = load_huey(database, "default")
        bench_dir, log = fresh(folder, "latency"), folder / "latency.log"
        command, env = consumer(database, bench_dir)
        process = start(command, env, log)
        try:
            latencies = measure_latency(
                tasks.stamp, bench_dir, options.latency, options.gap, process, log
            )
        finally:
            tasks.huey.storage.close()
            stop(process, signal.SIGINT)
        put_latency(results, "Huey", latencies)


# -- Redis peers ---------------------------------------------------------------------------


def redis_client() -> Any:
    import redis

    return redis.Redis(
        host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_timeout=10, socket_connect_timeout=2
    )


def redis_reachable() -> str | None:
    """None when Redis answers PING, else why not."""
    try:
        import redis  # noqa: F401
    except ImportError:
        return "the redis package is not installed (pip install -e '.[bench]')"
    try:
        client = redis_client()
        client.ping()
        client.close()
    except Exception as error:  # noqa: BLE001 - any failure means "skip"
        return f"redis unreachable ({type(error).__name__}: {error})"
    return None


def flush(client: Any) -> None:
    client.flushdb()  # db 15 only: the client is bound to it


def bench_rq(options: argparse.Namespace, results: Results) -> None:
    import rq_tasks
    from rq import Queue

    client = redis_client()
    queue = Queue("bench", connection=client)

    def enqueue_many(count: int) -> float:
        start_time = time.perf_counter()
        for offset in range(0, count, 1000):
            batch = [
                Queue.prepare_data(rq_tasks.noop, (offset + n,))
                for n in range(min(1000, count - offset))
            ]
            queue.enqueue_many(batch)
        return count / (time.perf_counter() - start_time)

    def pool(worker_class: str | None, burst: bool) -> list[str]:
        command = [str(BIN / "rq"), "worker-pool", "-u", REDIS_URL, "-n", str(PROCS), "-q"]
        command += ["-P", str(PEERS)]
        if worker_class:
            command += ["-w", worker_class]
        return command + (["--burst"] if burst else []) + ["bench"]

    try:
        with workdir("rq") as folder:
            flush(client)
            results.put(
                "submit_default",
                "RQ",
                timed_submits(lambda n: queue.enqueue(rq_tasks.noop, n), options.single),
            )
            flush(client)
            results.put("submit_bulk", "RQ", enqueue_many(options.jobs))

            bench_dir, log = fresh(folder, "drain"), folder / "drain.log"
            started = time.perf_counter()
            process = start(pool("rq.worker.SimpleWorker", True), child_env(bench_dir), log)
            try:
                first, done = wait_count(bench_dir, options.jobs, options.timeout, process, log)
            finally:
                stop(process)
            put_drain(results, "RQ", options.jobs, started, first, done)
            results.note(
                "RQ", "drain rows: worker-pool -n 5 -w rq.worker.SimpleWorker (no fork per job)"
            )

            flush(client)
            fork_jobs = options.rq_fork_jobs
            enqueue_many(fork_jobs)
            bench_dir, log = fresh(folder, "drain-fork"), folder / "drain-fork.log"
            started = time.perf_counter()
            process = start(pool(None, True), child_env(bench_dir), log)
            try:
                _, done = wait_count(bench_dir, fork_jobs, options.timeout, process, log)
            finally:
                stop(process)
            results.put("drain_fork", "RQ", fork_jobs / (done - started))
            results.note(
                "RQ", f"forking-Worker drain ran N={fork_jobs} jobs (a fork per job is slow)"
            )

            for worker_class, fork in (("rq.worker.SimpleWorker", False), (None, True)):
                flush(client)
                name = "latency-fork" if fork else "latency"
                bench_dir, log = fresh(folder, name), folder / f"{name}.log"
                process = start(pool(worker_class, False), child_env(bench_dir), log)
                try:
                    latencies = measure_latency(
                        lambda n: queue.enqueue(rq_tasks.stamp, n),
                        bench_dir,
                        options.latency,
                        options.gap,
                        process,
                        log,
                    )
                finally:
                    stop(process)
                put_latency(results, "RQ", latencies, fork=fork)
    finally:
        with contextlib.suppress(Exception):
            flush(client)
        client.close()


def bench_celery(options: argparse.Namespace, results: Results) -> None:
    os.environ["BENCH_REDIS_URL"] = REDIS_URL
    import celery_tasks

    client = redis_client()

    def worker() -> list[str]:
        command = [str(BIN / "celery"), "-A", "celery_tasks", "worker", "-P", "prefork"]
        command += ["-c", str(PROCS), "-l", "WARNING", "-n", f"bench-{os.getpid()}@%h"]
        return command + ["--without-mingle", "--without-gossip", "--without-heartbeat"]

    try:
        with workdir("celery") as folder:
            flush(client)
            results.put(
                "submit_default", "Celery", timed_submits(celery_tasks.noop.delay, options.single)
            )
            flush(client)
            with celery_tasks.app.producer_or_acquire() as producer:
                for number in range(options.jobs):
                    celery_tasks.noop.apply_async((number,), producer=producer)
            queued = client.llen("celery")
            if queued != options.jobs:
                raise RuntimeError(f"Celery queued {queued} messages, expected {options.jobs}")

            bench_dir, log = fresh(folder, "drain"), folder / "drain.log"
            started = time.perf_counter()
            process = start(
                worker(), child_env(bench_dir, BENCH_REDIS_URL=REDIS_URL), log, cwd=PEERS
            )
            try:
                first, done = wait_count(bench_dir, options.jobs, options.timeout, process, log)
            finally:
                stop(process)  # SIGTERM: Celery's warm shutdown
            put_drain(results, "Celery", options.jobs, started, first, done)

            flush(client)
            bench_dir, log = fresh(folder, "latency"), folder / "latency.log"
            process = start(
                worker(), child_env(bench_dir, BENCH_REDIS_URL=REDIS_URL), log, cwd=PEERS
            )
            try:
                latencies = measure_latency(
                    celery_tasks.stamp.delay, bench_dir, options.latency, options.gap, process, log
                )
            finally:
                stop(process)
            put_latency(results, "Celery", latencies)
    finally:
        with contextlib.suppress(Exception):
            celery_tasks.app.pool.force_close_all()
        with contextlib.suppress(Exception):
            flush(client)
        client.close()


# -- machine and report --------------------------------------------------------------------


def machine() -> list[tuple[str, str]]:
    def version(module: str) -> str:
        try:
            return str(__import__(module).__version__)
        except Exception:  # noqa: BLE001
            return "not installed"

    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, timeout=10).stdout.strip()
    redis_server = "unreachable"
    with contextlib.suppress(Exception):
        client = redis_client()
        redis_server = str(client.info("server")["redis_version"])
        with contextlib.suppress(Exception):  # CONFIG may be disabled
            aof = client.config_get("appendonly").get("appendonly")
            save = client.config_get("save").get("save")
            redis_server += f" (appendonly={aof}, save={save!r})"
        client.close()
    import jobq

    return [
        ("nproc", nproc),
        ("CPU", cpu),
        ("OS", f"{platform.system()} {platform.release()} {platform.machine()}"),
        ("Python", platform.python_version()),
        ("SQLite", sqlite3.sqlite_version),
        ("jobq", getattr(jobq, "__version__", "0.1.0 (working tree)")),
        ("huey", version("huey")),
        ("rq", version("rq")),
        ("celery", version("celery")),
        ("kombu", version("kombu")),
        ("redis-py", version("redis")),
        ("Redis server", redis_server),
        ("procrastinate", version("procrastinate")),
        ("psycopg", version("psycopg")),
        *server_info(),
        (
            "load average (1, 5, 15 min) at report time",
            " ".join(f"{x:.2f}" for x in os.getloadavg()),
        ),
    ]


def ratio(value: float | None, other: float | None) -> str:
    if value is None or other is None or other == 0:
        return ""
    return f"{value / other:.2f}x"


# Ratio columns: (heading, system, its peers); the ratio is against the best of the peers
# that ran, and the column is shown when the system and one of its peers are in the table.
RATIOS = (
    ("jobq/Huey", "jobq", ("Huey",)),
    ("jobq/best peer", "jobq", ("Huey", "RQ", "Celery")),
    ("jobq-pg/Procrastinate", "jobq-pg", ("Procrastinate",)),
)


def report(results: Results, options: argparse.Namespace, info: list[tuple[str, str]]) -> str:
    # Systems left out by --only get no column; skipped or failed ones say so in theirs.
    shown = [s for s in SYSTEMS if results.status.get(s) != "skipped: not in --only"]
    ratios = [r for r in RATIOS if r[1] in shown and any(p in shown for p in r[2])]
    out = ["## Machine", "", "| | |", "|---|---|"]
    out += [f"| {key} | {value} |" for key, value in info]
    out += [
        "",
        f"N (`--jobs`) = {options.jobs}, single submits = {options.single}, "
        f"latency jobs = {options.latency} spaced {options.gap * 1000:.0f} ms, "
        f"RQ forking-worker drain N = {options.rq_fork_jobs}",
        "",
    ]
    out += [
        "## Results",
        "",
        "| measurement | unit | " + " | ".join(shown + [r[0] for r in ratios]) + " |",
        "|---|---|" + "---:|" * (len(shown) + len(ratios)),
    ]
    for key, (label, unit, higher) in ROWS.items():
        row = results.values[key]
        if not row:
            continue
        if not any(system in row for system in shown):
            continue
        cells = []
        for system in shown:
            if system in row:
                cells.append(fmt(row[system], unit))
            elif results.status.get(system, "").startswith("skipped"):
                cells.append("skipped")
            elif results.status.get(system, "").startswith("failed"):
                cells.append("failed")
            else:
                cells.append("n/a")
        for _, system, peer_names in ratios:
            peers = [row[s] for s in peer_names if s in row]
            best = (max(peers) if higher else min(peers)) if peers else None
            cells.append(ratio(row.get(system), best))
        direction = "higher is better" if higher else "lower is better"
        out.append(f"| {label} | {unit} ({direction}) | " + " | ".join(cells) + " |")
    out += [
        "",
        "Ratios are jobq (on SQLite, or on PostgreSQL for jobq-pg) divided by the peer: "
        "above 1x is better for jobs/s, below 1x is better for seconds and milliseconds. "
        "n/a: the system has no such API or mode.",
        "",
    ]
    out += ["## Status and notes", ""]
    for system in shown:
        out.append(f"- {system}: {results.status.get(system, 'not run')}")
        out += [f"  - {note}" for note in results.notes[system]]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jobs", type=int, default=None, help="N for bulk submit and drain (20000)"
    )
    parser.add_argument("--single", type=int, default=None, help="jobs submitted one by one (3000)")
    parser.add_argument("--latency", type=int, default=None, help="latency jobs (200)")
    parser.add_argument("--gap", type=float, default=0.020, help="seconds between latency submits")
    parser.add_argument(
        "--rq-fork-jobs", type=int, default=None, help="N for RQ's default forking worker (2000)"
    )
    parser.add_argument("--quick", action="store_true", help="small N: about a minute in all")
    parser.add_argument(
        "--only", help="comma-separated subset of jobq,huey,rq,celery,jobq-pg,procrastinate"
    )
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    options = parser.parse_args()
    quick = options.quick
    defaults = {
        "jobs": (20_000, 3_000),
        "single": (3_000, 1_000),
        "latency": (200, 50),
        "rq_fork_jobs": (2_000, 300),
    }
    for name, (normal, small) in defaults.items():
        if getattr(options, name) is None:
            setattr(options, name, small if quick else normal)
    options.timeout = 60 + options.jobs / 50  # every drain wait is bounded
    only = {name.strip().lower() for name in options.only.split(",")} if options.only else None
    unknown = sorted((only or set()) - {system.lower() for system in SYSTEMS})
    if unknown:
        parser.error(f"unknown --only name(s): {', '.join(unknown)}")

    # A SIGTERM (or SIGHUP) to the harness unwinds through the finally blocks like Ctrl-C.
    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)

    results = Results()
    redis_problem = redis_reachable()
    postgres_problem = postgres_reachable()
    runs: list[tuple[str, Callable[[argparse.Namespace, Results], None], str | None]] = [
        ("jobq", bench_jobq, None),
        ("Huey", bench_huey, None),
        ("RQ", bench_rq, redis_problem),
        ("Celery", bench_celery, redis_problem),
        ("jobq-pg", bench_jobq_pg, postgres_problem),
        ("Procrastinate", bench_procrastinate, postgres_problem or procrastinate_missing()),
    ]
    began = time.monotonic()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average at start: {load} (other work on the machine skews every figure)")
    try:
        chosen = {"jobq", "huey"} & (only if only is not None else {"jobq", "huey"})
        if chosen:
            print("single submits, jobq and Huey in alternating rounds:", flush=True)
            try:
                bench_single_submits(options, results, chosen)
            except Exception as error:  # noqa: BLE001 - the other rows are still worth having
                traceback.print_exc()
                for system in ("jobq", "Huey"):
                    results.note(system, f"single submits failed: {type(error).__name__}: {error}")
        for system, run, problem in runs:
            if only is not None and system.lower() not in only:
                results.status[system] = "skipped: not in --only"
                continue
            if problem is not None:
                results.status[system] = f"skipped: {problem}"
                print(f"{system}: skipped: {problem}", flush=True)
                continue
            print(f"{system}:", flush=True)
            started = time.monotonic()
            try:
                run(options, results)
                results.status[system] = f"ok ({time.monotonic() - started:.0f} s)"
            except KeyboardInterrupt:
                raise
            except Exception as error:  # noqa: BLE001 - one peer failing must not stop the rest
                traceback.print_exc()
                results.status[system] = f"failed: {type(error).__name__}: {error}".splitlines()[0]
            finally:
                stop_all()
    finally:
        stop_all()
    text = report(results, options, machine())
    command = "python bench/compare.py " + " ".join(sys.argv[1:])
    print()
    print(f"`{command.strip()}` took {time.monotonic() - began:.0f} s")
    print()
    print(text)
    if options.json:
        options.json.write_text(
            json.dumps(
                {
                    "options": {k: v for k, v in vars(options).items() if k != "json"},
                    "machine": dict(machine()),
                    "values": results.values,
                    "status": results.status,
                    "notes": results.notes,
                },
                indent=2,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
