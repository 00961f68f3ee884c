"""The store contract runs against every backend listed in BACKENDS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobq.store import Store, open_store

BACKENDS = ["sqlite"]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        opened = open_store(tmp_path / "contract.db")
    else:  # pragma: no cover - later backends
        raise AssertionError(request.param)
    yield opened
    opened.close()
