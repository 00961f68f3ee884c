"""One error tree: every class derives from JobQError and says when it is raised, and every
error type jobq stores with a job names one of them."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import jobq
from jobq import errors

CLASSES = [
    value
    for value in vars(errors).values()
    if inspect.isclass(value) and issubclass(value, BaseException)
]


def test_every_error_derives_from_jobqerror_says_when_it_is_raised_and_is_exported() -> None:
    for error in CLASSES:
        assert issubclass(error, jobq.JobQError), error
        assert (error.__doc__ or "").startswith(("Raised", "Base class")), error
        assert getattr(jobq, error.__name__) is error, f"{error.__name__} is not exported"


def test_every_error_type_jobq_stores_names_a_class() -> None:
    source = "\n".join(path.read_text() for path in Path(jobq.__file__).parent.rglob("*.py"))
    stored = set(re.findall(r'error_json\("(\w+)"', source))
    stored |= set(re.findall(r'"type": "(\w+)"', source))
    stored |= set(re.findall(r"error_json\((\w+)\.__name__", source))
    assert {"JobTimeout", "WorkerLost", "Cancelled", "DependencyFailed"} <= stored
    missing = sorted(name for name in stored if not inspect.isclass(getattr(errors, name, None)))
    assert not missing, f"stored error types without a class: {missing}"


@pytest.mark.parametrize(
    ("status", "kind", "raised"),
    [
        ("failed", "JobTimeout", errors.JobTimeout),
        ("failed", "WorkerLost", errors.WorkerLost),
        ("failed", "ValueError", errors.JobFailedError),
        ("cancelled", "Cancelled", errors.Cancelled),
        ("cancelled", "DependencyFailed", errors.DependencyFailed),
    ],
)
def test_result_raises_the_class_the_stored_error_names(
    status: str, kind: str, raised: type[Exception]
) -> None:
    error = errors.stored_error(7, status, {"type": kind, "message": "why"})
    assert type(error) is raised
    assert "job 7" in str(error) and "why" in str(error)
