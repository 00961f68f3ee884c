"""What reaping goes by on a worker's own host: whether the process it registered as runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from jobq.store.records import presumed_dead, process_start, process_state
from tests.support.helpers import wait_for

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")


@pytest.fixture
def sleeper() -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait(timeout=10)


def test_a_running_process_is_running_and_a_new_process_with_its_pid_is_not_it(
    sleeper: subprocess.Popen[bytes],
) -> None:
    start = process_start(sleeper.pid)
    assert start is not None
    assert process_state(sleeper.pid, start) == "running"
    assert process_state(sleeper.pid, None) == "running"
    # The same pid started at another time (the pid was given to a new process): gone.
    boot, ticks = start.split()
    assert process_state(sleeper.pid, f"{boot} {int(ticks) + 1}") == "gone"
    assert process_state(sleeper.pid, f"another-boot {ticks}") == "gone"


def test_an_exited_process_is_gone_and_a_stopped_one_frozen(
    sleeper: subprocess.Popen[bytes],
) -> None:
    start = process_start(sleeper.pid)
    sleeper.send_signal(signal.SIGSTOP)
    wait_for(lambda: process_state(sleeper.pid, start) == "frozen", timeout=5)
    sleeper.send_signal(signal.SIGCONT)
    wait_for(lambda: process_state(sleeper.pid, start) == "running", timeout=5)
    sleeper.kill()
    sleeper.wait(timeout=10)
    assert process_state(sleeper.pid, start) == "gone"


def test_on_its_host_a_running_worker_is_alive_however_silent(
    sleeper: subprocess.Popen[bytes],
) -> None:
    start = process_start(sleeper.pid)
    row = ("w1", sleeper.pid, "here", start, True)  # silent for a lease
    assert presumed_dead(row, "here") is None
    assert presumed_dead(row, "elsewhere") == "worker w1 stopped heartbeating"
    assert presumed_dead((*row[:4], False), "elsewhere") is None
    sleeper.send_signal(signal.SIGSTOP)
    wait_for(lambda: process_state(sleeper.pid, start) == "frozen", timeout=5)
    assert "is stopped and silent" in (presumed_dead(row, "here") or "")
    assert presumed_dead((*row[:4], False), "here") is None  # frozen, not yet silent
    sleeper.kill()
    sleeper.wait(timeout=10)
    assert (
        presumed_dead((*row[:4], False), "here") == f"worker process {sleeper.pid} on here is gone"
    )
