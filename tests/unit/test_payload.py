from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobq.errors import PayloadError
from jobq.payload import MAX_DEPTH, check_json, decode, encode_arguments


def test_json_values_encode_compactly() -> None:
    args, kwargs = encode_arguments((1, "é", [True, None], {"a": 1.5}), {"k": "v"})
    assert json.loads(args) == [1, "é", [True, None], {"a": 1.5}]
    assert kwargs == '{"k":"v"}'


@given(st.lists(st.one_of(st.integers(), st.text()), max_size=6))
def test_plain_ints_and_strings_encode_exactly_as_json_does(values: list[object]) -> None:
    args, _ = encode_arguments(values, {})
    assert args == json.dumps(values, separators=(",", ":"), ensure_ascii=False)
    assert json.loads(args) == values


@pytest.mark.parametrize(
    "text", ['[1,"a",{"b":[true,null,1.5]}]', '{"k":"v"}', " [1, 2] ", "[1, 2]", "7", '"x"']
)
def test_stored_text_decodes_as_json_loads_would(text: str) -> None:
    assert decode(text) == json.loads(text)
    assert decode(text.encode()) == json.loads(text)  # a BLOB written by another program


@pytest.mark.parametrize("text", ["", "[1,", "[1] x", "{'a': 1}"])
def test_bad_stored_text_raises_what_json_loads_raises(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as raised:
        decode(text)
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    assert str(raised.value) == str(expected.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({1, 2}, "args\\[0\\] is a set"),
        (b"raw", "args\\[0\\] is a bytes"),
        (math.nan, "nan"),
        (math.inf, "inf"),
        (object(), "is a object"),
        ({1: "x"}, "non-string key 1"),
        ([{"deep": [1, {2, 3}]}], "args\\[0\\]\\[0\\]\\['deep'\\]\\[1\\] is a set"),
    ],
)
def test_non_json_values_are_refused_naming_where(value: object, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        encode_arguments([value], {})


def test_payload_over_the_limit_is_refused() -> None:
    with pytest.raises(PayloadError, match="over the limit of 100 bytes"):
        encode_arguments(["x" * 200], {}, max_payload=100)


def test_absurd_nesting_is_refused_without_recursion_error() -> None:
    value: list = []
    for _ in range(10_000):
        value = [value]
    with pytest.raises(PayloadError, match=f"more than {MAX_DEPTH} levels"):
        encode_arguments([value], {})


def test_args_and_kwargs_must_be_a_list_and_a_dict() -> None:
    with pytest.raises(PayloadError, match="args must be a list"):
        encode_arguments("abc", {})  # type: ignore[arg-type]
    with pytest.raises(PayloadError, match="kwargs must be"):
        encode_arguments([], [])  # type: ignore[arg-type]


def test_nesting_is_limited_at_every_level_and_lone_surrogates_are_refused() -> None:
    value: object = 1
    for _ in range(MAX_DEPTH):
        value = [value]
    check_json(value, "args")  # 64 levels of lists around a number: fine
    with pytest.raises(PayloadError, match="nested more than 64 levels deep"):
        check_json([value], "args")
    with pytest.raises(PayloadError, match="not valid Unicode"):
        encode_arguments(["\ud800"], {})
