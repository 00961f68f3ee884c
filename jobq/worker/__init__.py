"""Running jobs: in this process (``procs=0``) or in a supervised pool of processes."""

from __future__ import annotations

import os
import secrets
import threading
from typing import TYPE_CHECKING

from .patience import HOST
from .process import WorkerProcess
from .settings import EXIT_DAMAGED, EXIT_OK, EXIT_RECYCLE, WorkerSettings
from .supervisor import Supervisor

if TYPE_CHECKING:
    from ..app import JobQ

__all__ = ["EXIT_OK", "EXIT_RECYCLE", "Supervisor", "WorkerProcess", "WorkerSettings", "run"]


def run(app: JobQ, settings: WorkerSettings) -> int:
    """Run workers for ``app`` with ``settings``; return the exit code. Raises
    CorruptDatabaseError once every worker has stopped on a damaged database."""
    if settings.procs > 0:
        return Supervisor(app.tasks, settings).run()
    worker = WorkerProcess(app.tasks, settings, f"{HOST}/{os.getpid()}-{secrets.token_hex(3)}")
    if threading.current_thread() is threading.main_thread():
        import signal

        previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
        worker.install_signals()
        try:
            return _checked(worker, worker.run())
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    return _checked(worker, worker.run())


def _checked(worker: WorkerProcess, code: int) -> int:
    if code == EXIT_DAMAGED and worker.damaged is not None:
        raise worker.damaged
    return code
