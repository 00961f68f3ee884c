"""Runs: jobs of quick tasks handed to one executor thread together.

Handing every job to a thread of its own costs thread switches: as soon as a task lets go of
the GIL (any I/O, even one small write), another woken executor takes it, and the first
waits to get it back. On no-op jobs that each append one byte to a file, a pool of 5
processes switched threads about once per job, which took a third of its time. A run avoids
that: jobs of tasks known to finish quickly go to one executor, which runs them one after the
other and hands their outcomes to the completer together.

A job in a run waits for the ones before it, so only tasks whose recent jobs were quick are
grouped, never more than a couple of milliseconds' worth. A run that has gone on for
``STALL`` seconds starts no more jobs, and the worker's main thread passes on the waiting
jobs (and the outcomes held) of a run stuck in one job that long: a job never waits behind
slow ones for much longer than that.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence

from ..models import ClaimedJob, Outcome

QUICK = 0.0005  # seconds: a task whose jobs took less, on a moving average, is quick
SAMPLES = 5  # jobs of a task seen before it can count as quick
WEIGHT = 0.2  # of the newest job in the moving average: a slow job soon makes a task slow
RUN_BUDGET = 0.002  # seconds: the expected time of a whole run (the last job's wait)
STALL = 0.02  # seconds a run may go on before its waiting jobs go to other executors


class Pace:
    """How long each task's jobs have taken, and which jobs may therefore share a run."""

    def __init__(self, unbatched: frozenset[str] = frozenset()) -> None:
        # Task name -> (moving average in seconds, jobs seen). Executors update it without a
        # lock: under the GIL a lost update only delays what the average says.
        self.seen: dict[str, tuple[float, int]] = {}
        self.unbatched = unbatched  # tasks whose jobs never share a run

    def record(self, task: str, seconds: float) -> None:
        mean, count = self.seen.get(task, (seconds, 0))
        self.seen[task] = (mean + (seconds - mean) * WEIGHT, count + 1)

    def quick(self, task: str) -> float | None:
        """The expected seconds of a job of ``task`` if it is quick, else None."""
        mean, count = self.seen.get(task, (0.0, 0))
        if count < SAMPLES or mean >= QUICK or task in self.unbatched:
            return None
        return mean

    def group(self, jobs: Sequence[ClaimedJob]) -> list[ClaimedJob | Run]:
        """``jobs`` in the same order, consecutive quick ones grouped into runs."""
        items: list[ClaimedJob | Run] = []
        run: list[ClaimedJob] = []
        spent = 0.0
        for job in jobs:
            expected = self.quick(job.task)
            if run and (expected is None or spent + expected > RUN_BUDGET):
                items.append(run[0] if len(run) == 1 else Run(run))
                run, spent = [], 0.0
            if expected is None:
                items.append(job)
            else:
                run.append(job)
                spent += expected
        if run:
            items.append(run[0] if len(run) == 1 else Run(run))
        return items


class Run:
    """Jobs that one executor runs in turn; the outcomes it has not handed over yet."""

    __slots__ = ("began", "done", "lock", "pending")

    def __init__(self, jobs: Sequence[ClaimedJob]) -> None:
        self.pending = deque(jobs)
        self.done: list[tuple[Outcome, ClaimedJob]] = []
        self.began = time.monotonic()  # handed over (an idle executor takes it at once)
        self.lock = threading.Lock()

    def next(self) -> ClaimedJob | None:
        """The next job to run, or None when the run is over or has gone on for STALL
        seconds (then what is left is for other executors: see ``stalled``)."""
        with self.lock:
            if not self.pending or time.monotonic() - self.began >= STALL:
                return None
            return self.pending.popleft()

    def finished(self, outcome: Outcome, job: ClaimedJob) -> None:
        with self.lock:
            self.done.append((outcome, job))

    def take_done(self) -> list[tuple[Outcome, ClaimedJob]]:
        with self.lock:
            done, self.done = self.done, []
        return done

    def take_pending(self) -> list[ClaimedJob]:
        with self.lock:
            pending = list(self.pending)
            self.pending.clear()
        return pending

    def stalled(self, now: float) -> bool:
        """Has the run gone on for STALL seconds, with jobs waiting or outcomes held back?

        Measured from the run's start, not its current job's: jobs that each take a little
        less than STALL would otherwise hold the last one back for all of them together.
        """
        with self.lock:
            return bool(self.pending or self.done) and now - self.began >= STALL
