"""The store contract runs against every backend listed in BACKENDS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobq.store import Store, open_store
from tests.support.postgres import POSTGRESQL, fresh_database

BACKENDS = ["sqlite", POSTGRESQL]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        opened = open_store(tmp_path / "contract.db")
        yield opened
        opened.close()
        return
    with fresh_database() as url:
        opened = open_store(url)
        yield opened
        opened.close()
