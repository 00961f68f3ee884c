"""Tasks: registered functions, their options, and argument checking against type hints."""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar

from .errors import ArgumentError, ConfigurationError
from .models import checked_seconds
from .payload import is_storable_text

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from .app import JobQ
    from .job import Job

Callback = Callable[..., Any]
P = ParamSpec("P")  # a task function's parameters: submit and a call take the same
R = TypeVar("R")  # what it returns

# The most attempts a job may have: more would be a typo, not a retry policy (each attempt
# is a claim, a run and a backoff of up to max_backoff).
MAX_ATTEMPTS = 1_000_000


@dataclass(frozen=True)
class TaskOptions:
    """How a job of a task is queued and retried. Every field can be overridden per call."""

    queue: str = "default"
    priority: int = 0
    max_attempts: int = 3
    timeout: float | None = None
    backoff: float = 1.0  # seconds before the first retry; doubles each attempt, jittered
    max_backoff: float = 3600.0
    delay: float | None = None  # seconds from now before the job may run
    # Jobs (or their ids) that must succeed before this one runs; if one fails or is
    # cancelled, this one is cancelled and never runs.
    after: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.after, (str, bytes)) or not isinstance(self.after, Iterable):
            raise ConfigurationError(f"after must be a list of jobs or job ids, not {self.after!r}")
        ids = []
        for item in self.after:
            job_id = getattr(item, "id", item)  # a Job, or an id
            if not isinstance(job_id, int) or isinstance(job_id, bool) or not 0 < job_id < 2**63:
                raise ConfigurationError(f"after takes jobs or job ids, not {item!r}")
            ids.append(job_id)
        object.__setattr__(self, "after", tuple(dict.fromkeys(ids)))
        if not isinstance(self.queue, str) or not self.queue:
            raise ConfigurationError(f"queue must be a non-empty string, not {self.queue!r}")
        if not is_storable_text(self.queue):
            raise ConfigurationError(f"queue {self.queue!r} is not valid UTF-8 text")
        if (
            not isinstance(self.priority, int)
            or isinstance(self.priority, bool)
            or not -(2**63) <= self.priority < 2**63
        ):
            raise ConfigurationError(f"priority must be a 64-bit integer, not {self.priority!r}")
        if (
            not isinstance(self.max_attempts, int)
            or isinstance(self.max_attempts, bool)
            or not 1 <= self.max_attempts <= MAX_ATTEMPTS
        ):
            raise ConfigurationError(
                f"max_attempts must be 1 or more, at most {MAX_ATTEMPTS}, not {self.max_attempts!r}"
            )
        if self.timeout is not None:
            checked_seconds("timeout", self.timeout, positive=True)
        if self.delay is not None:
            checked_seconds("delay", self.delay)
        checked_seconds("backoff", self.backoff)
        checked_seconds("max_backoff", self.max_backoff)


def default_task_name(func: Callable[..., Any]) -> str:
    """``module.qualname``; a script run as ``__main__`` is named after its file."""
    module = func.__module__
    if module in ("__main__", "__mp_main__"):
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        module = Path(main_file).stem if main_file else module
    return f"{module}.{func.__qualname__}"


class ProcessRunner(Protocol):
    """A task function that runs processes of its own, each in its process group (the shell
    runner). The worker has it stop them all when it stops at once; ``published`` is the
    table of their process groups a worker process shares with its supervisor, which kills
    them if that process dies."""

    published: Any

    def stop_all(self) -> None: ...


class Task(Generic[P, R]):
    """A function registered with an app. Call it directly, or ``submit`` it as a job.

    Typed by the function: ``add.submit(1, "x")`` for ``add(x: int, y: int)`` is a type
    error to mypy and pyright, as well as an ArgumentError when it runs."""

    def __init__(
        self,
        app: JobQ,
        func: Callable[P, R],
        *,
        name: str | None = None,
        options: TaskOptions,
        on_success: Callback | None = None,
        on_failure: Callback | None = None,
        stops_itself: bool = False,
        batchable: bool = True,
        processes: ProcessRunner | None = None,
    ) -> None:
        self.app = app
        self.func = func
        # What the worker must know of a task, beyond its function and options:
        # stops_itself: it ends itself at its timeout and when cancelled (a command's
        # process group is killed by its runner), so the watchdog sets it no deadline;
        # batchable: quick jobs of it may run one after another on one thread (not commands:
        # each has its process and its log); processes: the processes it starts, if any.
        self.stops_itself = stops_itself
        self.batchable = batchable
        self.processes = processes
        self.name = name or default_task_name(func)
        self.defaults = options
        self.on_success = on_success
        self.on_failure = on_failure
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    def __repr__(self) -> str:
        return f"<Task {self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    # -- argument checking -----------------------------------------------------------------

    def takes_text(self, position: int) -> bool:
        """Whether positional parameter ``position`` is hinted ``str`` (or ``str | None``):
        the command line then passes its argument as the text given, never as JSON."""
        parameters = [
            parameter
            for parameter in self._signature.parameters.values()
            if parameter.kind
            in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        ]
        if position >= len(parameters):
            return False
        hint = self._hints.get(parameters[position].name)
        return hint is str or hint in (typing.Optional[str], str | None)  # noqa: UP045

    @cached_property
    def _signature(self) -> inspect.Signature:
        return inspect.signature(self.func)

    @cached_property
    def _hints(self) -> dict[str, Any]:
        try:
            hints = typing.get_type_hints(self.func)
        except Exception:  # noqa: BLE001 - unresolvable hints: validate nothing, bind only
            hints = {}
        hints.pop("return", None)
        return hints

    @cached_property
    def _adapters(self) -> dict[str, TypeAdapter[Any]]:
        # pydantic is imported here, on the first argument that needs checking: a worker whose
        # tasks take plain ints and strings never imports it (about 50 ms of start-up).
        from pydantic import TypeAdapter

        adapters = {}
        for name, hint in self._hints.items():
            if hint is typing.Any:
                continue
            try:
                adapters[name] = TypeAdapter(hint)
            except Exception:  # noqa: BLE001 - a hint pydantic cannot check: bind only
                continue
        return adapters

    @cached_property
    def _checked(self) -> frozenset[str]:
        """Parameters with a type hint to check (not ``Any``): only their values may need
        pydantic."""
        return frozenset(name for name, hint in self._hints.items() if hint is not typing.Any)

    @cached_property
    def _exact(self) -> dict[str, type]:
        """Parameters hinted as a plain int, str or float: a value of exactly that type is
        already what validation would return, so the hot path skips pydantic for it."""
        return {name: hint for name, hint in self._hints.items() if hint in (int, str, float)}

    @cached_property
    def _positional(self) -> tuple[list[str], int] | None:
        """(names, how many are required) when every parameter is a plain positional-or-keyword
        one: then positional arguments alone need no ``Signature.bind`` (the hot path of
        submit and execute)."""
        parameters = list(self._signature.parameters.values())
        if any(p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters):
            return None
        required = sum(1 for p in parameters if p.default is inspect.Parameter.empty)
        return [p.name for p in parameters], required

    def _fast(
        self, args: Iterable[Any], kwargs: dict[str, Any], convert: Callable[..., Any]
    ) -> list[Any] | None:
        """Positional arguments of a plain signature, converted; None when it does not apply
        (then ``Signature.bind`` decides, and words any error)."""
        plain = self._positional
        if plain is None or kwargs or not isinstance(args, (list, tuple)):
            return None
        names, required = plain
        if not required <= len(args) <= len(names):
            return None
        exact = self._exact
        checked = self._checked
        values = list(args)
        for index, value in enumerate(values):
            name = names[index]
            if type(value) is not exact.get(name) and name in checked:
                values[index] = self._one(name, value, convert)
        return values

    def bind(self, args: Iterable[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Check arguments against the signature and type hints; return the validated values.

        Raises ArgumentError naming the parameter that does not fit.
        """
        fast = self._fast(args, kwargs, self._check)
        if fast is not None:
            return fast, {}
        bound = self._bind(args, kwargs)
        self._convert(bound, self._check)
        return list(bound.args), dict(bound.kwargs)

    def to_json_values(
        self, args: Iterable[Any], kwargs: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """Check arguments like ``bind``; return them in JSON form (datetimes as ISO text,
        models as dicts...), ready to store."""

        fast = self._fast(args, kwargs, self._dump)
        if fast is not None:
            return fast, {}
        bound = self._bind(args, kwargs)
        self._convert(bound, self._dump)
        return list(bound.args), dict(bound.kwargs)

    def _dump(self, adapter: TypeAdapter[Any], name: str, value: Any) -> Any:
        return adapter.dump_python(self._check(adapter, name, value), mode="json")

    def _bind(self, args: Iterable[Any], kwargs: dict[str, Any]) -> inspect.BoundArguments:
        try:
            return self._signature.bind(*args, **kwargs)
        except TypeError as error:
            raise ArgumentError(f"arguments do not fit {self.name}: {error}") from None

    def _convert(
        self, bound: inspect.BoundArguments, convert: Callable[[TypeAdapter[Any], str, Any], Any]
    ) -> None:
        """Replace each annotated argument (each item of *args and **kwargs) by convert()."""
        checked = self._checked
        parameters = self._signature.parameters
        for name, value in bound.arguments.items():
            if name not in checked:
                continue
            kind = parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                value = tuple(self._one(name, item, convert) for item in value)
            elif kind is inspect.Parameter.VAR_KEYWORD:
                value = {key: self._one(name, item, convert) for key, item in value.items()}
            else:
                value = self._one(name, value, convert)
            bound.arguments[name] = value

    def _one(
        self, name: str, value: Any, convert: Callable[[TypeAdapter[Any], str, Any], Any]
    ) -> Any:
        """One checked argument converted (a plain value of its exact type, as it is)."""
        if type(value) is self._exact.get(name):
            return value
        adapter = self._adapters.get(name)
        return value if adapter is None else convert(adapter, name, value)

    def _check(self, adapter: TypeAdapter[Any], name: str, value: Any) -> Any:
        from pydantic import ValidationError  # imported already: the adapter is pydantic's

        try:
            return adapter.validate_python(value)
        except ValidationError as error:
            first = error.errors()[0]
            raise ArgumentError(
                f"argument {name!r} of {self.name}: {first['msg']} (got {value!r:.60})"
            ) from None

    # -- submitting ------------------------------------------------------------------------

    def options(self, **overrides: Any) -> TaskCall[P, R]:
        """Override queue, priority, delay, max_attempts or timeout for some calls."""
        return TaskCall(self, self.defaults).options(**overrides)

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        return TaskCall(self, self.defaults).submit(*args, **kwargs)

    def submit_many(self, calls: Iterable[Any]) -> list[Job]:
        return TaskCall(self, self.defaults).submit_many(calls)


class TaskCall(Generic[P, R]):
    """A task with per-call options, made by ``Task.options``."""

    def __init__(self, task: Task[P, R], options: TaskOptions) -> None:
        self.task = task
        self.settings = options

    def options(self, **overrides: Any) -> TaskCall[P, R]:
        per_task = {"backoff", "max_backoff"} & set(overrides)
        if per_task:
            raise ConfigurationError(
                f"{', '.join(sorted(per_task))} is set per task (@app.task(backoff=...)), "
                "not per call"
            )
        unknown = set(overrides) - set(TaskOptions.__dataclass_fields__)
        if unknown:
            raise ConfigurationError(
                f"unknown option(s) {', '.join(sorted(unknown))} for {self.task.name}"
            )
        return TaskCall(self.task, replace(self.settings, **overrides))

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        return self.task.app._submit_checked(self.task, [(list(args), kwargs)], self.settings)[0]

    def submit_many(self, calls: Iterable[Any]) -> list[Job]:
        """Submit many jobs in one transaction.

        Each call is a tuple or list of positional arguments, or a dict of keyword arguments.
        """
        pairs: list[tuple[list[Any], dict[str, Any]]] = []
        for index, call in enumerate(calls):
            if isinstance(call, dict):
                pairs.append(([], call))
            elif isinstance(call, (list, tuple)):
                pairs.append((list(call), {}))
            else:
                raise ArgumentError(
                    f"submit_many item {index} is a {type(call).__name__}; "
                    "give a tuple of arguments or a dict of keyword arguments"
                )
        return self.task.app._submit_checked(self.task, pairs, self.settings)
