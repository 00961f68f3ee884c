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
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .context import current_job
from .errors import ArgumentError, JobQError

if TYPE_CHECKING:
    from .app import JobQ
    from .store import Store

SHELL_TASK = "jobq.shell"
LOG_LIMIT = 10 * 1024 * 1024  # bytes of output kept per job; the rest is counted, not kept
KILL_GRACE = 10.0  # seconds between SIGTERM and SIGKILL when a command is stopped
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_READ = 65536


class CommandError(JobQError):
    """A shell command ended with a non-zero exit code, a signal, or was stopped."""


class ShellRefused(JobQError):
    """This worker does not run shell commands (a shared database without --allow-shell)."""


def logs_folder(database: str) -> Path:
    """Where the log files of a database's shell jobs live: beside the file."""
    from .store import parse_database

    return Path(f"{parse_database(database).path}.logs")


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

    Whoever can write the database can make the worker run commands: only a local file that
    no other user can write qualifies.
    """
    from .store import parse_database

    parsed = parse_database(database)
    try:
        mode = os.stat(parsed.path).st_mode
    except OSError as error:
        return False, f"cannot check who may write {parsed.path}: {error.strerror}"
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return False, f"{parsed.path} is writable by other users (mode {stat.filemode(mode)})"
    return True, ""


class ShellRunner:
    """The function behind ``jobq.shell``, bound to one app (for its database's log folder)."""

    def __init__(self, app: JobQ) -> None:
        self.app = app
        self.refusal: str | None = None  # set by a worker that must not run commands
        self.kill_grace = KILL_GRACE  # the worker's cancel_grace

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
        folder = logs_folder(self.app.database)
        folder.mkdir(mode=0o700, exist_ok=True)
        environment = {**os.environ, **(env or {}), "JOBQ_JOB_ID": str(job.id)}
        path = folder / f"{job.id}.log"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(descriptor, "ab", buffering=0) as log:
            if job.attempts > 1:
                log.write(f"[jobq] attempt {job.attempts} of {job.max_attempts}\n".encode())
            process = subprocess.Popen(
                ["/bin/sh", "-c", command],
                cwd=cwd,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as a whole
            )
            assert process.stdout is not None
            kept = os.fstat(descriptor).st_size  # the limit holds across attempts
            stop_reason, dropped = self._pump(process, log, kept, job)
        code = process.returncode
        if dropped:
            with open(path, "ab") as tail:
                tail.write(f"\n[jobq] output past {LOG_LIMIT} bytes dropped: {dropped}\n".encode())
        if stop_reason:
            raise CommandError(stop_reason)
        if code < 0:
            raise CommandError(f"the command was killed by {signal.Signals(-code).name}")
        if code != 0:
            raise CommandError(f"the command exited with code {code}")
        return {"exit_code": 0}

    def _pump(
        self, process: subprocess.Popen[bytes], log: Any, kept: int, job: Any
    ) -> tuple[str | None, int]:
        """Copy output to the log until the command ends; stop it on timeout or cancel."""
        assert process.stdout is not None
        pipe = process.stdout.fileno()
        deadline = time.monotonic() + job.timeout if job.timeout else None
        stop_reason: str | None = None
        kill_at: float | None = None
        dropped = 0
        exited_at: float | None = None
        while True:
            ready, _, _ = select.select([pipe], [], [], 0.05)
            if ready:
                data = os.read(pipe, _READ)
                if not data:
                    break  # every writer closed the pipe
                room = max(LOG_LIMIT - kept, 0)
                if room:
                    log.write(data[:room])
                    kept += min(room, len(data))
                dropped += max(len(data) - room, 0)
                continue
            now = time.monotonic()
            if process.poll() is not None:
                # Exited; a background child may still hold the pipe open: not for long.
                exited_at = exited_at or now
                if now - exited_at > 0.5:
                    break
                continue
            if stop_reason is None:
                if job.cancelled:
                    stop_reason = "cancelled while running"
                elif deadline is not None and now >= deadline:
                    stop_reason = f"the command ran longer than its timeout of {job.timeout} s"
                if stop_reason:
                    _signal_group(process.pid, signal.SIGTERM)
                    kill_at = now + self.kill_grace
            elif kill_at is not None and now >= kill_at:
                _signal_group(process.pid, signal.SIGKILL)
                kill_at = None
        process.wait()
        process.stdout.close()
        return stop_reason, dropped


def _signal_group(pid: int, number: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, number)
