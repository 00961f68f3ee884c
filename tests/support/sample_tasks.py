"""Tasks the tests run in real worker processes (``--app tests.support.sample_tasks:app``).

The database comes from JOBQ_DB. Tasks that leave side effects append a line to the file
named by JOBQ_TEST_LOG, so tests can count how many times each job really ran.
"""

from __future__ import annotations

import os
import time

from jobq import JobQ, Retry, current_job

app = JobQ()


def _mark(tag: str) -> None:
    path = os.environ.get("JOBQ_TEST_LOG")
    if path:
        job = current_job()
        with open(path, "a") as handle:
            handle.write(f"{tag} {job.id if job else '-'} {os.getpid()}\n")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def echo(value: object = None) -> object:
    return value


@app.task
def record(tag: str) -> str:
    _mark(tag)
    return tag


@app.task
def sleep(seconds: float, tag: str = "sleep") -> float:
    _mark(f"start-{tag}")
    time.sleep(seconds)
    _mark(f"end-{tag}")
    return seconds


@app.task
def pause(seconds: float) -> float:
    """Returns at once for 0 (a task the worker learns is quick), else sleeps that long."""
    if seconds:
        time.sleep(seconds)
    return seconds


@app.task(max_attempts=3, backoff=0.05)
def fail(message: str = "boom") -> None:
    _mark("fail")
    raise ValueError(message)


@app.task(max_attempts=5)
def flaky(succeed_on: int) -> int:
    """Fails until its attempt number reaches ``succeed_on``."""
    job = current_job()
    assert job is not None
    _mark(f"attempt-{job.attempts}")
    if job.attempts < succeed_on:
        raise Retry(delay=0.05, reason=f"attempt {job.attempts} is too early")
    return job.attempts


@app.task(max_attempts=2)
def crash(code: int = 3) -> None:
    """Kills its own process, like a segfault would."""
    _mark("crash")
    os._exit(code)


@app.task
def pid() -> int:
    return os.getpid()


@app.task(max_attempts=2)
def segfault() -> None:
    """Dereferences a null pointer: the process dies of SIGSEGV."""
    import ctypes

    _mark("segfault")
    ctypes.string_at(0)


@app.task(max_attempts=2)
def hog(megabytes: int = 4096) -> int:
    """Allocates far more memory than a worker's --max-memory allows."""
    _mark("hog")
    block = bytearray(megabytes * 1024 * 1024)
    return len(block)


@app.task(name="chaos.touch", max_attempts=100)
def touch(number: int) -> int:
    """A short job whose every run is counted in JOBQ_TEST_LOG."""
    _mark("touch")
    return number


@app.task
def big(size: int) -> str:
    """Returns a string of ``size`` bytes: storing the result needs new database pages."""
    _mark("big")
    return "x" * size


@app.task(max_attempts=1)
def huge_number() -> int:
    """Returns an int json.dumps refuses (more than 4300 digits)."""
    return 10**5000


class UnreadableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this message cannot be read")


@app.task(max_attempts=1)
def unreadable_error() -> None:
    raise UnreadableError()


@app.task(max_attempts=2)
def exit_zero() -> None:
    """Ends its own process with exit code 0, as some C libraries do."""
    _mark("exit-zero")
    os._exit(0)


@app.task(max_attempts=3)
def patient(seconds: float) -> str:
    """Works in small steps and stops early once its job is cancelled."""
    _mark("start-patient")
    job = current_job()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if job is not None and job.cancelled:
            _mark("noticed-cancel")
            return "stopped early"
        time.sleep(0.02)
    return "ran to the end"


def _noted(context: object, result: object) -> None:
    """on_success of ``noted``: runs in the worker once the success is recorded."""
    path = os.environ.get("JOBQ_TEST_LOG")
    if path:
        with open(path, "a") as handle:
            handle.write(f"noted {getattr(context, 'id', '-')} {os.getpid()}\n")


@app.task(name="chaos.noted", max_attempts=100, on_success=_noted)
def noted(number: int) -> int:
    """A short job counted in JOBQ_TEST_LOG, whose completion callback is counted too."""
    _mark("run")
    return number


@app.task(max_attempts=3)
def listing() -> list[str]:
    """Returns a file name that is not UTF-8, as ``os.listdir()`` gives it (a lone surrogate)."""
    _mark("listing")
    return [b"report-\xff.txt".decode("utf-8", "surrogateescape")]


@app.task
def wander(directory: str) -> str:
    """Moves its worker process to another directory, as tasks that build files do."""
    _mark("wander")
    os.chdir(directory)
    return os.getcwd()


def _blocking_callback(context: object, result: object) -> None:
    """on_success of ``held``: blocks until the file JOBQ_TEST_RELEASE names exists."""
    _note("callback-start", context)
    release = os.environ.get("JOBQ_TEST_RELEASE", "")
    deadline = time.monotonic() + 120
    while release and not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.05)
    _note("callback-end", context)


def _note(tag: str, context: object) -> None:
    """A callback's line in JOBQ_TEST_LOG (outside a job: current_job() is None there)."""
    path = os.environ.get("JOBQ_TEST_LOG")
    if path:
        with open(path, "a") as handle:
            handle.write(f"{tag} {getattr(context, 'id', 0)} {os.getpid()}\n")


@app.task(on_success=_blocking_callback)
def held(number: int) -> int:
    """A job whose completion callback blocks (see _blocking_callback)."""
    return number


def _square(number: int) -> int:
    return number * number


@app.task
def pooled(count: int) -> list[object]:
    """A task that runs a multiprocessing.Pool, as the tutorial does, inside a threaded
    worker process: the start method it gets, and the pool's answer."""
    import multiprocessing

    with multiprocessing.Pool(2) as pool:
        total = sum(pool.map(_square, range(count)))
    return [multiprocessing.get_start_method(), total]


@app.task
def leaves_a_process(seconds: float) -> int:
    """Starts a process and returns without waiting for it: its pid."""
    import subprocess

    return subprocess.Popen(["sleep", str(seconds)]).pid


@app.task
def chatty(tag: str) -> str:
    """Logs a line, as a task's own code would."""
    import logging

    logging.getLogger("tasks.chatty").warning("hello from %s", tag)
    return tag
