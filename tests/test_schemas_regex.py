"""The email and order-id checks run in RE2 over whole columns; they accept exactly what the
reference Python patterns (``re.match`` with ``EMAIL_PATTERN`` / ``LOOKUP_ID_PATTERN``) accept.

Each test validates a frame through the real schema (pandera, lazy) and compares the rows it
rejects with the rows the Python pattern rejects: a new check accepting a value the old one
refused (or the reverse) fails here.
"""

from __future__ import annotations

import re

import pandas as pd
import pandera.pandas as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import check_rule, import_order_schema
from schemas.import_order import EMAIL_PATTERN, LOOKUP_ID_PATTERN

SPACES = [c for c in map(chr, range(0x3001)) if c.isspace()]
"""Every character Python's ``\\s`` matches (29 of them)."""
NEAR_SPACES = ["\u180e", "\u200b", "\u2060", "\ufeff", "\x00", "\x7f", "\x80", "\x9f"]
"""Characters that look like spaces or are controls but are not ``\\s``."""

EMAIL_CORPUS = [
    "a@b.de",
    "first.last@sub.example.co.uk",
    "a@b.c",
    "a@b.c\n",  # Python's $ matches before a final newline: accepted
    "a@b.c\n\n",
    "a@b.c\r\n",
    "\na@b.c",
    "a@b.c.",
    "a@b..c",
    "a@.c",
    "a.@b.c",
    "@b.c",
    "a@",
    "a@b",
    "a@b.",
    "a@@b.c",
    "a@b@c.d",
    "a b@c.d",
    "ab@c.d e",
    "müller@beispiel.de",
    "用户@例子.中国",
    "a@b.c\u00a0",
    "\u3000a@b.c",
    "a@b.c\u2028",
    "a@b\u200b.c",
    "a@b.c\ufeff",
    "x" * 64 + "@" + "y" * 63 + ".com",
    ".",
    "a",
    " ",
    *(f"a{c}b@c.d" for c in SPACES + NEAR_SPACES),
    *(f"a@b.c{c}" for c in SPACES + NEAR_SPACES),
    *(f"a@b.{c}" for c in SPACES + NEAR_SPACES),
]

ID_CORPUS = [
    "OLD-1001",
    "a",
    ".",
    "..",
    "...",
    ".a",
    "a.",
    "..a",
    "./a",
    "a/b",
    "a?b",
    "a#b",
    "a%2Fb",
    "a\\b",
    "ä-ß-€",
    "注文-1",
    "a\n",
    "a\n\n",
    ".\n",
    "..\n",
    "\n",
    " a",
    "a ",
    "a b",
    "a\tb",
    "a\u00a0b",
    "\u00a0a",
    "a\u00a0",
    "a\u3000",
    "a\u2028",
    "a\u0085",
    "a\x1c",
    "a\u200b",
    "\u200ba",
    "a\ufeff",
    "x" * 40,
    " ",
    *(f"a{c}" for c in SPACES + NEAR_SPACES),
    *(f"{c}a" for c in SPACES + NEAR_SPACES),
    *(f"a{c}b" for c in SPACES + NEAR_SPACES),
    *(f".{c}" for c in SPACES + NEAR_SPACES),
]

TS_RANGE = (631_152_000, 2_000_000_000)


def _rejected(values: list[str], params: tuple[str, ...]) -> dict[str, set[int]]:
    """Per param: rows the schema rejects by its email / unsafe_id rule (one frame, one run)."""
    frame = pd.DataFrame({param: pd.Series(values, dtype="str") for param in params})
    schema = import_order_schema(frame.columns, TS_RANGE)
    found: dict[str, set[int]] = {param: set() for param in params}
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return found
    for column, check, number, index in zip(
        cases["column"], cases["check"], cases["check_number"], cases["index"], strict=True
    ):
        if check != "not_nullable" and check_rule(column, int(number)) in ("email", "unsafe_id"):
            found[column].add(int(index))
    return found


def _python_rejects(pattern: str, values: list[str]) -> set[int]:
    return {i for i, v in enumerate(values) if re.match(pattern, v) is None}


@pytest.mark.parametrize(
    ("params", "pattern", "corpus"),
    [
        (("shipping_address.email", "billing_address.email"), EMAIL_PATTERN, EMAIL_CORPUS),
        (("id",), LOOKUP_ID_PATTERN, ID_CORPUS),
    ],
    ids=["email", "id"],
)
def test_vectorised_check_rejects_exactly_what_the_python_pattern_rejects(
    params: tuple[str, ...], pattern: str, corpus: list[str]
) -> None:
    """Edge values (every \\s character, near-spaces, final newlines, dots, non-ASCII)."""
    expected = _python_rejects(pattern, corpus)
    assert expected  # the corpus has both kinds
    assert len(expected) < len(corpus)
    assert _rejected(corpus, params) == dict.fromkeys(params, expected)


ALPHABET = st.sampled_from(
    ["a", "b", ".", "@", "/", "?", "#", "-", "\n", "\r", "ä", "€", *SPACES, *NEAR_SPACES]
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(ALPHABET, min_size=1, max_size=8), min_size=1, max_size=60))
def test_random_texts_get_the_python_patterns_verdict(values: list[str]) -> None:
    """Short random texts over an alphabet of the characters the patterns care about."""
    assert _rejected(values, ("shipping_address.email", "id")) == {
        "shipping_address.email": _python_rejects(EMAIL_PATTERN, values),
        "id": _python_rejects(LOOKUP_ID_PATTERN, values),
    }
