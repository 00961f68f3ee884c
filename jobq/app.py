"""``JobQ``: the app that holds the task registry and the store."""

from __future__ import annotations

import dataclasses
import difflib
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from .errors import ArgumentError, ConfigurationError, UnknownTaskError
from .job import Job
from .models import SHELL_TASK, STATUSES, NewJob
from .payload import DEFAULT_MAX_PAYLOAD, encode_arguments, is_storable_text
from .shell import ShellRunner, check_command, remove_purged_logs, shell_allowed
from .store import DEFAULT_DATABASE, Store, open_store, parse_database, resolve_location
from .tasks import Callback, P, R, Task, TaskCall, TaskOptions

if TYPE_CHECKING:
    from .records import JobRecord, WorkerRecord


class JobQ:
    """A job queue on one database.

    ``database`` is a path, a ``sqlite:///path?synchronous=full`` URL or a
    ``postgresql://user@host/dbname`` URL; by default the
    ``JOBQ_DB`` environment variable, else ``./jobq.db``. The database is opened (created and
    migrated if needed) on first use, not here.
    """

    def __init__(
        self,
        database: str | Path | None = None,
        *,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        create: bool = True,
    ) -> None:
        """``database``: a path or URL (else JOBQ_DB, else ./jobq.db). ``create=False``
        refuses to create a missing SQLite file (what the read commands of the CLI use)."""
        self.create = create
        self.database_named = database is not None  # named in code, not taken from JOBQ_DB
        if database is not None:
            parse_database(database)  # fail now on a malformed URL, not at first submit
        # JOBQ_DB is checked when the database is first opened, so that importing a module
        # that makes an app never fails because of the environment.
        self.database = str(database or os.environ.get("JOBQ_DB") or DEFAULT_DATABASE)
        self.max_payload = max_payload
        self.tasks: dict[str, Task] = {}
        # Every app, and so every worker, runs shell-command jobs (jobq submit --cmd).
        self.shell = ShellRunner(self)
        self.tasks[SHELL_TASK] = Task(
            self,
            self.shell,
            name=SHELL_TASK,
            options=TaskOptions(max_attempts=1),
            stops_itself=True,
            batchable=False,
            processes=self.shell,
        )
        self._store: Store | None = None
        self._store_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<JobQ {self.database} tasks={len(self.tasks)}>"

    @property
    def store(self) -> Store:
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    # Once, as the app opens: every later use (workers, shell logs) names
                    # the same file, wherever a task moves the process's current directory.
                    self.database = resolve_location(self.database)
                    self._store = open_store(self.database, create=self.create)
        return self._store

    def use_database(self, database: str | Path) -> None:
        """Point the app at another database (the CLI's ``--db`` does this)."""
        parse_database(database)
        self.close()
        self.database = str(database)
        self.database_named = True

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- registering -----------------------------------------------------------------------

    @overload
    def task(self, func: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = 3,
        timeout: float | None = None,
        backoff: float = 1.0,
        max_backoff: float = 3600.0,
        on_success: Callback | None = None,
        on_failure: Callback | None = None,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(  # type: ignore[misc]
        self, func: Callable[..., Any] | None = None, /, **settings: Any
    ) -> Any:
        """Register a function as a task: ``@app.task`` or ``@app.task(queue="high", ...)``."""
        if func is not None:
            return self._register(func, settings)
        return lambda function: self._register(function, settings)

    def _register(self, func: Callable[..., Any], settings: dict[str, Any]) -> Task:
        settings = dict(settings)
        name = settings.pop("name", None)
        on_success = settings.pop("on_success", None)
        on_failure = settings.pop("on_failure", None)
        unknown = set(settings) - set(TaskOptions.__dataclass_fields__)
        if unknown:
            raise ConfigurationError(f"unknown task option(s): {', '.join(sorted(unknown))}")
        task = Task(
            self,
            func,
            name=name,
            options=TaskOptions(**settings),
            on_success=on_success,
            on_failure=on_failure,
        )
        existing = self.tasks.get(task.name)
        if existing is not None and existing.func is not func:
            raise ConfigurationError(f"two different functions are registered as {task.name!r}")
        self.tasks[task.name] = task
        return task

    # -- submitting ------------------------------------------------------------------------

    def task_named(self, name: str) -> Task:
        """The task registered as ``name``; UnknownTaskError, naming close matches, if none."""
        task = self.tasks.get(name)
        if task is not None:
            return task
        names = sorted(set(self.tasks) - {SHELL_TASK})
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        if close:
            hint = f"did you mean {' or '.join(close)}?"
        elif names:
            hint = f"its tasks: {', '.join(names[:10])}" + (", ..." if len(names) > 10 else "")
        else:
            hint = "it has no tasks"
        raise UnknownTaskError(f"the app has no task named {name!r}; {hint}")

    def submit(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Job:
        """Submit a job by task name.

        A registered name is checked against its function; an unknown name is accepted (a
        worker's app may know it) and fails at once on a worker that does not.
        """
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"a task name must be a non-empty string, not {name!r}")
        if not is_storable_text(name):
            raise ConfigurationError(f"task name {name!r} is not valid UTF-8 text")
        task = self.tasks.get(name)
        if task is not None:
            return task.options(**options).submit(*args, **(kwargs or {}))
        unknown: Task[..., Any] = _Unregistered(self, name)  # type: ignore[assignment]
        call: TaskCall[..., Any] = TaskCall(unknown, TaskOptions())
        return call.options(**options).submit(*args, **(kwargs or {}))

    def submit_command(
        self,
        command: str,
        *,
        cwd: str | Path | None = None,
        env: dict[str, str] | None = None,
        **options: Any,
    ) -> Job:
        """Queue a shell command (``/bin/sh -c``) that any worker runs; see jobq.shell.

        ``cwd`` defaults to this process's working directory and must exist now. Options are
        ``submit``'s (queue, priority, delay, max_attempts, timeout, after); a command is
        tried once unless ``max_attempts`` says otherwise.
        """
        folder = os.path.abspath(cwd if cwd is not None else os.getcwd())
        if not os.path.isdir(folder):
            raise ArgumentError(f"the working directory {folder} does not exist")
        check_command(command, folder, env)
        arguments = {"command": command, "cwd": folder, "env": dict(env or {})}
        return self.submit(SHELL_TASK, kwargs=arguments, **options)

    def _submit_checked(
        self,
        task: Task,
        calls: list[tuple[list[Any], dict[str, Any]]],
        options: TaskOptions,
    ) -> list[Job]:
        run_at = None if not options.delay else time.time() + options.delay
        new_jobs = []
        for args, kwargs in calls:
            args, kwargs = task.to_json_values(args, kwargs)
            args_text, kwargs_text = encode_arguments(args, kwargs, self.max_payload)
            new_jobs.append(
                NewJob(
                    task=task.name,
                    args=args_text,
                    kwargs=kwargs_text,
                    queue=options.queue,
                    priority=options.priority,
                    max_attempts=options.max_attempts,
                    timeout=options.timeout,
                    run_at=run_at,
                    after=options.after,
                )
            )
        if not new_jobs:
            return []
        return [Job(self, job_id) for job_id in self.store.enqueue(new_jobs)]

    def purge(self, statuses: Sequence[str] = ("succeeded",), older_than: float = 7 * 86400) -> int:
        """Delete finished jobs (and their shell-command logs) in ``statuses`` that finished
        more than ``older_than`` seconds ago; ``jobq purge`` does the same. Returns how many."""
        count = self.store.purge(statuses, older_than)
        remove_purged_logs(self.database, self.store)
        return count

    def job(self, job_id: int) -> Job:
        """A handle on an existing job (raises JobNotFoundError if there is none)."""
        self.store.get_job(job_id)
        return Job(self, job_id)

    def jobs(
        self,
        *,
        status: str | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 50,
    ) -> list[JobRecord]:
        """The newest jobs first (at most ``limit``), of one status, queue and task if given:
        what ``jobq list`` shows."""
        if status is not None and status not in STATUSES:
            raise ConfigurationError(f"no such status {status!r}; one of {', '.join(STATUSES)}")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ConfigurationError(f"limit must be a whole number of 1 or more, not {limit!r}")
        return self.store.list_jobs(status=status, queue=queue, task=task, limit=limit)

    def counts(self) -> dict[str, Any]:
        """Jobs per status in all (``counts``) and per queue (``queues``), as ``jobq status``
        shows them."""
        return self.store.counts()

    def workers(self) -> list[WorkerRecord]:
        """The worker processes registered now, with the number of jobs each runs."""
        return self.store.workers()

    # -- running ---------------------------------------------------------------------------

    def run_worker(
        self,
        procs: int = 0,
        threads: int | None = None,
        *,
        queues: Sequence[str] | None = None,
        burst: bool = False,
        grace: float = 30.0,
        lease: float = 20.0,
        memory_limit: int | None = None,
        allow_shell: bool = False,
        cancel_grace: float = 10.0,
    ) -> int:
        """Run workers until stopped (or, with ``burst``, until no runnable job is left).

        ``procs=0`` runs the worker threads in this process; ``procs=N`` starts a supervisor
        that keeps N worker processes. The other settings are the CLI's (`jobq worker
        --help`): ``threads`` per process (default ``WorkerSettings.threads``), ``grace`` and
        ``lease`` in seconds, ``memory_limit`` in MiB per process. Shell-command jobs run only
        when no other user can write the database, or with ``allow_shell``. ``cancel_grace``:
        seconds a cancelled running job gets to stop before it is killed.
        Returns the exit code (0 on a clean stop).
        """
        from .worker import WorkerSettings, run

        settings = WorkerSettings(  # bad settings fail here, before anything is written
            database=resolve_location(self.database),
            procs=procs,
            threads=WorkerSettings.threads if threads is None else threads,
            queues=tuple(queues) if queues else None,
            burst=burst,
            grace=grace,
            lease=lease,
            memory_limit=memory_limit,
            cancel_grace=cancel_grace,
        )
        self.shell.kill_grace = cancel_grace
        self.store.migrate()  # a bad database fails here, before any process starts
        allowed, why = shell_allowed(self.database)
        self.shell.refusal = None
        if not allowed and not allow_shell:
            self.shell.refusal = (
                f"this worker does not run shell commands: {why} (whoever can write the "
                "database could make it run anything); start it with --allow-shell to run them"
            )
        # A worker claims only jobs it can run: a command it may not run stays queued for a
        # worker that may, on this host or another.
        tasks_of_its_own = set(self.tasks) != {SHELL_TASK}
        if not tasks_of_its_own and self.shell.refusal:
            raise ConfigurationError(
                f"this worker would have nothing to run: it has no tasks of its own (no --app) "
                f"and may not run shell commands, as {why}; start it with --allow-shell to run "
                "them"
            )
        commands = "never" if self.shell.refusal else ("also" if tasks_of_its_own else "only")
        settings = dataclasses.replace(settings, commands=commands)
        if procs > 0:
            self.close()  # no connection may cross the fork; it reopens on next use
        return run(self, settings)


class _Unregistered:
    """Stands in for a task this process does not know: no argument checking."""

    def __init__(self, app: JobQ, name: str) -> None:
        self.app = app
        self.name = name

    def to_json_values(
        self, args: list[Any], kwargs: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        return args, kwargs  # a worker's app checks them, if it knows the task
