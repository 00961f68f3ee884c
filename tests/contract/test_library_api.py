"""The calls a user of the library reaches for, on both backends: cancel and retry from a
job's handle, listing, counts, purge and workers from the app."""

from __future__ import annotations

import pytest

from jobq import ConfigurationError, InvalidStateError, JobQ
from tests.support import sample_tasks
from tests.support.postgres import BOTH_BACKENDS

pytestmark = BOTH_BACKENDS


def test_cancel_and_retry_from_the_job_and_the_app_lists_counts_and_purges(
    sample_app: JobQ, database: str
) -> None:
    first, second, third = (sample_tasks.record.submit(f"r{n}") for n in range(3))
    assert second.cancel() == "cancelled"
    with pytest.raises(InvalidStateError, match="only waiting or running"):
        second.cancel()
    with pytest.raises(InvalidStateError, match="only failed or cancelled"):
        first.retry()

    newest_first = [record.id for record in sample_app.jobs()]
    assert newest_first == [third.id, second.id, first.id]
    assert [record.id for record in sample_app.jobs(status="queued", limit=1)] == [third.id]
    assert [record.id for record in sample_app.jobs(status="cancelled")] == [second.id]
    assert sample_app.jobs(task="no.such.task") == []
    counts = sample_app.counts()
    assert counts["counts"]["queued"] == 2 and counts["counts"]["cancelled"] == 1
    assert counts["queues"]["default"]["cancelled"] == 1
    assert sample_app.workers() == []

    second.retry()
    assert second.status() == "queued" and second.info().attempts == 0
    third.cancel()
    # SQLite never deletes the newest job (its id would be handed out again).
    assert sample_app.purge(["cancelled"], older_than=0) == (0 if "://" not in database else 1)
    with pytest.raises(ConfigurationError, match="no such status"):
        sample_app.jobs(status="done")
    with pytest.raises(ConfigurationError, match="limit"):
        sample_app.jobs(limit=0)
