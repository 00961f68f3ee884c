"""jobq tasks for bench/compare.py (``jobq worker --app jobq_tasks:app``)."""

from __future__ import annotations

import peer_common

from jobq import JobQ

app = JobQ()  # the database comes from --db / JOBQ_DB


@app.task(name="bench.noop")
def noop(number: int) -> None:
    peer_common.mark()


@app.task(name="bench.stamp")
def stamp(index: int) -> None:
    peer_common.stamp(index)


def submitter(url: str) -> tuple[JobQ, object]:
    """Another app on ``url`` with the same no-op task, to time submits side by side."""
    other = JobQ(url)

    @other.task(name="bench.noop")
    def noop(number: int) -> None:
        peer_common.mark()

    return other, noop
