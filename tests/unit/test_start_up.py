"""Start-up: pydantic (about 50 ms of imports) is loaded only where it is used.

Each case runs in a fresh interpreter: the test process itself has imported everything.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, tmp_path: Path) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "JOBQ_TMP": str(tmp_path)},
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


def test_the_library_and_the_cli_import_without_pydantic(tmp_path) -> None:
    out = run_python(
        """
        import sys
        import jobq, cli.main
        print("pydantic" in sys.modules)
        """,
        tmp_path,
    )
    assert out == "False"


def test_plain_arguments_are_checked_without_pydantic_and_others_with_it(tmp_path) -> None:
    out = run_python(
        """
        import os, sys
        from jobq import JobQ
        from jobq.errors import ArgumentError

        app = JobQ(os.path.join(os.environ["JOBQ_TMP"], "t.db"))

        @app.task(name="greet")
        def greet(times: int, name: str) -> str:
            return name * times

        @app.task(name="loose")
        def loose(anything, *, label: str = "x") -> None:
            pass

        print(greet.bind([2, "ab"], {}), "pydantic" in sys.modules)
        print(greet.bind([], {"times": 2, "name": "ab"}), "pydantic" in sys.modules)
        print(loose.bind([{"a": 1.5}], {"label": "y"}), "pydantic" in sys.modules)
        print(greet.bind(["3", "ab"], {}), "pydantic" in sys.modules)  # "3" becomes 3
        try:
            greet.bind(["many", "ab"], {})
        except ArgumentError as error:
            print(error)
        """,
        tmp_path,
    )
    lines = out.splitlines()
    assert lines[0] == "([2, 'ab'], {}) False"
    assert lines[1] == "([2, 'ab'], {}) False"  # by keyword: the same values, still plain
    assert lines[2] == "([{'a': 1.5}], {'label': 'y'}) False"  # nothing hinted to check
    assert lines[3] == "([3, 'ab'], {}) True"
    assert lines[4].startswith("argument 'times' of greet:")


def test_a_worker_runs_plain_jobs_without_pydantic(tmp_path) -> None:
    out = run_python(
        """
        import os, sys
        from jobq import JobQ

        app = JobQ(os.path.join(os.environ["JOBQ_TMP"], "w.db"))

        @app.task(name="add")
        def add(x: int, y: int) -> int:
            return x + y

        jobs = [add.submit(1, 2), add.submit(x=3, y=4)]
        app.run_worker(procs=0, threads=2, burst=True)
        statuses = app.store.job_statuses([job.id for job in jobs])
        print(sorted(statuses.values()), "pydantic" in sys.modules)
        print(jobs[1].info().result, "pydantic" in sys.modules)  # a record: now it loads
        """,
        tmp_path,
    )
    assert out.splitlines() == ["['succeeded', 'succeeded'] False", "7 True"]


def test_records_are_still_exported_by_the_package(tmp_path) -> None:
    out = run_python(
        """
        import jobq
        from jobq import JobRecord, WorkerRecord
        from jobq.models import JobRecord as Moved  # where they were before
        print(JobRecord is jobq.JobRecord is Moved, WorkerRecord.__name__, "JobRecord" in dir(jobq))
        try:
            jobq.NoSuchThing
        except AttributeError as error:
            print(error)
        """,
        tmp_path,
    )
    assert out.splitlines() == [
        "True WorkerRecord True",
        "module 'jobq' has no attribute 'NoSuchThing'",
    ]
