"""validate_chunk: cross-field rules (each switchable), uniqueness across chunks, Excel hints."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from pipeline.models import ValidationRules
from pipeline.prepare.validation import FileState, SeenValues, validate_chunk

T = 1_700_000_000


def _frame(**cols: list[Any]) -> pd.DataFrame:
    base: dict[str, list[Any]] = {
        "id": [f"O-{i}" for i in range(len(next(iter(cols.values()))))],
    }
    base.update(cols)
    out: dict[str, Any] = {}
    for name, values in base.items():
        if name.endswith(("_at", "_date")):
            out[name] = pd.array(values, dtype="Int64")
        else:
            out[name] = pd.Series(values, dtype="str")
    n = len(out["id"])
    for name in ("invoice_id", "status"):
        values = [f"INV-{i}" for i in range(n)] if name == "invoice_id" else ["shipped"] * n
        out.setdefault(name, pd.Series(values))
    for name in ("created_at", "order_date", "shipping_date"):
        out.setdefault(name, pd.array([T] * n, dtype="Int64"))
    return pd.DataFrame(out)


def _rules(
    frame: pd.DataFrame, rules: ValidationRules | None = None, state=None, **options: object
):
    lines = np.arange(2, len(frame) + 2)
    keys = [f"k{i}" for i in range(len(frame))]
    found = validate_chunk(
        frame,
        lines,
        keys,
        sources={},
        rules=rules or ValidationRules(),
        state=state or FileState(),
        now=T,
        **options,  # type: ignore[arg-type]
    )
    return sorted((issue.source_line, issue.rule, issue.severity) for _, issue in found)


def test_cancellation_reason_needs_cancelled_and_is_switchable() -> None:
    """A reason on a shipped order is an error, unless the rule is switched off."""
    frame = _frame(status=["shipped", "cancelled"], cancellation_reason=["others", "others"])
    assert _rules(frame) == [(2, "cancellation_reason_status", "error")]
    off = replace(ValidationRules(), cancellation_reason_only_with_cancelled=False)
    assert _rules(frame, off) == []


def test_date_order_rules() -> None:
    """shipping_date before order_date and delivered before shipped are errors (switchable)."""
    frame = _frame(
        order_date=[T, T],
        shipping_date=[T - 1, T],
        shipped_at=[T, T + 10],
        delivered_at=[T + 5, T + 5],
    )
    assert _rules(frame) == [(2, "date_order", "error"), (3, "date_order", "error")]
    assert _rules(frame, replace(ValidationRules(), date_order=False)) == []


def test_queued_with_fulfilment_is_a_warning() -> None:
    """Queued orders carrying reference_id/fulfillment_status get warnings, not errors."""
    frame = _frame(status=["queued", "shipped"], reference_id=["R1", "R2"])
    assert _rules(frame) == [(2, "queued_fulfilment", "warning")]


def test_document_number_series_rule() -> None:
    """With prefix ORDER and start 1000, ORDER999 passes, ORDER1000 fails, OLD5000 passes."""
    frame = _frame(document_number=["ORDER999", "ORDER1000", "OLD5000"])
    rules = replace(ValidationRules(), document_number_prefix="ORDER", document_number_start=1000)
    assert _rules(frame, rules) == [(3, "document_number_series", "error")]
    assert _rules(frame) == []


def test_state_code_only_for_us_ca_in_ae() -> None:
    """state_code with country DE is an error; with US it is fine."""
    frame = _frame(
        **{
            "shipping_address.state_code": ["BY", "MA"],
            "shipping_address.country": ["DE", "US"],
        }
    )
    assert _rules(frame) == [(2, "state_code_country", "error")]


def test_uniqueness_spans_chunks() -> None:
    """A duplicate id in a later chunk names the line of the first occurrence."""
    state = FileState()
    first = _frame(document_number=["D1", "D2"])
    second = _frame(document_number=["D3", "D1"], invoice_id=["INV-8", "INV-9"])
    second["id"] = pd.Series(["O-9", "O-0"], dtype="str")
    assert _rules(first, state=state) == []
    lines = np.array([10, 11])
    found = validate_chunk(
        second, lines, ["k9", "k10"], sources={}, rules=ValidationRules(), state=state, now=T
    )
    messages = sorted((i.rule, i.message) for _, i in found)
    assert messages == [
        ("duplicate_document_number", "document_number repeats line 2"),
        ("duplicate_id", "id repeats line 2"),
    ]


def test_seen_values_handles_in_chunk_repeats() -> None:
    """Repeats inside one chunk point at the first line; NA values never collide."""
    seen = SeenValues()
    values = pd.Series(["a", "b", "a", None, None, "a"], dtype="str")
    got = seen.check_and_add(values, np.array([2, 3, 4, 5, 6, 7])).tolist()
    assert got == [0, 0, 2, 0, 0, 2]
    again = seen.check_and_add(pd.Series(["b", "c"], dtype="str"), np.array([8, 9])).tolist()
    assert again == [3, 0]


def test_excel_hints_are_warnings() -> None:
    """1.23457E+11 ids and 4-digit US zips are flagged as warnings."""
    frame = _frame(
        invoice_id=["1.23457E+11", "INV-1"],
        **{"shipping_address.zip": ["2134", "02134"], "shipping_address.country": ["US", "US"]},
    )
    assert _rules(frame) == [(2, "leading_zero", "warning"), (2, "scientific_notation", "warning")]


def test_implausible_timestamps_are_errors() -> None:
    """Dates before min_year or too far in the future fail the timestamp_range rule."""
    frame = _frame(created_at=[0, T + 400 * 86400, T])
    assert _rules(frame) == [(2, "timestamp_range", "error"), (3, "timestamp_range", "error")]


def test_seen_values_agrees_with_a_python_set() -> None:
    """Over many random chunks the index reports exactly the repeats a set would."""
    rng = np.random.default_rng(5)
    seen = SeenValues()
    first_line: dict[str, int] = {}
    line = 2
    for _ in range(30):
        values = [f"v{x}" for x in rng.integers(0, 400, size=int(rng.integers(1, 60)))]
        lines = np.arange(line, line + len(values))
        got = seen.check_and_add(pd.Series(values, dtype="str"), lines).tolist()
        want = []
        for value, at in zip(values, lines.tolist(), strict=True):
            want.append(first_line.get(value, 0))
            first_line.setdefault(value, at)
        assert got == want
        line += len(values)


def test_one_invoice_for_two_orders_is_an_error_unless_allowed() -> None:
    """Rows sharing an invoice_id (line items read as orders) are flagged across chunks."""
    frame = _frame(invoice_id=["INV-1", "INV-2", "INV-1"])
    state = FileState()
    first = _rules(frame.iloc[:2].reset_index(drop=True), state=state)
    assert first == []
    lines = np.array([4])
    found = validate_chunk(
        frame.iloc[2:].reset_index(drop=True),
        lines,
        ["k2"],
        sources={"invoice_id": "Invoice"},
        rules=ValidationRules(),
        state=state,
        now=T,
    )
    assert [(i.rule, i.column) for _, i in found] == [("duplicate_invoice_id", "Invoice")]
    assert "line 2" in found[0][1].message
    assert _rules(frame, unique_invoice=False) == []  # several orders per invoice allowed
    assert _rules(frame, exclude=np.array([False, False, True])) == []  # a skipped row
    assert [r for _, r, _ in _rules(frame)] == ["duplicate_invoice_id"]


def test_every_row_sharing_an_id_or_document_number_is_flagged() -> None:
    """The first row of a repeated value is an error too (it names the line repeating it), so
    none of them is sent; a value repeated three times flags all three."""
    frame = _frame(document_number=["D1", "D2", "D1", "D1"])
    frame["id"] = pd.Series(["A", "B", "C", "B"], dtype="str")
    lines = np.arange(2, 6)
    found = validate_chunk(
        frame, lines, ["k0", "k1", "k2", "k3"], sources={}, rules=ValidationRules(),
        state=FileState(), now=T,
    )  # fmt: skip
    messages = sorted((i.source_line, i.rule, i.message) for _, i in found)
    assert [(line, rule) for line, rule, _ in messages] == [
        (2, "duplicate_document_number"),
        (3, "duplicate_id"),
        (4, "duplicate_document_number"),
        (5, "duplicate_document_number"),
        (5, "duplicate_id"),
    ]
    assert messages[0][2].startswith("document_number is repeated on line 4")
    assert messages[1][2].startswith("id is repeated on line 5")
    assert messages[2][2] == "document_number repeats line 2"


def test_document_numbers_that_make_the_row_keys_need_no_index_of_their_own() -> None:
    """With ``[id] source = "document_number"`` a repeated document number is a repeated row
    key: still reported (as such), while the document-number index stays empty (memory)."""
    frame = _frame(document_number=["D-1", "D-2", "D-1"])
    state = FileState()
    lines = np.arange(2, 5)
    found = validate_chunk(
        frame,
        lines,
        ["OLD-D-1", "OLD-D-2", "OLD-D-1"],
        sources={},
        rules=ValidationRules(),
        state=state,
        now=T,
        ids_follow_keys=True,
        documents_follow_keys=True,
    )
    assert sorted((i.source_line, i.rule) for _, i in found) == [
        (2, "duplicate_row_key"),
        (4, "duplicate_row_key"),
    ]
    assert len(state.document_numbers) == 0
    assert len(state.row_keys) == 2
