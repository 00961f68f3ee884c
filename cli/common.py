"""What every command shares: finding the database and the app, parsing values, output."""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import sys
from typing import Any

import click

from jobq import JobQ
from jobq.errors import ConfigurationError, JobQError, PayloadError
from jobq.models import MAX_SECONDS, MAX_SECONDS_TEXT
from jobq.payload import MAX_DEPTH, is_storable_text
from jobq.store import DEFAULT_DATABASE

# -- parameter types: each refuses a bad value as click parses it, naming the option ------


class Whole(click.ParamType):
    """A whole number between ``low`` and ``high``; the range is said when a value is refused,
    not printed in every help line."""

    name = "integer"

    def __init__(self, low: int, high: int, why: str) -> None:
        self.low, self.high, self.why = low, high, why

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a whole number", param, ctx)
        if not self.low <= number <= self.high:
            self.fail(f"{number} is out of range: {self.why}", param, ctx)
        return number


# SQLite stores 64-bit integers: larger ids, priorities or limits are refused by click.
JOB_ID = Whole(1, 2**63 - 1, "job ids are whole numbers from 1")
INTEGER64 = Whole(-(2**63), 2**63 - 1, "it must fit in 64 bits (-2**63 to 2**63 - 1)")
LIMIT = Whole(1, 2**63 - 1, "at least 1")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_SYNTAX = f"seconds (90, 1.5) or 30s, 15m, 12h, 7d, 2w; {MAX_SECONDS_TEXT} at most"


def parse_duration(text: str) -> float:
    """``90``, ``1.5``, ``90s``, ``15m``, ``12h``, ``7d``, ``2w`` to seconds.

    A plain number may be written as Python writes floats (``1e3``, ``-1``: the range is the
    caller's to check); nan and inf are refused, since no wait, sleep or deadline takes them.
    Raises ValueError saying what is wrong.
    """
    match = _DURATION.match(text)
    if match:
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        try:
            seconds = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a duration like 30s, 15m, 12h or 7d") from None
    if not math.isfinite(seconds):  # nan, inf, or 400 digits of 9s
        raise ValueError(f"{text!r} is not a finite number of seconds")
    return seconds


class Seconds(click.ParamType):
    """Every option that takes a time: seconds or a duration with a unit, finite, from a
    minimum to MAX_SECONDS (100 years). One type, so each such option takes the same syntax
    and refuses nan, inf and absurd values as it is parsed."""

    name = "duration"

    def __init__(self, minimum: float = 0.0, *, positive: bool = False) -> None:
        self.minimum = minimum
        self.positive = positive  # above the minimum, not at it

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            text, seconds = str(value), float(value)  # a default, given as a number
        else:
            text = str(value)
            try:
                seconds = parse_duration(text)
            except ValueError as error:
                self.fail(str(error), param, ctx)
        if seconds < self.minimum or (self.positive and seconds == self.minimum):
            bound = "more than" if self.positive else "at least"
            self.fail(f"{text!r} is not {bound} {self.minimum:g} seconds", param, ctx)
        if seconds > MAX_SECONDS:
            self.fail(f"{text!r} is more than {MAX_SECONDS_TEXT}", param, ctx)
        return seconds


SECONDS = Seconds()
POSITIVE_SECONDS = Seconds(positive=True)


class Text(click.ParamType):
    """A name or a location from the command line, refused unless it is UTF-8 text.

    Python hands over argument bytes that are not UTF-8 as lone surrogates ('\\udcff'), which
    neither database can store: refused here, naming the option, before anything is opened.
    ``empty=False`` also refuses '' (click ignores an empty environment variable, so an empty
    value was given on the command line: falling back on a default would hide the mistake).
    """

    name = "text"

    def __init__(self, *, empty: bool = True) -> None:
        self.empty = empty

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not is_storable_text(text):
            raw = text.encode("utf-8", "surrogateescape")
            self.fail(f"{raw!r} is not valid UTF-8 text", param, ctx)
        if not self.empty and not text:
            self.fail("it is empty (leave the option out for the default)", param, ctx)
        return text


TEXT = Text()
LOCATION = Text(empty=False)  # --db


DB_HELP = (
    "Database: a path, a sqlite:///path?synchronous=full URL or a"
    " postgresql://user@host/dbname URL. [env JOBQ_DB; default ./jobq.db]"
)
APP_HELP = "The app as MODULE:ATTR (ATTR defaults to 'app'). [env JOBQ_APP]"

# The group's --db reads JOBQ_DB; a command's own --db (same meaning, placed after the
# command name) does not, so that an explicit `jobq --db X cmd` is never overridden by the env.
global_db_option = click.option(
    "--db", "database", envvar="JOBQ_DB", type=LOCATION, metavar="PATH|URL", help=DB_HELP
)
db_option = click.option("--db", "database", type=LOCATION, metavar="PATH|URL", help=DB_HELP)
app_option = click.option(
    "--app", "app_spec", envvar="JOBQ_APP", metavar="MODULE:ATTR", help=APP_HELP
)


class JobQGroup(click.Group):
    """Turns the library's errors into one clear line and a non-zero exit, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except JobQError as error:
            raise click.ClickException(str(error)) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


def load_app(spec: str) -> JobQ:
    """Import ``module:attr`` (the current directory is importable) and return the JobQ."""
    module_name, _, attribute = spec.partition(":")
    attribute = attribute or "app"
    if not module_name or not re.fullmatch(r"[\w.]+", module_name):
        raise ConfigurationError(f"bad --app {spec!r}: expected MODULE:ATTR, like tasks:app")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise ConfigurationError(
                f"cannot import {module_name!r} (from --app {spec}): no such module here"
            ) from None
        raise ConfigurationError(f"importing {module_name!r} failed: {error}") from None
    except Exception as error:  # noqa: BLE001 - the user's module: any error, one line
        raise ConfigurationError(
            f"importing {module_name!r} failed: {type(error).__name__}: {error}"
        ) from None
    app = getattr(module, attribute, None)
    if app is None:
        raise ConfigurationError(f"module {module_name!r} has no attribute {attribute!r}")
    if not isinstance(app, JobQ):
        raise ConfigurationError(f"{spec} is a {type(app).__name__}, not a jobq.JobQ app")
    return app


def database_of(ctx: click.Context, database: str | None) -> str | None:
    """A command's own --db, else the global --db, which falls back on JOBQ_DB."""
    return database or (ctx.obj or {}).get("database")


def chosen_database(ctx: click.Context, database: str | None) -> str:
    """The database a read or manage command works on: --db, else JOBQ_DB, else ./jobq.db."""
    return database_of(ctx, database) or os.environ.get("JOBQ_DB") or DEFAULT_DATABASE


def open_existing(ctx: click.Context, database: str | None, app_spec: str | None) -> JobQ:
    """The app for a read or manage command: the one --app (or JOBQ_APP) names, on its own
    database unless --db names another, else a bare one on --db, JOBQ_DB or ./jobq.db. A
    missing database file is an error, never created."""
    app = open_app(ctx, database, app_spec)
    app.create = False
    return app


def open_app(ctx: click.Context, database: str | None, app_spec: str | None = None) -> JobQ:
    """The app to work with: the one named by --app, or a bare one.

    A --db given on the command line wins over the app's own database. JOBQ_DB does not
    override an app that names its database in code (``JobQ("tasks.db")``): the worker would
    otherwise serve another database than the code that submits; a note says so.
    """
    chosen = database_of(ctx, database)
    if not app_spec:
        return JobQ(chosen) if chosen else JobQ()
    app = load_app(app_spec)
    if chosen:
        from_env = not database and (ctx.obj or {}).get("database_from_env", False)
        if from_env and app.database_named and app.database != chosen:
            click.echo(
                f"note: using the app's database {app.database}, not JOBQ_DB={chosen} "
                "(pass --db to choose)",
                err=True,
            )
        else:
            app.use_database(chosen)
    return app


def parse_argument(text: str) -> Any:
    """A command-line job argument: JSON when it parses as JSON, else the text itself."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError:
        return text
    except RecursionError:
        raise PayloadError(f"an argument is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as error:  # an integer with more digits than Python will parse
        raise PayloadError(f"an argument is not a usable number: {error}") from None


def parse_json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not valid JSON: {error}", param_hint=option) from None
    except RecursionError:
        raise click.BadParameter(
            f"nested more than {MAX_DEPTH} levels deep", param_hint=option
        ) from None
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object like '{\"x\": 1}'", param_hint=option)
    return value


def _refuse_constant(name: str) -> Any:
    raise ConfigurationError(f"{name} is not valid JSON (JSON has no NaN or Infinity)")


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False, default=str))
