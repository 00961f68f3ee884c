"""JSON-only payloads: what may be stored as a job's arguments or result.

Never pickle. A payload is checked before it is encoded so that the error names the
offending value and where it sits, instead of a generic encoder message.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import PayloadError

DEFAULT_MAX_PAYLOAD = 1024 * 1024  # bytes of JSON for args and kwargs together
MAX_DEPTH = 64  # nesting levels; deeper structures are refused, never a RecursionError


def check_json(value: Any, where: str, depth: int = 0) -> None:
    """Raise PayloadError unless ``value`` round-trips through JSON unchanged (tuples aside)."""
    problem = _problem(value, depth)
    if problem is not None:
        path, message = problem
        raise PayloadError(f"{where}{''.join(reversed(path))} {message}")


_SCALARS = (str, bool, int, type(None))


def _problem(value: Any, depth: int) -> tuple[list[str], str] | None:
    """What is wrong with ``value`` and where (path parts, innermost first), or None.

    The path is only built for the value that fails: checking a good payload formats nothing.
    """
    if depth > MAX_DEPTH:
        return [], f"is nested more than {MAX_DEPTH} levels deep"
    if isinstance(value, _SCALARS):
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return [], f"is {value!r}, which JSON cannot represent"
    if isinstance(value, (list, tuple)):
        scalars_fit = depth < MAX_DEPTH  # a scalar one level down is still within the limit
        for index, item in enumerate(value):
            if scalars_fit and isinstance(item, _SCALARS):
                continue
            problem = _problem(item, depth + 1)
            if problem is not None:
                problem[0].append(f"[{index}]")
                return problem
        return None
    if isinstance(value, dict):
        scalars_fit = depth < MAX_DEPTH
        for key, item in value.items():
            if not isinstance(key, str):
                return [], f"has a non-string key {key!r}; JSON object keys must be strings"
            if scalars_fit and isinstance(item, _SCALARS):
                continue
            problem = _problem(item, depth + 1)
            if problem is not None:
                problem[0].append(f"[{key!r}]")
                return problem
        return None
    return [], (
        f"is a {type(value).__name__} ({_short(value)}), which is not JSON "
        "(use str, int, float, bool, None, list or dict)"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# One encoder, built once: json.dumps with options builds a new one on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_QUOTE = json.encoder.encode_basestring  # a str as a JSON string (C), as _ENCODER writes it


# The C scanner that json.loads ends in (typeshed does not declare the attribute).
_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def decode(text: str) -> Any:
    """A stored payload (JSON text) as Python values.

    The scanner alone, on a job's hot path: ``json.loads`` reaches the same scanner through
    three Python calls and a regular expression. Anything it does not take whole (leading
    whitespace, bad text) goes to ``json.loads``, for the same value or the same error.
    """
    try:
        value, end = _SCAN(text, 0)
    except (StopIteration, ValueError, TypeError):  # TypeError: bytes, which loads takes
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value


def _flat(values: list[Any] | tuple[Any, ...]) -> str | None:
    """The JSON text of a list of plain ints and strs, or None if it holds anything else.

    The usual arguments (an id, a name) need neither the walk of ``check_json`` nor the
    encoder's machinery; the text is the encoder's, byte for byte. Exact types only: a bool
    or an int subclass such as an IntEnum takes the general path.
    """
    parts = []
    for value in values:
        kind = type(value)
        if kind is int:
            parts.append(int.__repr__(value))
        elif kind is str:
            parts.append(_QUOTE(value))
        else:
            return None
    return "[" + ",".join(parts) + "]"


def encode(value: Any, where: str) -> str:
    if value is None:  # most tasks return nothing: no checks, no encoder
        return "null"
    check_json(value, where)
    text = _ENCODER.encode(value)
    if not text.isascii():  # (C, one pass) only text beyond ASCII can hold a lone surrogate
        _check_unicode(text, value, where)
    return text


def _check_unicode(text: str, value: Any, where: str) -> None:
    """Refuse JSON text that is not valid Unicode: a lone surrogate, such as
    ``os.listdir()`` returns for a file name that is not UTF-8, cannot be stored by SQLite
    or PostgreSQL. The error names where it sits."""
    try:
        text.encode()
    except UnicodeEncodeError:
        path = _surrogate_path(value) or []
        raise PayloadError(
            f"{where}{''.join(reversed(path))} holds text that is not valid Unicode (a lone "
            "surrogate, as os.listdir() gives for a file name that is not UTF-8); decode "
            "such bytes with errors='replace' or return them base64-encoded"
        ) from None


def is_storable_text(text: str) -> bool:
    """Whether a name can be stored: text that encodes as UTF-8. A lone surrogate, as Python
    makes of command-line bytes that are not UTF-8 (b'\\xff' becomes '\\udcff'), does not."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _surrogate_path(value: Any) -> list[str] | None:
    """Where in ``value`` a str that does not encode as UTF-8 sits (innermost first)."""
    if isinstance(value, str):
        return None if is_storable_text(value) else []
    items: Any = ()
    if isinstance(value, dict):
        for key in value:
            if not is_storable_text(key):
                return [f" key {key!r}"]
        items = ((f"[{key!r}]", item) for key, item in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"[{index}]", item) for index, item in enumerate(value))
    for step, item in items:
        path = _surrogate_path(item)
        if path is not None:
            path.append(step)
            return path
    return None


def encode_arguments(
    args: Any, kwargs: Any, max_payload: int = DEFAULT_MAX_PAYLOAD
) -> tuple[str, str]:
    """Encode a job's arguments; refuse non-JSON values and payloads over ``max_payload``."""
    if not isinstance(args, (list, tuple)):
        raise PayloadError(f"args must be a list, not {type(args).__name__}")
    if not isinstance(kwargs, dict):
        raise PayloadError(f"kwargs must be an object/dict, not {type(kwargs).__name__}")
    args_text = _flat(args)
    if args_text is None:
        args_text = encode(list(args), "args")
    kwargs_text = encode(kwargs, "kwargs") if kwargs else "{}"
    try:
        size = len(args_text.encode()) + len(kwargs_text.encode())
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") is not text SQLite can store
        raise PayloadError("the arguments contain text that is not valid Unicode") from None
    if size > max_payload:
        raise PayloadError(
            f"arguments are {size} bytes of JSON, over the limit of {max_payload} bytes"
        )
    return args_text, kwargs_text
