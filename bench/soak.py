"""A bounded soak: a supervised pool under steady load while its workers get SIGKILLed.

    python bench/soak.py [--seconds 180] [--rate 500] [--procs 5] [--threads 4]
                         [--kill-every 10] [--sample-every 5] [--keep]

Starts ``jobq worker --procs P`` as a subprocess on a fresh SQLite database in a temporary
directory (with a small app module written there), submits jobs at a steady rate, SIGKILLs a
random worker child every ``--kill-every`` seconds, and every ``--sample-every`` seconds prints
one row: job counts, RSS and open file descriptors of the supervisor and of each worker child,
WAL and database size. At the end it waits for the queue to drain, stops the pool with SIGTERM,
checks that every job succeeded, and gives a verdict on flatness (first third of the samples
against the last third: RSS and fd growth, WAL size).

Never part of the test suite. Stops by itself; its processes are cleaned up in all cases.
Exit code 0 when every job succeeded and the figures are flat, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

APP_SOURCE = textwrap.dedent(
    """
    import os
    import time

    from jobq import JobQ

    app = JobQ()
    JOB_SECONDS = float(os.environ.get("SOAK_JOB_MS", "10")) / 1000


    @app.task(name="soak.work")
    def work(number: int) -> int:
        # Jobs take a while (sleeping, not burning CPU), so that a kill catches some running.
        time.sleep(JOB_SECONDS * (0.5 + (number % 10) / 10))
        return sum(range(200)) + number
    """
)

# Flatness thresholds: growth between the first and the last third of the samples.
RSS_GROWTH_MIB = 8.0  # supervisor, and the median worker
FD_GROWTH = 2
WAL_MAX_MIB = 64.0


@dataclass
class Sample:
    elapsed: float
    counts: dict[str, int]
    submitted: int
    supervisor_rss: float
    supervisor_fds: int
    workers: dict[int, tuple[float, int]]  # pid -> (RSS MiB, fds)
    wal: int
    db: int


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    kills: list[tuple[float, int]] = field(default_factory=list)
    submitted: int = 0


# -- /proc --------------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def children_of(parent: int) -> list[int]:
    """Live (not zombie) child processes of ``parent``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[1]) == parent and fields[0] not in (b"Z", b"X"):
            found.append(int(name))
    return sorted(found)


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# -- the soak -----------------------------------------------------------------------------


def start_pool(folder: Path, database: Path, options: argparse.Namespace) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("JOBQ_DB", None)
    env.pop("JOBQ_FAULTS", None)
    env["SOAK_JOB_MS"] = str(options.job_ms)
    command = [
        sys.executable,
        "-m",
        "cli",
        "worker",
        "--app",
        "soak_app:app",
        "--procs",
        str(options.procs),
        "--threads",
        str(options.threads),
        "--grace",
        "10",
        "--db",
        str(database),
    ]
    log = open(folder / "worker.log", "wb")  # noqa: SIM115 - closed with the process
    try:
        return subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: cleanup can reach every child
        )
    finally:
        log.close()


def wait_for_workers(process: subprocess.Popen, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the worker pool exited early (code {process.returncode})")
        if len(children_of(process.pid)) >= count:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the worker pool did not start {count} processes in {timeout} s")


def take_sample(run: Run, store, started: float, supervisor: int, database: Path) -> Sample:
    counts = store.counts()["counts"]
    workers = {pid: (rss_mib(pid), fd_count(pid)) for pid in children_of(supervisor)}
    return Sample(
        elapsed=time.monotonic() - started,
        counts=counts,
        submitted=run.submitted,
        supervisor_rss=rss_mib(supervisor),
        supervisor_fds=fd_count(supervisor),
        workers=workers,
        wal=file_size(Path(f"{database}-wal")),
        db=file_size(database),
    )


HEADER = (
    f"{'t(s)':>5} {'submitted':>9} {'succeeded':>9} {'queued':>6} {'run':>4} {'failed':>6} "
    f"{'sup MiB/fd':>10}  {'workers MiB/fd':<44} {'WAL MiB':>7} {'DB MiB':>6}"
)


def print_sample(sample: Sample) -> None:
    counts = sample.counts
    workers = " ".join(f"{rss:.0f}/{fds}" for rss, fds in sample.workers.values())
    print(
        f"{sample.elapsed:5.0f} {sample.submitted:9d} {counts['succeeded']:9d} "
        f"{counts['queued'] + counts['scheduled']:6d} {counts['running']:4d} "
        f"{counts['failed']:6d} {sample.supervisor_rss:6.1f}/{sample.supervisor_fds:<3d}  "
        f"{workers:<44} {sample.wal / 2**20:7.2f} {sample.db / 2**20:6.1f}",
        flush=True,
    )


def soak(options: argparse.Namespace, folder: Path) -> bool:
    (folder / "soak_app.py").write_text(APP_SOURCE)
    database = folder / "soak.db"
    sys.path.insert(0, str(folder))
    import soak_app  # the same task the workers run: submit through the public API

    app = soak_app.app
    app.use_database(database)
    app.store.migrate()
    run = Run()
    rng = random.Random(options.seed)
    process = start_pool(folder, database, options)
    try:
        wait_for_workers(process, options.procs)
        print(
            f"pool pid {process.pid}: {options.procs} procs x {options.threads} threads; "
            f"{options.rate}/s for {options.seconds:.0f} s, a SIGKILL every "
            f"{options.kill_every:.0f} s; database {database}",
            flush=True,
        )
        print(HEADER, flush=True)
        started = time.monotonic()
        # Kills fall between samples, so that a sample never sees a slot mid-restart.
        next_kill = started + options.kill_every + options.sample_every / 2
        next_sample = started + options.sample_every
        tick = 0.05
        due = started
        number = 0
        while True:
            now = time.monotonic()
            if now - started >= options.seconds:
                break
            if process.poll() is not None:
                raise RuntimeError(f"the worker pool died (code {process.returncode})")
            # Submit whatever the steady rate owes by now, in one transaction.
            owed = int((now - started) * options.rate) - run.submitted
            if owed > 0:
                soak_app.work.submit_many([(number + i,) for i in range(owed)])
                number += owed
                run.submitted += owed
            if now >= next_kill:
                next_kill += options.kill_every
                children = children_of(process.pid)
                if children:
                    victim = rng.choice(children)
                    try:
                        os.kill(victim, signal.SIGKILL)
                        run.kills.append((now - started, victim))
                    except ProcessLookupError:
                        pass
            if now >= next_sample:
                next_sample += options.sample_every
                sample = take_sample(run, app.store, started, process.pid, database)
                run.samples.append(sample)
                print_sample(sample)
            due += tick
            time.sleep(max(0.0, due - time.monotonic()))

        # Drain: let the pool finish what was submitted, then stop it gracefully.
        drain_deadline = time.monotonic() + options.drain
        while time.monotonic() < drain_deadline:
            counts = app.store.counts()["counts"]
            if counts["queued"] + counts["scheduled"] + counts["running"] == 0:
                break
            time.sleep(0.2)
        drained_in = options.drain - (drain_deadline - time.monotonic())
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
        return report(run, app.store, options, code, drained_in, folder)
    finally:
        if process.poll() is None:
            with_group(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        else:
            with_group(process.pid, signal.SIGKILL)  # any straggler left in its group
        app.close()


def with_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def thirds(values: list[float]) -> tuple[float, float]:
    size = max(1, len(values) // 3)
    return statistics.fmean(values[:size]), statistics.fmean(values[-size:])


def report(run: Run, store, options, code: int | None, drained_in: float, folder: Path) -> bool:
    samples = run.samples
    counts = store.counts()["counts"]
    leftover_workers = store.workers()
    print()
    print(
        f"pool stopped by SIGTERM: {'exit code ' + str(code) if code is not None else 'HUNG'}"
        f"; drained in {drained_in:.1f} s"
    )
    print(f"jobs: submitted {run.submitted}, " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"kills: {len(run.kills)} ({', '.join(f'{t:.0f}s:{pid}' for t, pid in run.kills)})")
    requeued = [
        int(m)
        for m in re.findall(
            r"; (\d+) of its jobs queued again", (folder / "worker.log").read_text(errors="replace")
        )
    ]
    print(
        f"jobs a killed worker held, queued again: {sum(requeued)} "
        f"(per kill: {' '.join(map(str, requeued)) or '-'})"
    )
    verdicts: list[tuple[str, bool]] = []
    all_ok = counts["succeeded"] == run.submitted and sum(counts.values()) == run.submitted
    verdicts.append((f"every job succeeded ({counts['succeeded']}/{run.submitted})", all_ok))
    verdicts.append(("no worker row left behind", not leftover_workers))
    verdicts.append(("pool exited 0 on SIGTERM", code == 0))
    if len(samples) >= 3:
        first, last = samples[0], samples[-1]
        sup_a, sup_b = thirds([s.supervisor_rss for s in samples])
        med = [statistics.median(r for r, _ in s.workers.values()) for s in samples if s.workers]
        wrk_a, wrk_b = thirds(med)
        fd_sup_a = max(s.supervisor_fds for s in samples[: len(samples) // 3])
        fd_sup_b = max(s.supervisor_fds for s in samples[-(len(samples) // 3) :])
        wfd = [max(f for _, f in s.workers.values()) for s in samples if s.workers]
        fd_wrk_a, fd_wrk_b = max(wfd[: len(wfd) // 3]), max(wfd[-(len(wfd) // 3) :])
        wal_max = max(s.wal for s in samples) / 2**20
        wal_a = max(s.wal for s in samples[: len(samples) // 3]) / 2**20
        wal_b = max(s.wal for s in samples[-(len(samples) // 3) :]) / 2**20
        print(
            f"supervisor RSS: first {first.supervisor_rss:.1f} MiB, last "
            f"{last.supervisor_rss:.1f} MiB; mean of first third {sup_a:.1f}, last third "
            f"{sup_b:.1f}"
        )
        print(
            "worker RSS (MiB) first sample: "
            + " ".join(f"{r:.1f}" for r, _ in first.workers.values())
            + "; last sample: "
            + " ".join(f"{r:.1f}" for r, _ in last.workers.values())
            + f"; median first third {wrk_a:.1f}, last third {wrk_b:.1f}"
        )
        print(
            f"fds: supervisor max {fd_sup_a} (first third) -> {fd_sup_b} (last third); "
            f"workers max {fd_wrk_a} -> {fd_wrk_b}"
        )
        print(
            f"WAL: max {wal_max:.2f} MiB (first third {wal_a:.2f}, last third {wal_b:.2f}); "
            f"database {samples[-1].db / 2**20:.1f} MiB"
        )
        backlog = [s.counts["queued"] + s.counts["scheduled"] for s in samples]
        print(f"backlog (queued): max {max(backlog)}, last {backlog[-1]}")
        verdicts += [
            (
                f"supervisor RSS flat (+{sup_b - sup_a:.1f} MiB <= {RSS_GROWTH_MIB})",
                sup_b - sup_a <= RSS_GROWTH_MIB,
            ),
            (
                f"worker RSS flat (+{wrk_b - wrk_a:.1f} MiB <= {RSS_GROWTH_MIB})",
                wrk_b - wrk_a <= RSS_GROWTH_MIB,
            ),
            (
                f"fds flat (supervisor +{fd_sup_b - fd_sup_a}, workers +{fd_wrk_b - fd_wrk_a}"
                f" <= {FD_GROWTH})",
                fd_sup_b - fd_sup_a <= FD_GROWTH and fd_wrk_b - fd_wrk_a <= FD_GROWTH,
            ),
            (f"WAL bounded (max {wal_max:.2f} MiB <= {WAL_MAX_MIB})", wal_max <= WAL_MAX_MIB),
        ]
    else:
        verdicts.append(("enough samples for a flatness verdict (need 3)", False))
    print()
    for text, ok in verdicts:
        print(f"  [{'ok' if ok else 'FAIL'}] {text}")
    verdict = all(ok for _, ok in verdicts)
    print(
        f"verdict: {'FLAT and complete' if verdict else 'NOT OK'}  (worker log: "
        f"{folder / 'worker.log' if options.keep else 'deleted; use --keep'})"
    )
    return verdict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="load phase length")
    parser.add_argument("--rate", type=int, default=500, help="jobs submitted per second")
    parser.add_argument("--procs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=10.0, metavar="SECONDS")
    parser.add_argument("--sample-every", type=float, default=5.0, metavar="SECONDS")
    parser.add_argument(
        "--drain",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="most time to wait for the backlog after the load phase",
    )
    parser.add_argument(
        "--job-ms", type=float, default=10.0, help="mean job duration in milliseconds (a sleep)"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (db, log)")
    options = parser.parse_args()
    if not sys.platform.startswith("linux"):
        parser.error("the soak reads /proc: Linux only")

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally blocks

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    folder = Path(tempfile.mkdtemp(prefix="jobq-soak-"))
    try:
        return 0 if soak(options, folder) else 1
    except KeyboardInterrupt:
        print("interrupted; the pool was killed", file=sys.stderr)
        return 130
    finally:
        if options.keep:
            print(f"kept {folder}")
        else:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
