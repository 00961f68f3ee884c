from __future__ import annotations

import datetime

import pytest

from jobq import JobQ
from jobq.errors import ArgumentError, ConfigurationError
from jobq.tasks import default_task_name


@pytest.fixture
def registry(tmp_path) -> JobQ:
    return JobQ(tmp_path / "t.db")


def test_default_name_is_module_and_qualname(registry: JobQ) -> None:
    @registry.task
    def add(x: int, y: int) -> int:
        return x + y

    assert add.name == f"{__name__}.test_default_name_is_module_and_qualname.<locals>.add"
    assert registry.tasks[add.name] is add
    assert add(2, 3) == 5  # still callable directly


def test_script_tasks_are_named_after_the_file(monkeypatch) -> None:
    import sys
    import types

    main = types.ModuleType("__main__")
    main.__file__ = "/somewhere/tasks.py"
    monkeypatch.setitem(sys.modules, "__main__", main)

    def add() -> None: ...

    add.__module__ = "__mp_main__"
    add.__qualname__ = "add"
    assert default_task_name(add) == "tasks.add"


def test_options_and_name(registry: JobQ) -> None:
    @registry.task(name="math.add", queue="high", priority=3, max_attempts=7, timeout=2.5)
    def add(x: int, y: int) -> int:
        return x + y

    assert add.name == "math.add"
    assert add.defaults.queue == "high" and add.defaults.max_attempts == 7
    with pytest.raises(ConfigurationError, match="unknown task option"):
        registry.task(retries=3)(lambda: None)
    with pytest.raises(ConfigurationError, match="max_attempts must be 1 or more"):
        registry.task(max_attempts=0)(lambda: None)
    with pytest.raises(ConfigurationError, match="unknown option"):
        add.options(colour="red")


def test_bind_names_the_parameter_that_does_not_fit(registry: JobQ) -> None:
    @registry.task
    def add(x: int, y: int) -> int:
        return x + y

    assert add.bind(["1", 2], {}) == ([1, 2], {})
    with pytest.raises(ArgumentError, match="argument 'x'"):
        add.bind(["x", {}], {})
    with pytest.raises(ArgumentError, match="missing a required argument: 'y'"):
        add.bind([1], {})
    with pytest.raises(ArgumentError, match="unexpected keyword argument 'z'"):
        add.bind([1, 2], {"z": 3})


def test_rich_types_travel_as_json_and_come_back(registry: JobQ) -> None:
    @registry.task
    def when(at: datetime.date, *tags: str, **extra: int) -> str:
        return at.isoformat()

    args, kwargs = when.to_json_values(*when.bind(["2026-01-02", "a"], {"n": "3"}))
    assert args == ["2026-01-02", "a"] and kwargs == {"n": 3}
    bound_args, _ = when.bind(args, kwargs)
    assert bound_args[0] == datetime.date(2026, 1, 2)


def test_two_functions_cannot_share_a_name(registry: JobQ) -> None:
    registry.task(name="same")(lambda: 1)
    with pytest.raises(ConfigurationError, match="two different functions"):
        registry.task(name="same")(lambda: 2)


def test_submit_checks_before_writing(registry: JobQ) -> None:
    @registry.task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(ArgumentError, match="argument 'x'"):
        add.submit("x", {})
    with pytest.raises(ArgumentError):
        add.submit_many([(1, 2), ("bad", 2)])
    assert registry.store.counts()["counts"]["queued"] == 0
    jobs = add.submit_many([(1, 2), {"x": 3, "y": 4}])
    # keyword arguments of positional parameters are stored in positional form
    assert [job.info().args for job in jobs] == [[1, 2], [3, 4]]


def test_submit_options_are_stored(registry: JobQ) -> None:
    @registry.task(queue="q1", max_attempts=5)
    def noop() -> None: ...

    plain = noop.submit().info()
    assert plain.queue == "q1" and plain.max_attempts == 5 and plain.status == "queued"
    later = noop.options(queue="high", priority=9, delay=60, timeout=1.5).submit().info()
    assert later.queue == "high" and later.priority == 9 and later.status == "scheduled"
    assert later.timeout == 1.5 and later.run_at > later.created_at + 59


def test_submit_by_name(registry: JobQ) -> None:
    @registry.task(name="known")
    def known(x: int) -> int:
        return x

    with pytest.raises(ArgumentError):
        registry.submit("known", args=["nope"])
    job = registry.submit("unknown.elsewhere", args=[1], kwargs={"a": [1]}, queue="q")
    record = job.info()
    assert (
        record.task == "unknown.elsewhere" and record.queue == "q" and record.kwargs == {"a": [1]}
    )


def test_backoff_is_per_task_not_per_call(registry: JobQ) -> None:
    @registry.task(backoff=0.5)
    def noop() -> None: ...

    with pytest.raises(ConfigurationError, match="backoff is set per task"):
        noop.options(backoff=0.01)
