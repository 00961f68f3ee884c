"""Shell-command jobs: the built-in task ``jobq.shell``, which every worker knows.

``jobq submit --cmd 'make video'`` queues it without an app. The worker runs the command with
``/bin/sh -c`` in its own process group, as the worker's user, and copies its stdout and
stderr (one pipe: interleaved as written) into a per-job log file next to the database.
Exit code 0 is success; anything else fails the attempt, naming the code or the signal.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .context import current_job
from .errors import ArgumentError, CommandError, JobQError, ShellRefused
from .models import seconds_text

if TYPE_CHECKING:
    from .app import JobQ
    from .store import Store

LOG_LIMIT = 10 * 1024 * 1024  # bytes of output kept per job; the rest is counted, not kept
KILL_GRACE = 10.0  # seconds between SIGTERM and SIGKILL when a command is stopped
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_READ = 65536


def logs_folder(database: str) -> Path:
    """Where the log files of a database's shell jobs live on this host: beside an SQLite
    file; for PostgreSQL, under ``~/.jobq/logs`` (each host keeps the logs of the commands
    it ran). ``JOBQ_LOGS`` names another parent folder."""
    from .store import parse_database

    config = parse_database(database)
    if config.backend == "sqlite" and not os.environ.get("JOBQ_LOGS"):
        return Path(f"{config.path}.logs")
    parent = Path(os.environ.get("JOBQ_LOGS") or Path.home() / ".jobq" / "logs")
    if config.backend == "sqlite":
        return parent / f"{config.path.resolve()}.logs".strip("/").replace("/", "_")
    parts = urlsplit(config.conninfo)
    name = f"{parts.hostname or 'local'}-{parts.port or 5432}{parts.path}-{config.schema}"
    return parent / name.replace("/", "_")


def log_path(database: str, job_id: int) -> Path:
    return logs_folder(database) / f"{job_id}.log"


def remove_purged_logs(database: str, store: Store) -> int:
    """Delete the log files of jobs that no longer exist (after a purge); returns how many."""
    folder = logs_folder(database)
    try:
        names = [name for name in os.listdir(folder) if name.endswith(".log")]
    except FileNotFoundError:
        return 0
    by_id = {int(name[:-4]): name for name in names if name[:-4].isdigit()}
    existing = store.job_statuses(list(by_id))
    removed = 0
    for job_id, name in by_id.items():
        if job_id not in existing:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(folder / name)
                removed += 1
    return removed


def check_command(command: Any, cwd: Any, env: Any) -> None:
    """Refuse what could never run, before it is queued."""
    if not isinstance(command, str) or not command.strip():
        raise ArgumentError("the command must be a non-empty string")
    if "\0" in command:
        raise ArgumentError("the command contains a NUL character")
    if cwd is not None and (not isinstance(cwd, str) or not os.path.isabs(cwd)):
        raise ArgumentError(f"the working directory must be an absolute path, not {cwd!r}")
    for key, value in (env or {}).items():
        if not ENV_NAME.match(key):
            raise ArgumentError(f"{key!r} is not an environment variable name")
        if not isinstance(value, str) or "\0" in value:
            raise ArgumentError(f"environment variable {key} must be text without NUL")


def shell_allowed(database: str) -> tuple[bool, str]:
    """Whether a worker may run shell jobs from this database without --allow-shell.

    Whoever can write the database can make the worker run commands: only a local file of
    this user's, in a folder no other user can write, qualifies.
    """
    from .store import parse_database

    config = parse_database(database)
    if config.backend != "sqlite":
        return False, (
            f"{config.display} is a shared {config.backend} database: whoever can write its "
            "jobs could run commands on this host"
        )
    given = Path(os.path.abspath(config.path))
    path = given.resolve()
    try:
        info = os.stat(path)
        folders = {folder: os.stat(folder) for folder in (given.parent, path.parent)}
    except OSError as error:
        return False, f"cannot check who may write {path}: {error.strerror}"
    if info.st_uid != os.getuid():
        return False, f"{path} belongs to another user (uid {info.st_uid})"
    if not _only_mine(info):
        return False, f"{path} is writable by other users (mode {stat.filemode(info.st_mode)})"
    for folder, folder_info in folders.items():
        # Its owner or others could replace the file, or plant its -wal or its logs folder.
        if folder_info.st_uid not in (os.getuid(), 0):
            return False, f"its folder {folder} belongs to another user"
        if not _only_mine(folder_info):
            return False, f"its folder {folder} is writable by other users"
    return True, ""


def _only_mine(info: os.stat_result) -> bool:
    """No one else can write it: not world-writable, and group-writable only for this user's
    own private group (the usual umask 002 with one group per user)."""
    if info.st_mode & stat.S_IWOTH:
        return False
    if not info.st_mode & stat.S_IWGRP:
        return True
    import grp
    import pwd

    try:
        group = grp.getgrgid(info.st_gid)
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return False
    return info.st_gid == os.getgid() and group.gr_name == user and not set(group.gr_mem) - {user}


class ShellRunner:
    """The function behind ``jobq.shell``, bound to one app (for its database's log folder)."""

    def __init__(self, app: JobQ) -> None:
        self.app = app
        self.refusal: str | None = None  # set by a worker that must not run commands
        self.kill_grace = KILL_GRACE  # the worker's cancel_grace
        self.groups: set[int] = set()  # process groups of the commands running now
        self.closed = False  # stop_all ran: no command may start any more
        # A supervised worker process shares this array of ints with its supervisor: the
        # process groups of its running commands, so that they can be killed if the process
        # itself is killed (a SIGKILL never lets stop_all run).
        self.published: Any = None
        self._lock = threading.Lock()

    def __call__(
        self, *, command: str, cwd: str | None = None, env: dict[str, str] | None = None
    ) -> dict[str, Any]:
        if self.refusal:
            raise ShellRefused(self.refusal)
        check_command(command, cwd, env)
        job = current_job()
        if job is None:
            raise JobQError("jobq.shell runs inside a worker")
        if cwd is not None and not os.path.isdir(cwd):
            raise CommandError(f"the working directory {cwd} does not exist on this worker")
        path = _private_log(self.app.database, job.id)
        environment = {**os.environ, **(env or {}), "JOBQ_JOB_ID": str(job.id)}
        descriptor = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        with os.fdopen(descriptor, "ab", buffering=0) as log:
            if job.attempts > 1:
                log.write(f"[jobq] attempt {job.attempts} of {job.max_attempts}\n".encode())
            with self._lock:  # a stop_all running now must see this command, or stop it
                if self.closed:
                    raise CommandError("the worker is stopping; the command did not start")
                process = subprocess.Popen(
                    ["/bin/sh", "-c", _GATE, "jobq-shell", command],
                    cwd=cwd,
                    env=environment,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stopped as a whole
                )
                self.groups.add(process.pid)
                self._publish(process.pid, 0)
                _open_gate(process)
            try:
                kept = os.fstat(descriptor).st_size  # the limit holds across attempts
                stop_reason, dropped = self._pump(process, log, kept, job)
            finally:
                # Whatever happened (a full disk while logging...), nothing of the command
                # outlives its job: what is left of its group is stopped, then the shell is
                # reaped. Until then its zombie keeps the group id from being reused.
                with self._lock:
                    _signal_group(process.pid, signal.SIGKILL)
                    self.groups.discard(process.pid)
                    self._publish(0, process.pid)
                process.wait()
                assert process.stdout is not None
                process.stdout.close()
            if dropped:
                log.write(f"\n[jobq] output past {LOG_LIMIT} bytes dropped: {dropped}\n".encode())
        code = process.returncode
        if stop_reason:
            raise CommandError(stop_reason)
        if code < 0:
            raise CommandError(f"the command was killed by {_signal_name(-code)}")
        if code != 0:
            raise CommandError(f"the command exited with code {code}")
        return {"exit_code": 0}

    def _publish(self, new: int, old: int) -> None:
        """Replace ``old`` by ``new`` in the shared array (under the lock)."""
        slots = self.published
        if slots is None:
            return
        for index in range(len(slots)):
            if slots[index] == old:
                slots[index] = new
                return

    def stop_all(self) -> None:
        """Kill every command still running (the worker is going away: a command must not
        outlive its job, or the job's next run would run beside it)."""
        with self._lock:  # under the lock: a listed group's shell is not reaped yet
            self.closed = True
            for group in self.groups:
                _signal_group(group, signal.SIGKILL)

    def _pump(
        self, process: subprocess.Popen[bytes], log: Any, kept: int, job: Any
    ) -> tuple[str | None, int]:
        """Copy output to the log until the command ends; stop it on timeout or cancel.

        The timeout and the cancel flag are checked on every pass, however busy the output.
        """
        assert process.stdout is not None
        pipe = process.stdout.fileno()
        poller = select.poll()  # not select(): descriptors past 1024 are fine
        poller.register(pipe, select.POLLIN | select.POLLHUP)
        deadline = time.monotonic() + job.timeout if job.timeout else None
        stop_reason: str | None = None
        kill_at: float | None = None
        dropped = 0
        open_pipe = True
        exited_at: float | None = None
        while True:
            now = time.monotonic()
            if stop_reason is None:
                if job.cancelled:
                    stop_reason = "cancelled while running"
                elif deadline is not None and now >= deadline:
                    stop_reason = (
                        f"the command ran longer than its timeout of {seconds_text(job.timeout)} s"
                    )
                if stop_reason:
                    _signal_group(process.pid, signal.SIGTERM)
                    kill_at = now + self.kill_grace
            elif kill_at is not None and now >= kill_at:
                _signal_group(process.pid, signal.SIGKILL)
                kill_at = None
            if _exited(process.pid):
                # The shell is gone; a background child may still hold the pipe: not for long.
                exited_at = exited_at or now
                if not open_pipe or now - exited_at > 0.5:
                    return stop_reason, dropped
            if not open_pipe:
                time.sleep(0.05)  # the command closed its output but runs on
                continue
            if not poller.poll(50):
                continue
            data = os.read(pipe, _READ)
            if not data:
                open_pipe = False  # every writer closed it
                poller.unregister(pipe)
                continue
            room = max(LOG_LIMIT - kept, 0)
            if room:
                log.write(data[:room])
                kept += min(room, len(data))
            dropped += max(len(data) - room, 0)


def _private_log(database: str, job_id: int) -> Path:
    """The job's log path, in a folder that only this user owns and can write."""
    folder = logs_folder(database)
    folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(folder)
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.getuid()
        or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    ):
        raise ShellRefused(f"{folder} is not a folder that only this user can write")
    return folder / f"{job_id}.log"


# The command starts only once its process group is published (to this process's stop_all
# and to the supervisor, which kills it if this process is SIGKILLed): until then the shell
# waits for a line on stdin. If this process dies first, the pipe closes and it exits unrun.
_GATE = 'read -r jobq_gate || exit 1; unset jobq_gate; exec 0<>/dev/null; exec /bin/sh -c "$1"'


def _open_gate(process: subprocess.Popen[bytes]) -> None:
    assert process.stdin is not None
    with contextlib.suppress(BrokenPipeError):
        process.stdin.write(b"\n")
        process.stdin.flush()
    with contextlib.suppress(BrokenPipeError):
        process.stdin.close()


def _exited(pid: int) -> bool:
    """Whether the child has exited, without reaping it: its zombie keeps its process group
    id taken, so signalling the group later can never reach an unrelated new process."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _signal_group(pid: int, number: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, number)
