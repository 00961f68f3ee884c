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
    if depth > MAX_DEPTH:
        raise PayloadError(f"{where} is nested more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PayloadError(f"{where} is {value!r}, which JSON cannot represent")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_json(item, f"{where}[{index}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise PayloadError(
                    f"{where} has a non-string key {key!r}; JSON object keys must be strings"
                )
            check_json(item, f"{where}[{key!r}]", depth + 1)
        return
    raise PayloadError(
        f"{where} is a {type(value).__name__} ({_short(value)}), which is not JSON "
        "(use str, int, float, bool, None, list or dict)"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def encode(value: Any, where: str) -> str:
    check_json(value, where)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_arguments(
    args: Any, kwargs: Any, max_payload: int = DEFAULT_MAX_PAYLOAD
) -> tuple[str, str]:
    """Encode a job's arguments; refuse non-JSON values and payloads over ``max_payload``."""
    if not isinstance(args, (list, tuple)):
        raise PayloadError(f"args must be a list, not {type(args).__name__}")
    if not isinstance(kwargs, dict):
        raise PayloadError(f"kwargs must be an object/dict, not {type(kwargs).__name__}")
    args_text = encode(list(args), "args")
    kwargs_text = encode(kwargs, "kwargs")
    size = len(args_text.encode()) + len(kwargs_text.encode())
    if size > max_payload:
        raise PayloadError(
            f"arguments are {size} bytes of JSON, over the limit of {max_payload} bytes"
        )
    return args_text, kwargs_text
