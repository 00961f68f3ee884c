"""README.md, run as written: every command block of the tour, the task runner and the
PostgreSQL sections, in an empty directory, with the files the README shows written first.
A block's output must be what the README prints, up to what changes from run to run
(times, pids, worker ids, "5s ago", the widths of the tables those change) and the order in
which concurrent jobs end. So the README cannot drift from the code.

The few things a reader does by hand are done here too: a worker the README starts in
another terminal, or with ``&``, runs in the background until its processes have registered
(and printed the lines the README shows from it); ``pip install`` lines are what the test
environment already did.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from jobq import JobQ
from tests.support.helpers import ROOT, subprocess_env, wait_for
from tests.support.postgres import MARKS, fresh_database

pytestmark = pytest.mark.slow

README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def section(title: str) -> str:
    start = README.index(f"\n## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)


def steps_of(block: str) -> list[Step]:
    """``$ command`` lines and the output under each."""
    steps: list[Step] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append(Step(line[2:]))
        elif steps:
            steps[-1].expected.append(line)
    return steps


# -- what changes from run to run ------------------------------------------------------------

_WORKER = re.compile(r"[\w.-]+/\d+\.\d+-[0-9a-f]{6}")
_TIMES = [
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(,\d+)?"), "<time>"),
    (re.compile(r"\b\d\d:\d\d:\d\d\b"), "<time>"),
    (re.compile(r"\b\d+(\.\d+)?s ago\b"), "<ago>"),
    (re.compile(r"─+"), "─"),
]


def normalized(line: str) -> str:
    if _WORKER.search(line):
        line = _WORKER.sub("<worker>", line)
        line = re.sub(r"\b\d+\b", "<n>", line)  # pids and counts of a worker's row
    for pattern, replacement in _TIMES:
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


def same_output(actual: str, expected: list[str]) -> bool:
    """The same lines, whatever their order (concurrent jobs end in any order)."""
    want = Counter(normalized(line) for line in expected if line.strip())
    got = Counter(normalized(line) for line in actual.splitlines() if line.strip())
    return want == got


# -- running a section -----------------------------------------------------------------------


class Reader:
    """A reader at a shell in ``folder``: runs commands, keeps what ``export`` sets, and the
    workers started in the background."""

    def __init__(self, folder: Path, **env: str) -> None:
        self.folder = folder
        self.env = subprocess_env(**env)
        self.env.pop("JOBQ_DB", None)
        self.env["PATH"] = f"{Path(sys.executable).parent}:{self.env['PATH']}"
        self.env["COLUMNS"] = "200"
        self.background: list[tuple[subprocess.Popen[str], Path]] = []

    def database(self) -> str:
        return self.env.get("JOBQ_DB") or str(self.folder / "jobq.db")

    def workers(self) -> int:
        app = JobQ(self.database(), create=False)
        try:
            return len(app.workers())
        except Exception:  # noqa: BLE001 - not created yet
            return 0
        finally:
            app.close()

    def run(self, step: Step) -> str:
        command = step.command
        export = re.fullmatch(r"export (\w+)=(\S+)", command)
        if export:
            self.env[export.group(1)] = export.group(2)
            return ""
        if re.search(r"jobq worker\b", command) and "--burst" not in command:
            self.start(command.removesuffix("&").strip(), step)
            return ""
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.stdout + done.stderr

    def start(self, command: str, step: Step) -> None:
        """A worker in another terminal: started, and given time to register its processes
        and print the README's lines of it."""
        log = self.folder / f"worker-{len(self.background)}.log"
        before = self.workers()
        procs = re.search(r"--procs (\d+)", command)
        expected = int(procs.group(1)) if procs else os.cpu_count() or 1
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=self.folder,
            env=self.env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.background.append((process, log))
        wait_for(lambda: self.workers() >= before + expected, timeout=30)
        printed = [line for line in step.expected if line.strip() and " jobq." not in line]
        printed = [line for line in printed if line != "..."]
        wait_for(lambda: all(line in log.read_text() for line in printed), timeout=30)

    def stop(self) -> None:
        for process, log in self.background:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            assert process.wait(timeout=30) == 0, log.read_text()[-3000:]


def play(reader: Reader, text: str) -> None:
    """Write the section's files, then run its command blocks in order."""
    try:
        for language, body in FENCE.findall(text):
            first = body.splitlines()[0] if body else ""
            if language == "python" and first.startswith("# ") and first.endswith(".py"):
                (reader.folder / first[2:]).write_text(body)
            elif language == "" and "$ " in body:
                for step in steps_of(body):
                    output = reader.run(step)
                    if re.search(r"jobq worker\b", step.command) and "--burst" not in step.command:
                        continue
                    assert same_output(output, step.expected), (
                        f"$ {step.command}\nREADME shows:\n"
                        + "\n".join(step.expected)
                        + f"\nit printed:\n{output}"
                    )
                    time.sleep(0.05)  # a reader types the next line a moment later
    finally:
        reader.stop()


def test_the_tour_runs_as_written(tmp_path: Path) -> None:
    play(Reader(tmp_path, JOBQ_HOSTNAME="vm"), section("A five-minute tour"))


def test_the_task_runner_section_runs_as_written(tmp_path: Path) -> None:
    play(Reader(tmp_path, JOBQ_HOSTNAME="vm"), section("jobq as a task runner"))


@pytest.mark.parametrize("marks", [pytest.param(None, marks=MARKS)])
def test_the_postgresql_section_runs_as_written(tmp_path: Path, marks: None) -> None:
    text = section("Many machines: PostgreSQL")
    blocks = FENCE.findall(text)
    script = next(body for language, body in blocks if language == "bash")
    printed = next(body for language, body in blocks if language == "" and "jobs" in body)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    assert "postgres = [" in (ROOT / "pyproject.toml").read_text()  # what pip install adds
    with fresh_database() as url:
        reader = Reader(tmp_path)
        lines = [line.split("  #")[0].strip() for line in script.splitlines()]
        output = ""
        try:
            for line in lines:
                if not line or line.startswith("pip install"):
                    continue
                if line.startswith("export JOBQ_DB="):
                    # The README's database, in a schema of this test's own.
                    assert line.split("=", 1)[1] == url.split("?")[0]
                    reader.env["JOBQ_DB"] = url
                    continue
                if line.endswith("&"):
                    reader.start(line.removesuffix("&").strip(), Step(line))
                    continue
                output += reader.run(Step(line))
        finally:
            reader.stop()
    assert same_output(output, printed.splitlines()), (
        f"README shows:\n{printed}\nit printed:\n{output}"
    )
