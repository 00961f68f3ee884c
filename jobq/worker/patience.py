"""Waiting out a database that refuses writes for a while (locked by another process, full)."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import CorruptDatabaseError, DatabaseError
from ..store import Store

log = logging.getLogger("jobq.worker")
T = TypeVar("T")

# The host name workers record. JOBQ_HOSTNAME overrides it where several machines (or
# containers) would otherwise report the same name.
HOST = os.environ.get("JOBQ_HOSTNAME") or socket.gethostname()


def patiently(
    call: Callable[[], T],
    *,
    seconds: float,
    what: str,
    give_up: Callable[[], bool] = lambda: False,
) -> T:
    """``call()``, retried on DatabaseError with doubling pauses (50 ms up to 2 s) for up to
    ``seconds`` (or until ``give_up()``); then the last error is raised. A damaged database
    (CorruptDatabaseError) is raised at once. Each failed try is
    logged as a warning saying ``what`` could not be done yet."""
    deadline = time.monotonic() + seconds
    pause = 0.05
    while True:
        try:
            return call()
        except CorruptDatabaseError:
            raise  # a damaged file stays damaged: waiting cannot help
        except DatabaseError as error:
            if time.monotonic() + pause > deadline or give_up():
                raise
            log.warning("could not %s yet, retrying in %.2f s: %s", what, pause, error)
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


def reap_dead(store: Store, lease: float) -> None:
    """Recover the jobs of workers silent for a lease, and of dead processes on this host."""
    reaped = store.reap(lease, host=HOST)
    if reaped:
        log.warning("recovered the jobs of dead workers: %s", ", ".join(reaped))
