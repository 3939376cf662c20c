"""The sandbox's answers are the bytes ``json.dumps(separators=(",", ":"), ensure_ascii=False)``
wrote before orjson took over their encoding (``sandbox.app._dumps``), and its cached form-key
parser reads keys as the regex did."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from sandbox.app import _dumps
from sandbox.forms import split_key


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
