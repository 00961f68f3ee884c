"""The processes tasks start in a worker process: started safely, and not left behind.

A worker process runs tasks on many threads. ``fork()`` copies such a process with only the
calling thread, and every lock another thread held at that moment stays locked in the copy
for good: a task's ``multiprocessing.Pool()``, which forks by default on Linux before Python
3.14, then hangs now and then (1 job in 40, measured). A fork server, a process with one
thread that forks the pool's processes instead, has no such locks: Python 3.14 made it the
default, and jobq's worker processes use it on every version.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import time
from pathlib import Path

from ..models import counted
from ..store.records import pid_alive

log = logging.getLogger("jobq.worker")

# multiprocessing's own helpers, which end by themselves when this process does.
_HELPERS = (b"multiprocessing.forkserver", b"multiprocessing.resource_tracker")


def prefer_forkserver() -> None:
    """Make tasks' multiprocessing start processes from a fork server (where there is one)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        multiprocessing.set_start_method("forkserver", force=True)


def leftover_children() -> list[int]:
    """This process's live child processes that are not multiprocessing's helpers."""
    pids: set[int] = set()
    for listing in Path("/proc/self/task").glob("*/children"):
        with contextlib.suppress(OSError, ValueError):
            pids.update(int(pid) for pid in listing.read_text().split())
    found = []
    for pid in sorted(pids):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        if pid_alive(pid) and not any(helper in command for helper in _HELPERS):
            found.append(pid)
    return found


def end_leftover_children(grace: float = 2.0) -> list[int]:
    """Terminate what tasks started and did not wait for, as the worker process ends: SIGTERM,
    then SIGKILL after ``grace`` seconds. Returns their pids."""
    pids = leftover_children()
    if not pids:
        return []
    log.warning(
        "tasks left %s running (pids %s); terminating them: a task must wait for the "
        "processes it starts",
        counted(len(pids), "process"),
        ", ".join(map(str, pids)),
    )
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    waiting = list(pids)
    while waiting and time.monotonic() < deadline:
        for pid in list(waiting):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    waiting.remove(pid)
                    continue
            if not pid_alive(pid):
                waiting.remove(pid)
        time.sleep(0.05)
    for pid in waiting:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return pids
