"""Worker settings, shared by the supervisor and its worker processes."""

from __future__ import annotations

import resource
import threading
from dataclasses import dataclass

from ..errors import ConfigurationError
from ..models import COMMANDS, checked_seconds
from ..payload import is_storable_text

# Exit codes of a worker process, read by the supervisor.
EXIT_OK = 0
# Beyond these a number is a slip of the keyboard, not a pool: 100,000 processes would take the
# machine down before the first job ran. A thread reserves 8 MiB of address space for its stack.
MAX_PROCS = 1024
MAX_THREADS = 1024
EXIT_RECYCLE = 75  # stopped itself after a job timeout; restart at once, no backoff
EXIT_CRASHED = 70  # a bug stopped it; its jobs are queued again and it is restarted
EXIT_DAMAGED = 74  # the database file is damaged: the pool stops (restarting cannot help)

# Address space a worker process reserves before any task runs (the interpreter, its
# libraries, two malloc arenas: about 110 MiB measured, VmSize) plus room to run a task at
# all, and the threads besides the executors (main, fetcher, completer, heartbeat, spare).
BASE_ADDRESS_SPACE_MIB = 128
TASK_ROOM_MIB = 64
OTHER_THREADS = 5
# The largest memory limit a worker process can be given: RLIMIT_AS is set in bytes, which
# setrlimit takes as a signed 64-bit number (8 EiB, far beyond any address space).
MAX_MEMORY_MIB = (2**63 - 1) >> 20


def thread_stack_mib() -> int:
    """The address space one new thread reserves for its stack, in MiB."""
    size = threading.stack_size()  # 0: the platform default, which follows RLIMIT_STACK
    if not size:
        soft, _ = resource.getrlimit(resource.RLIMIT_STACK)
        # glibc gives threads RLIMIT_STACK's size, or 2 MiB when it is unlimited.
        size = 2 << 20 if soft in (resource.RLIM_INFINITY, 0) or soft < 0 else soft
    return max(1, size >> 20)


@dataclass(frozen=True)
class WorkerSettings:
    database: str
    procs: int = 0
    threads: int = 32  # executor threads per process: see docs/architecture.md, "Defaults"
    queues: tuple[str, ...] | None = None
    burst: bool = False
    grace: float = 30.0  # seconds running jobs get to finish after SIGTERM
    # A worker's heartbeat refreshes its lease; a worker silent for `lease` seconds is presumed
    # dead and its jobs are queued again. The heartbeat runs every lease / 10 seconds.
    lease: float = 20.0
    batch: int = 32  # most jobs claimed in one transaction (never more than free threads)
    poll: float = 0.001  # seconds between checks for commits while idle (SQLite: data_version)
    # After `idle_after` seconds without a job, checks come every `idle_poll` seconds: an idle
    # pool on SQLite polled every 1 ms burns about a quarter of a core for nothing.
    idle_after: float = 1.0
    idle_poll: float = 0.005
    backstop: float = 1.0  # seconds between full claim attempts while idle, whatever changed
    # MiB of address space each worker process may use (RLIMIT_AS); a task that needs more
    # gets MemoryError instead of taking the machine down. None: no limit. procs >= 1 only.
    memory_limit: int | None = None
    # Which shell-command jobs it claims (jobq.models.COMMANDS): a worker takes only jobs it
    # can run. "only" for a worker whose app has no tasks of its own (jobq worker without
    # --app), "never" for one that may not run commands.
    commands: str = "also"
    # After `jobq cancel` of a running job: how long a shell command gets between SIGTERM and
    # SIGKILL, and a Python task to notice current_job().cancelled before its process is
    # recycled.
    cancel_grace: float = 10.0

    def __post_init__(self) -> None:
        if not 0 <= self.procs <= MAX_PROCS:
            raise ConfigurationError(f"procs must be 0 to {MAX_PROCS}, not {self.procs}")
        if not 1 <= self.threads <= MAX_THREADS:
            raise ConfigurationError(f"threads must be 1 to {MAX_THREADS}, not {self.threads}")
        if self.commands not in COMMANDS:
            raise ConfigurationError(f"commands must be one of {COMMANDS}, not {self.commands!r}")
        if self.batch < 1:
            raise ConfigurationError(f"batch must be 1 or more, not {self.batch}")
        # Each is a sleep, a wait or a deadline: nan or inf would spin or never end, and 0
        # would spin where it is a pause between two looks.
        for name, positive in (
            ("grace", False),
            ("lease", True),
            ("poll", True),
            ("idle_after", False),
            ("idle_poll", True),
            ("backstop", True),
            ("cancel_grace", False),
        ):
            checked_seconds(name, getattr(self, name), positive=positive)
        if self.memory_limit is not None:
            self._check_memory_limit(self.memory_limit)
        if self.queues is not None and not all(self.queues):
            raise ConfigurationError("queue names must not be empty")
        for queue in self.queues or ():
            if not isinstance(queue, str) or not is_storable_text(queue):
                raise ConfigurationError(f"queue {queue!r} is not valid UTF-8 text")

    def _check_memory_limit(self, limit: int) -> None:
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise ConfigurationError(f"memory_limit must be a whole number of MiB, not {limit!r}")
        if limit > MAX_MEMORY_MIB:
            raise ConfigurationError(
                f"a memory limit of {limit} MiB is more than RLIMIT_AS can take "
                f"({MAX_MEMORY_MIB} MiB)"
            )
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY and limit << 20 > hard:
            raise ConfigurationError(
                f"a memory limit of {limit} MiB is above this process's hard limit of "
                f"address space ({hard >> 20} MiB, ulimit -Hv), which only root can raise"
            )
        if limit < self.least_memory:
            raise ConfigurationError(
                f"a memory limit of {limit} MiB is too small for {self.threads} "
                f"threads: their stacks reserve {thread_stack_mib()} MiB of address space each "
                f"and Python itself about {BASE_ADDRESS_SPACE_MIB} MiB; allow at least "
                f"{self.least_memory} MiB or run fewer threads"
            )
        if self.procs == 0:
            raise ConfigurationError("a memory limit needs worker processes (procs >= 1)")

    @property
    def least_memory(self) -> int:
        """The smallest memory limit (MiB of address space) a worker process can start in."""
        stacks = (self.threads + OTHER_THREADS) * thread_stack_mib()
        return BASE_ADDRESS_SPACE_MIB + stacks + TASK_ROOM_MIB

    @property
    def heartbeat(self) -> float:
        return self.lease / 10
