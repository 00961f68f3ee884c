"""Fault points: places in a job's life where a test can make the process die.

Reliability tests arm them through the environment, before a worker starts::

    JOBQ_FAULTS="after_claim=0.05,mid_complete=0.02" jobq worker ...

Each armed point kills its own process with SIGKILL with the given probability each time it
is reached: no cleanup, no flush, exactly like a crash. Unarmed (the normal case), a point
costs one truthiness test of an empty dict.

Points, in the order a job meets them:

- ``after_claim``: the claim is committed; the job is not yet handed to an executor.
- ``before_task``: an executor has the job; the task has not started.
- ``after_task``: the task returned; its outcome is not yet handed to the completer.
- ``mid_complete``: inside the completer's transaction, after some updates, before COMMIT.
- ``after_complete``: the outcomes are committed; callbacks have not run.
"""

from __future__ import annotations

import os
import random
import signal

POINTS = ("after_claim", "before_task", "after_task", "mid_complete", "after_complete")


def _parse(text: str) -> dict[str, float]:
    armed: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, chance = item.partition("=")
        if name not in POINTS:
            raise ValueError(f"JOBQ_FAULTS names unknown fault point {name!r} (known: {POINTS})")
        armed[name] = float(chance or 1.0)
    return armed


ARMED = _parse(os.environ.get("JOBQ_FAULTS", ""))


def fault(point: str) -> None:
    """Die here, now, if the point is armed and the dice say so."""
    if ARMED:
        chance = ARMED.get(point)
        if chance is not None and random.random() < chance:
            os.kill(os.getpid(), signal.SIGKILL)
