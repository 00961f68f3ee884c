"""Start-up: pydantic (about 50 ms of imports) is loaded only where it is used.

Each case runs in a fresh interpreter: the test process itself has imported everything.
"""

from __future__ import annotations

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
        env={"PYTHONPATH": str(ROOT), "JOBQ_TMP": str(tmp_path), "PATH": "/usr/bin:/bin"},
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

        print(greet.bind([2, "ab"], {}), "pydantic" in sys.modules)
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
    assert lines[1] == "([3, 'ab'], {}) True"
    assert lines[2].startswith("argument 'times' of greet:")


def test_records_are_still_exported_by_the_package(tmp_path) -> None:
    out = run_python(
        """
        import jobq
        from jobq import JobRecord, WorkerRecord
        print(JobRecord is jobq.JobRecord, WorkerRecord.__name__)
        try:
            jobq.NoSuchThing
        except AttributeError as error:
            print(error)
        """,
        tmp_path,
    )
    assert out.splitlines() == ["True WorkerRecord", "module 'jobq' has no attribute 'NoSuchThing'"]
