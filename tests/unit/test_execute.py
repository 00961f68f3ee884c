"""The outcome of a job that ran past its timeout, as its error reads."""

from __future__ import annotations

import json

import pytest

from jobq.models import ClaimedJob
from jobq.worker.execute import timeout_outcome


@pytest.mark.parametrize(
    ("timeout", "said"),
    [(1.0, "1 s"), (0.5, "0.5 s"), (90, "90 s"), (1209600.0, "1209600 s"), (0.1, "0.1 s")],
)
def test_a_timeout_is_named_as_it_was_given(timeout: float, said: str) -> None:
    # PostgreSQL hands a timeout of 1 back as 1.0: the message still says "1 s"; two weeks
    # are not "1.2096e+06 s".
    job = ClaimedJob(7, "slow", "default", "[]", "{}", 1, 1, timeout, claim=1)
    outcome = timeout_outcome(job, "w1", task=None)
    assert outcome.status == "failed"
    error = json.loads(outcome.error or "{}")
    assert error["type"] == "JobTimeout"
    assert error["message"] == f"job 7 ran longer than its timeout of {said}"
