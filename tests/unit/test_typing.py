"""What a user's type checker sees: jobq ships py.typed, and a task's submit is typed by its
function, so a wrong call is an error before it runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.helpers import ROOT

mypy_api = pytest.importorskip("mypy.api", reason="mypy is a test dependency")

USER_CODE = """
from jobq import JobQ

app = JobQ()

@app.task
def add(x: int, y: int) -> int:
    return x + y

@app.task(queue="high")
def greet(name: str) -> str:
    return "hello " + name

add.submit(1, 2)
add.options(priority=5).submit(1, y=2)
total: int = add(1, 2)
greet.submit("world")
add.submit(1, "x")
greet.submit()
wrong: str = add(1, 2)
"""


def test_a_wrong_submit_is_a_type_error(tmp_path: Path) -> None:
    user = tmp_path / "user_tasks.py"
    user.write_text(USER_CODE)
    report, _, code = mypy_api.run(
        [str(user), "--no-incremental", "--strict-optional", "--python-version", "3.10"]
    )
    lines = [line for line in report.splitlines() if ": error:" in line]
    print(report)
    assert code == 1
    assert len(lines) == 3, report  # the three wrong lines at the end, and nothing else
    assert all(
        f"user_tasks.py:{number}:" in line for number, line in zip((18, 19, 20), lines, strict=True)
    )
    assert (ROOT / "jobq" / "py.typed").exists()


def test_jobq_and_its_cli_check_clean_under_mypy() -> None:
    report, _, code = mypy_api.run(["--config-file", str(ROOT / "pyproject.toml")])
    assert code == 0, report
