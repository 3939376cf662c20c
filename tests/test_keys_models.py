"""Pure helpers: deterministic keys, cell safety, exit codes, and the JSON-lines progress."""

from __future__ import annotations

import io
import json

from hypothesis import given
from hypothesis import strategies as st

from pipeline.keys import (
    IDEMPOTENCY_KEY_MAX,
    ORDER_ID_MAX,
    content_hash,
    derived_order_id,
    idempotency_key,
)
from pipeline.models import exit_code_for
from pipeline.progress import JsonLinesProgress
from pipeline.safety import safe_cell, unneutralise_cell

TEXT = st.text(max_size=60)


@given(TEXT, TEXT, TEXT)
def test_idempotency_key_is_stable_bounded_and_payload_sensitive(batch, row_key, payload):
    """Same inputs give the same key (≤100 chars); another payload gives another key."""
    h = content_hash({"p": payload})
    key = idempotency_key("import", batch, row_key, h)
    assert key == idempotency_key("import", batch, row_key, h)
    assert len(key) <= IDEMPOTENCY_KEY_MAX
    assert key != idempotency_key("import", batch, row_key, content_hash({"p": payload + "x"}))
    assert key != idempotency_key("update", batch, row_key, h)


@given(TEXT)
def test_derived_order_id_is_deterministic_and_fits(row_key):
    """A derived id depends on the row key only and fits Chargebee's 40 characters."""
    order_id = derived_order_id(row_key)
    assert order_id == derived_order_id(row_key)
    assert order_id.startswith("MIG-")
    assert len(order_id) <= ORDER_ID_MAX


def test_content_hash_ignores_key_order():
    """Payloads equal as mappings hash equally, whatever the key order."""
    assert content_hash({"a": 1, "b": {"c": "x"}}) == content_hash({"b": {"c": "x"}, "a": 1})


@given(st.text(max_size=30))
def test_safe_cell_round_trips_and_never_starts_a_formula(value):
    """safe_cell output never starts with = + @ (unless a plain number); unneutralise undoes it
    for every text, a value that truly starts with an apostrophe included."""
    safe = safe_cell(value)
    assert isinstance(safe, str)
    if safe[:1] in ("=", "@", "\t", "\r"):
        raise AssertionError(safe)
    assert unneutralise_cell(safe) == value


def test_safe_cell_keeps_plain_numbers_and_non_strings():
    """Negative amounts stay numbers; ints pass through; a formula gets an apostrophe."""
    assert safe_cell("-12.50") == "-12.50"
    assert safe_cell(5) == 5
    assert safe_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert safe_cell("+44 20 7946 0958") == "'+44 20 7946 0958"
    assert safe_cell("'=kept") == "''=kept"  # a real leading apostrophe survives the round trip
    assert unneutralise_cell("''=kept") == "'=kept"
    assert unneutralise_cell(str(safe_cell("'02108"))) == "'02108"


def test_exit_codes_follow_design():
    """130 interrupted > 3 in doubt > 1 unfinished > 0 done; pending is fine after a dry run."""
    assert exit_code_for({"succeeded": 5}) == 0
    assert exit_code_for({"succeeded": 5, "failed": 1}) == 1
    assert exit_code_for({"succeeded": 5, "pending": 2}) == 1
    assert exit_code_for({"succeeded": 5, "pending": 2}, pending_ok=True) == 0
    assert exit_code_for({"failed": 1, "in_flight": 1}) == 3
    assert exit_code_for({"in_flight": 1}, interrupted=True) == 130


def test_json_lines_progress_emits_one_object_per_line():
    """--log-json events are parseable JSON lines with an event name and a timestamp."""
    stream = io.StringIO()
    progress = JsonLinesProgress(stream)
    progress.start(3, batch="b", phase="send")
    progress.row("succeeded", row_key="r1", detail={"order_id": "MIG-1"})
    progress.event("throttled", row_key="r2")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["phase", "row", "throttled"]
    assert lines[1]["order_id"] == "MIG-1"
    assert all("ts" in line for line in lines)
