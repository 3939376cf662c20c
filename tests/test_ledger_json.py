"""Planning's fast paths store exactly what the slow ones stored.

The ledger encodes params and raw columns with orjson (``plan.canonical_text``,
``plan.compact_text``) and looks keys up through ``json_each``; schema v8 spells the state
CHECK as a chain of ORs. These tests pin that the stored bytes, the content hash (hence the
idempotency key) and the states a row may take are what they were.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.keys import canonical_json, content_hash
from pipeline.ledger import plan as plan_module
from pipeline.ledger.ledger import Ledger
from pipeline.ledger.reads import WORK_COLUMNS, dumps, params_of
from pipeline.ledger.schema import MIGRATIONS, SCHEMA_VERSION, open_connection
from pipeline.models import ROW_STATES, SourceRow, WorkItem
from tests.test_ledger import BATCH, ledger, make_row, plan

__all__ = ["ledger"]  # the fixture

TEXT = st.text(st.characters(blacklist_categories=()), max_size=12)
"""Any code point, lone surrogates, quotes, backslashes and control characters included."""
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
PLAIN = st.dictionaries(
    TEXT.filter(lambda t: t.isprintable()),
    st.integers(-(2**63), 2**63 - 1)
    | st.text(max_size=12)
    | st.dictionaries(st.text(max_size=6), st.text(max_size=12) | st.integers(0, 2**40)),
    max_size=8,
)
"""What prepare gives a row with a fingerprint: text and integers, one level of nesting."""
STATES = ROW_STATES


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(TEXT, VALUES, max_size=6))
def test_the_fast_encoders_write_what_json_writes(value: dict[str, Any]) -> None:
    """Byte for byte, for any value: orjson where it agrees with json (dicts, lists, text,
    64-bit integers, booleans, None), json itself for the rest (floats, lone surrogates,
    integers beyond 64 bits)."""
    assert plan_module.canonical_text(value) == canonical_json(value)
    assert plan_module.compact_text(value) == dumps(value)


@settings(max_examples=300, deadline=None)
@given(PLAIN, st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=8))
def test_a_fingerprinted_row_stores_the_same_json_and_hashes(
    params: dict[str, Any], raw: dict[str, str]
) -> None:
    """A row with a fingerprint skips the type walk: its params JSON and content hash are
    still ``keys.canonical_json`` and ``keys.content_hash``, and its raw JSON and raw hash
    what ``reads.dumps`` and sha256 give."""
    for fingerprint in (7, None):
        row = SourceRow("k", "f.csv", None, 2, raw, params, fingerprint=fingerprint)
        assert plan_module._digest(row) == (canonical_json(params), content_hash(params))
        text, digest = plan_module._raw(row)
        assert text == dumps(raw)
        expected = hashlib.sha256(text.encode("utf-8")).digest()[:8]
        assert digest == int.from_bytes(expected, "big", signed=True)


def test_a_float_is_written_as_json_writes_it() -> None:
    """orjson writes 1e-07 as 1e-7 and NaN as null: such values never take its path."""
    value = {"a": 1e-07, "b": float("nan"), "c": [2**70, "\ud800"]}
    assert plan_module.canonical_text(value) == canonical_json(value)
    assert '"a":1e-07' in plan_module.canonical_text(value)


def _v6_ledger(path: Path) -> None:
    """A version-6 ledger as the previous release writes it (its migrations, in order), with
    a row in every state."""
    conn = sqlite3.connect(path, isolation_level=None)
    for version in range(1, 7):
        MIGRATIONS[version](conn)
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '6')")
    conn.execute("INSERT INTO batches VALUES ('b1', 'import', 'f.csv', 'x', 'c', 1, 1, 't', "
                 "NULL, NULL, NULL, NULL)")  # fmt: skip
    for state in STATES:
        conn.execute(
            "INSERT INTO rows (batch, row_key, operation, source_file, source_line, raw, "
            "params, content_hash, state, updated_at) VALUES "
            "('b1', ?, 'import', 'f.csv', 2, '{}', '{}', 'h', ?, 1)",
            (f"k-{state}", state),
        )
    conn.close()


def test_a_v6_ledger_gets_the_or_chain_check_with_the_same_states(tmp_path: Path) -> None:
    """v6 → v8 (v7 adds a cache table and indexes) changes the CHECK's spelling only: every
    stored row is kept, each of the nine states is still accepted, any other refused, and the
    table holds no ``IN (`` list that SQLite would rebuild for every row written."""
    path = tmp_path / "v6.sqlite"
    _v6_ledger(path)
    conn = open_connection(path)
    try:
        (version,) = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        assert version == str(SCHEMA_VERSION) == "9"
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'rows'").fetchone()
        assert "state IN" not in sql
        assert " OR ".join(f"state = '{s}'" for s in STATES) in sql
        stored = dict(conn.execute("SELECT row_key, state FROM rows"))
        assert stored == {f"k-{s}": s for s in STATES}
        for state in STATES:
            conn.execute("UPDATE rows SET state = ? WHERE row_key = 'k-pending'", (state,))
        with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
            conn.execute("UPDATE rows SET state = 'lost' WHERE row_key = 'k-pending'")
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def test_key_lookups_find_keys_with_quotes_and_any_text(ledger: Ledger) -> None:
    """Keys travel to SQLite as one JSON array: keys with quotes, backslashes, commas and
    non-ASCII text are found again on resume (unchanged, nothing re-planned as new)."""
    keys = ['a"b', "c\\d", "e,f", "żółw", "x]y", "tab\tkey"]
    rows = [make_row(i) for i in range(len(keys))]
    rows = [SourceRow(k, r.source_file, r.sheet, r.source_line, r.raw, r.params)
            for k, r in zip(keys, rows, strict=True)]  # fmt: skip
    first = plan(ledger, rows)
    again = plan(ledger, rows)
    assert first.new == len(keys)
    assert (again.new, again.still_pending) == (0, len(keys))


def test_an_unchanged_pending_row_still_takes_its_new_validity_and_skip(ledger: Ledger) -> None:
    """The resume shortcut (equal fingerprint: decided by the stored state) keeps the rules:
    a pending row whose content is unchanged but which is now invalid (an error found by a
    rule outside its params) becomes invalid, one a ``[[skip]]`` rule now matches becomes
    skipped, and an unchanged skipped row stays skipped; the rest stay pending."""
    first = [replace(make_row(i), fingerprint=100 + i) for i in range(4)]
    plan(ledger, first)
    bad = replace(make_row(0, invalid=True), fingerprint=100)
    again = [bad, replace(first[1], skip_reason="test rows"), first[2], first[3]]
    stats = plan(ledger, again)
    states = {row.row_key: row.state for row in ledger.rows(BATCH)}
    assert states == {"k0": "invalid", "k1": "skipped", "k2": "pending", "k3": "pending"}
    assert (stats.invalid, stats.skipped, stats.still_pending) == (1, 1, 2)
    third = plan(ledger, [first[0], again[1], first[2], first[3]])
    assert (third.skipped, third.still_pending, third.requeued_changed) == (1, 2, 1)
    assert {row.row_key: row.state for row in ledger.rows(BATCH)}["k0"] == "pending"


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(TEXT, VALUES, max_size=6))
def test_params_read_back_for_sending_are_what_json_reads(value: dict[str, Any]) -> None:
    """The send path reads each row's params with orjson, and with ``json`` what orjson
    refuses (NaN, integers beyond 64 bits, lone surrogates): the same values either way."""
    text = plan_module.canonical_text(value)
    assert canonical_json(params_of(text)) == canonical_json(json.loads(text))


def test_a_work_item_is_read_from_the_work_columns() -> None:
    """``work_item`` builds a ``WorkItem`` by hand from ``WORK_COLUMNS``: every field of the
    record is one of those columns, in the record's order."""
    names = [f.name for f in fields(WorkItem)]
    assert names == [c.strip() for c in WORK_COLUMNS.split(",")]
