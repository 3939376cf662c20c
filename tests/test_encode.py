"""Form encoding matches the official chargebee SDK's serializer on the wire."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from chargebee import util as sdk_util
from chargebee.request import lowercase_keys as sdk_lowercase_keys
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.api.encode import form_body, form_value, to_form, to_query

NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyzAB_", min_size=1, max_size=8)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
)
FLAT = st.dictionaries(NAMES, SCALARS, max_size=4)
OPERATOR = st.dictionaries(
    st.sampled_from(["is", "in", "not_in", "between", "after"]),
    st.one_of(SCALARS, st.lists(st.text(max_size=5) | st.integers(0, 99), max_size=3)),
    min_size=1,
    max_size=2,
)
VALUES = st.one_of(
    SCALARS,
    FLAT,
    st.lists(FLAT, max_size=3),
    st.lists(SCALARS, max_size=3),
    OPERATOR,
    st.dictionaries(NAMES, FLAT, max_size=2),
)
PARAMS = st.dictionaries(NAMES, VALUES, max_size=6)


def sdk_wire(params: dict[str, Any]) -> bytes:
    """Body bytes the SDK's serializer produces once httpx form-encodes it (as the SDK posts it)."""
    serialized = sdk_util.serialize(sdk_lowercase_keys(params), None, None, {})
    return httpx.Request("POST", "http://127.0.0.1/", data=dict(serialized)).content


def ours_wire(params: dict[str, Any]) -> bytes:
    """Body bytes from our encoder."""
    return urlencode(to_form(params)).encode()


@settings(max_examples=400, deadline=None)
@given(PARAMS)
def test_to_form_matches_sdk_serializer_on_the_wire(params: dict[str, Any]) -> None:
    """For random nested params, our body equals the SDK's body byte for byte."""
    assert ours_wire(params) == sdk_wire(params)


def test_import_order_shape_is_deep_object_and_column_major() -> None:
    """A realistic import_order payload gets deepObject keys and column-major line items."""
    params = {
        "id": "ord-1",
        "total": 1250,
        "is_gifted": False,
        "note": None,
        "shipping_address": {"city": "Köln", "country": "DE"},
        "order_line_items": [{"id": "li1", "status": "shipped"}, {"id": "li2", "status": "queued"}],
    }
    assert to_form(params) == [
        ("id", "ord-1"),
        ("total", "1250"),
        ("is_gifted", "false"),
        ("note", ""),
        ("shipping_address[city]", "Köln"),
        ("shipping_address[country]", "DE"),
        ("order_line_items[id][0]", "li1"),
        ("order_line_items[status][0]", "shipped"),
        ("order_line_items[id][1]", "li2"),
        ("order_line_items[status][1]", "queued"),
    ]
    assert ours_wire(params) == sdk_wire(params)


def test_to_form_rejects_a_bare_scalar_at_the_top() -> None:
    """Like the SDK, a list of scalars must sit under a key, not at the root level."""
    with pytest.raises(TypeError):
        to_form([1, 2])  # type: ignore[arg-type]


def test_to_query_encodes_filters_as_documented() -> None:
    """List filters: field[op]=value, in/between lists as JSON arrays, plain params pass through."""
    fields = to_query(
        {
            "status": {"is": "queued"},
            "id": {"in": ["a", "b"]},
            "created_at": {"between": [1700000000, 1700000100]},
            "sort_by": {"asc": "created_at"},
            "include_deleted": True,
            "limit": 100,
            "updated_at[after]": 1700000000,
        }
    )
    assert fields == [
        ("status[is]", "queued"),
        ("id[in]", '["a","b"]'),
        ("created_at[between]", "[1700000000,1700000100]"),
        ("sort_by[asc]", "created_at"),
        ("include_deleted", "true"),
        ("limit", "100"),
        ("updated_at[after]", "1700000000"),
    ]


def test_to_query_nests_export_filters() -> None:
    """Export filters nest one level deeper: order[status][in]=["queued"]."""
    fields = to_query({"order": {"status": {"in": ["queued"]}, "updated_at": {"after": 5}}})
    assert fields == [("order[status][in]", '["queued"]'), ("order[updated_at][after]", "5")]
    assert parse_qsl(urlencode(fields)) == fields


def test_form_value_scalars() -> None:
    """Scalars: bools lower-case, None blank, ints decimal."""
    assert [form_value(v) for v in (True, False, None, 7, "x")] == ["true", "false", "", "7", "x"]


WIRE_CORPUS = [
    "",
    "plain",
    "A-Z_a.z~0-9",
    "two words",
    " lead and trail ",
    "a&b=c+d%e[f]g",
    "shipping_address[city]",
    "Kraków Zoë",
    "名前 ✓ 🎉",
    "tab\tnew\nline\r",
    "/?#:@!$'()*,;",
    "%20%2B+",
]
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=16)


@pytest.mark.parametrize("name", WIRE_CORPUS)
@pytest.mark.parametrize("value", WIRE_CORPUS)
def test_form_body_is_byte_for_byte_urlencode_on_a_corpus(name: str, value: str) -> None:
    """The fast body encoder gives exactly urlencode's bytes (unicode, spaces, &=+%[] ...)."""
    fields = [(name, value), ("id", value), (value, "x")]
    assert form_body(fields) == urlencode(fields).encode()
    assert form_body(fields) == form_body(fields)  # a second time, from the name cache


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(TEXT, TEXT), max_size=8))
def test_form_body_is_byte_for_byte_urlencode_for_any_text(fields: list[tuple[str, str]]) -> None:
    """For any field names and values, the fast body encoder gives urlencode's bytes."""
    assert form_body(fields) == urlencode(fields).encode()


@settings(max_examples=200, deadline=None)
@given(PARAMS)
def test_form_body_of_nested_params_is_the_sdk_wire(params: dict[str, Any]) -> None:
    """What the client posts (``form_body(to_form(p))``) is the SDK's body byte for byte."""
    assert form_body(to_form(params)) == sdk_wire(params)
