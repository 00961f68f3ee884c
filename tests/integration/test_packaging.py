"""What `pip install .` puts on a user's machine: one top-level package, jobq, with its
CLI, its migrations and py.typed inside, and nothing called `cli` that a user's own `cli.py`
could be shadowed by or shadow."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.helpers import ROOT

pytestmark = pytest.mark.slow


def test_the_wheel_installs_jobq_alone(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("jobq-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    print(f"\n{wheel.name}: top-level {sorted(top)}, {len(names)} files")
    assert top == {"jobq"}
    for needed in ("jobq/py.typed", "jobq/cli/main.py", "jobq/__main__.py"):
        assert needed in names
    assert any(name.startswith("jobq/migrations/sqlite/") for name in names)
    entry = zipfile.ZipFile(wheel).read(
        next(name for name in names if name.endswith("entry_points.txt"))
    )
    assert b"jobq = jobq.cli.main:main" in entry
