"""The PostgreSQL pair of bench/compare.py: jobq on PostgreSQL and Procrastinate, side by side
on the local server (127.0.0.1:5432, user postgres, trust auth).

- jobq-pg: database ``test``, schema ``jobq_bench`` (``?schema=jobq_bench``), dropped with
  ``DROP SCHEMA ... CASCADE`` before and after every measurement. No other schema is touched.
- Procrastinate: a database of its own, ``bench_procrastinate``, created afresh for every
  measurement, its schema applied by ``procrastinate schema --apply``, dropped afterwards.

Both columns run only when PostgreSQL answers; both use the server as it is configured
(``synchronous_commit`` as the server says: a submit is durable when it returns if it is on).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import (
    BIN,
    PROCS,
    Group,
    Results,
    child_env,
    fresh,
    jobq_latency,
    measure_latency,
    put_bulk,
    put_latency,
    start,
    stop,
    tail,
    timed_drain,
    timed_submits,
    workdir,
)

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
PG_SERVER = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}"
PG_DATABASE = "test"  # where jobq's schema goes
JOBQ_SCHEMA = "jobq_bench"
JOBQ_URL = f"{PG_SERVER}/{PG_DATABASE}?schema={JOBQ_SCHEMA}"
PROCRASTINATE_DATABASE = "bench_procrastinate"
PROCRASTINATE_DSN = f"{PG_SERVER}/{PROCRASTINATE_DATABASE}"


def connect(database: str = PG_DATABASE) -> Any:
    import psycopg

    return psycopg.connect(f"{PG_SERVER}/{database}", autocommit=True, connect_timeout=3)


def postgres_reachable() -> str | None:
    """None when PostgreSQL answers at 127.0.0.1:5432, else why not."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[bench]')"
    try:
        with connect() as connection:
            connection.execute("SELECT 1")
    except Exception as error:  # noqa: BLE001 - any failure means "skip"
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return f"postgresql unreachable ({type(error).__name__}: {message})"
    return None


def procrastinate_missing() -> str | None:
    """None when Procrastinate can be imported, else why not."""
    try:
        import procrastinate  # noqa: F401
    except ImportError:
        return "procrastinate is not installed (pip install -e '.[bench]')"
    return None


def server_info() -> list[tuple[str, str]]:
    """The server's version and the settings that decide what a commit costs."""
    try:
        with connect() as connection:
            version = connection.execute("SHOW server_version").fetchone()[0]
            settings = []
            for name in ("synchronous_commit", "fsync", "shared_buffers", "max_connections"):
                settings.append(f"{name}={connection.execute(f'SHOW {name}').fetchone()[0]}")
    except Exception as error:  # noqa: BLE001
        return [("PostgreSQL server", f"unreachable ({type(error).__name__})")]
    return [("PostgreSQL server", f"{version} ({', '.join(settings)})")]


# -- jobq on PostgreSQL --------------------------------------------------------------------


def drop_jobq_schema() -> None:
    with connect() as connection:
        connection.execute(f"DROP SCHEMA IF EXISTS {JOBQ_SCHEMA} CASCADE")


@contextlib.contextmanager
def jobq_schema() -> Iterator[str]:
    """A fresh ``jobq_bench`` schema (jobq creates it on first use): its URL."""
    drop_jobq_schema()
    try:
        yield JOBQ_URL
    finally:
        drop_jobq_schema()


def bench_jobq_pg(options: argparse.Namespace, results: Results) -> None:
    import jobq_tasks

    app = jobq_tasks.app
    system = "jobq-pg"

    def worker(burst: bool) -> list[str]:
        command = [str(BIN / "jobq"), "--db", JOBQ_URL, "--log-level", "warning", "worker"]
        command += ["--app", "jobq_tasks:app", "--procs", str(PROCS)]
        return command + (["--burst"] if burst else [])

    with workdir("jobq-pg") as folder:
        with jobq_schema() as url:
            try:
                app.use_database(url)
                results.put(
                    "submit_default",
                    system,
                    timed_submits(jobq_tasks.noop.submit, options.single),
                )
            finally:
                app.close()

        with jobq_schema() as url:
            try:
                app.use_database(url)
                app.store.migrate()
                put_bulk(
                    results,
                    system,
                    options.jobs,
                    lambda numbers: jobq_tasks.noop.submit_many([(n,) for n in numbers]),
                )
            finally:
                app.close()

            timed_drain(
                results,
                system,
                options,
                folder,
                lambda bench_dir, log: start(worker(True), child_env(bench_dir), log),
                stop,
                "burst worker",
            )
            try:
                app.use_database(url)
                counts = app.store.counts()["counts"]
            finally:
                app.close()
            if counts["succeeded"] != options.jobs:
                results.note(system, f"drain: expected {options.jobs} succeeded, store: {counts}")

        with jobq_schema() as url:
            jobq_latency(results, system, options, folder, app, url, worker(False))


# -- Procrastinate -------------------------------------------------------------------------


def drop_procrastinate_database() -> None:
    with connect("postgres") as connection:
        # WITH (FORCE) ends sessions a killed worker may have left behind (PostgreSQL 13+).
        connection.execute(f"DROP DATABASE IF EXISTS {PROCRASTINATE_DATABASE} WITH (FORCE)")


@contextlib.contextmanager
def procrastinate_database(folder: Path) -> Iterator[None]:
    """A fresh ``bench_procrastinate`` database with Procrastinate's schema, applied by its
    own CLI; dropped afterwards."""
    drop_procrastinate_database()
    try:
        with connect("postgres") as connection:
            connection.execute(f"CREATE DATABASE {PROCRASTINATE_DATABASE}")
        command = [str(BIN / "procrastinate"), "--app", "procrastinate_tasks.app"]
        applied = subprocess.run(
            command + ["schema", "--apply"],
            env=child_env(folder, BENCH_PROCRASTINATE_DSN=PROCRASTINATE_DSN),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if applied.returncode != 0:
            raise RuntimeError(
                f"procrastinate schema --apply failed:\n{applied.stdout}{applied.stderr}"
            )
        yield
    finally:
        drop_procrastinate_database()


def load_procrastinate() -> Any:
    import importlib

    os.environ["BENCH_PROCRASTINATE_DSN"] = PROCRASTINATE_DSN
    import procrastinate_tasks

    return importlib.reload(procrastinate_tasks)  # a fresh App: no pool left open


def bench_procrastinate(options: argparse.Namespace, results: Results) -> None:
    system = "Procrastinate"

    def workers(bench_dir: Path, log: Path, one_shot: bool) -> Group:
        """PROCS ``procrastinate worker`` processes (Procrastinate has no process pool of its
        own), each with its defaults (concurrency 1, LISTEN/NOTIFY on, 5 s polling)."""
        command = [str(BIN / "procrastinate"), "--app", "procrastinate_tasks.app"]
        command += ["--log-level", "warning", "worker"]
        env = child_env(bench_dir, BENCH_PROCRASTINATE_DSN=PROCRASTINATE_DSN)
        processes = []
        for number in range(PROCS):
            name = ["--name", f"bench-{number}"]
            processes.append(start(command + name + (["--one-shot"] if one_shot else []), env, log))
        return Group(processes)

    with workdir("procrastinate") as folder:
        with procrastinate_database(folder):
            tasks = load_procrastinate()
            with tasks.app.open():
                results.put(
                    "submit_default",
                    system,
                    timed_submits(lambda n: tasks.noop.defer(number=n), options.single),
                )

        with procrastinate_database(folder):
            tasks = load_procrastinate()
            with tasks.app.open():
                put_bulk(
                    results,
                    system,
                    options.jobs,
                    lambda numbers: tasks.noop.batch_defer(*({"number": n} for n in numbers)),
                )

            timed_drain(
                results,
                system,
                options,
                folder,
                lambda bench_dir, log: workers(bench_dir, log, one_shot=True),
                lambda group: group.stop(),
                "--one-shot workers",
            )
            with connect(PROCRASTINATE_DATABASE) as connection:
                rows = connection.execute(
                    "SELECT status, count(*) FROM procrastinate_jobs GROUP BY status"
                ).fetchall()
            counts = {str(status): int(count) for status, count in rows}
            if counts.get("succeeded") != options.jobs:
                results.note(
                    system, f"drain: expected {options.jobs} succeeded, database: {counts}"
                )

        with procrastinate_database(folder):
            tasks = load_procrastinate()
            bench_dir, log = fresh(folder, "latency"), folder / "latency.log"
            group = workers(bench_dir, log, one_shot=False)
            try:
                with connect(PROCRASTINATE_DATABASE) as connection:
                    deadline = time.monotonic() + 60
                    query = "SELECT count(*) FROM procrastinate_workers"
                    while connection.execute(query).fetchone()[0] < PROCS:
                        if group.poll() is not None or time.monotonic() > deadline:
                            raise RuntimeError(
                                "the Procrastinate workers did not start:\n" + tail(log)
                            )
                        time.sleep(0.05)
                with tasks.app.open():
                    latencies = measure_latency(
                        lambda n: tasks.stamp.defer(index=n),
                        bench_dir,
                        options.latency,
                        options.gap,
                        group,
                        log,
                    )
            finally:
                group.stop()
            put_latency(results, system, latencies)
