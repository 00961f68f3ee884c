"""What every peer's tasks share: a cheap, uniform "this task ran" signal.

The benchmark harness (bench/compare.py) points ``BENCH_DIR`` at a fresh folder before it
starts any worker. A no-op job appends one byte to ``BENCH_DIR/count`` (an O_APPEND write, a
few microseconds, no fsync); the harness polls the file's size to know when all N jobs ran,
the same way for every system. A latency job appends ``"<index> <time.time()>\\n"`` to
``BENCH_DIR/stamps`` as its first action.
"""

from __future__ import annotations

import os
import time

_files: dict[str, tuple[int, int]] = {}  # name -> (pid that opened it, fd)


def _fd(name: str) -> int:
    pid = os.getpid()
    entry = _files.get(name)
    if entry is None or entry[0] != pid:  # never reuse an fd across a fork
        path = os.path.join(os.environ["BENCH_DIR"], name)
        entry = (pid, os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
        _files[name] = entry
    return entry[1]


def mark() -> None:
    """Count one finished no-op job."""
    os.write(_fd("count"), b"x")


def stamp(index: int) -> None:
    """Record when latency job ``index`` started (its first line)."""
    now = time.time()
    os.write(_fd("stamps"), f"{index} {now:.6f}\n".encode())
