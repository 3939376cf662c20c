"""The sandbox's answers are the bytes ``json.dumps(separators=(",", ":"), ensure_ascii=False)``
wrote before orjson took over their encoding (``sandbox.app._dumps``), its cached form-key
parser reads keys as the regex did, and its query and form parsers give ``parse_qsl``'s pairs."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.app import _dumps
from sandbox.forms import parse_form, parse_query, split_key


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize(
    "data",
    [
        {"order": {"id": "o-1", "total": 1250, "paid": True, "note": None, "rate": 0.1}},
        {"text": 'ü ø 😀 \u2028 \x7f \x01 " \\ / <script>', "big": 1e16, "neg": -0.0},
        {"list": [1, 2**63 - 1, -(2**63), [], {}], "f": 1.0, "g": 123456789.123},
        {"message": "x" * 5000},
    ],
)
def test_answers_are_byte_for_byte_what_json_wrote(data: Any) -> None:
    assert _dumps(data) == _json(data)


@pytest.mark.parametrize("data", [{1: "int key"}, {"huge": 2**70}])
def test_what_orjson_refuses_goes_through_json(data: Any) -> None:
    assert _dumps(data) == _json(data)


_BRACKETS = re.compile(r"^([A-Za-z0-9_]+)((?:\[[^\[\]]*\])*)$")


@pytest.mark.parametrize(
    "key",
    ["id", "shipping_address[city]", "order_line_items[id][0]", "a[b][c][]", "a[", "a]b", "", "ä"],
)
def test_split_key_reads_keys_as_the_regex_did(key: str) -> None:
    match = _BRACKETS.match(key)
    expected = None
    if match is not None:
        expected = (match.group(1), tuple(re.findall(r"\[([^\[\]]*)\]", match.group(2))))
    assert split_key(key) == expected
    assert split_key(key) == expected  # and again, from the cache


_QUERY_PIECES = st.sampled_from(
    [
        *("%5B", "%5D", "%22", "%2C", "%3A", "%20", "%2c", "%25", "%C3%B3", "%E2%82", "%ZZ"),
        *("%", "%2", "+", "=", "&", "[", '"', "a", "Z", "0", "é", "\u20ac", "\xff", "%7F"),
        "%F0%9F%98%80",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_QUERY_PIECES, max_size=40).map("".join))
def test_query_and_form_parsing_is_parse_qsls(text: str) -> None:
    """``parse_query``/``parse_form`` (escapes replaced by ``str.replace`` first, results
    cached) give ``parse_qsl(keep_blank_values=True)``'s pairs, twice (the second time from
    the cache)."""
    raw = text.encode("latin-1", "replace")
    expected_query = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    body = text.encode("utf-8")
    expected_form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    for _ in range(2):
        assert parse_query(raw) == expected_query
        assert parse_form(body) == expected_form
