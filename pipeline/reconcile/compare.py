"""Compare what the ledger says a batch holds with the orders Chargebee returned: pure functions.

Findings are data: ``missing`` (succeeded in the ledger, absent or deleted in Chargebee),
``extra`` (looks like this batch, matches no succeeded row), ``duplicate`` (a second order for
one source row: same document number, or same invoice when invoices are unique in the batch)
and ``mismatch`` (one finding per differing field). Imports only the root leaves.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.params import ADDRESS_KINDS, flatten, normal_value, ours_theirs

Category = Literal["missing", "extra", "duplicate", "mismatch"]
CATEGORIES: tuple[Category, ...] = ("missing", "extra", "duplicate", "mismatch")

COMPARED_FIELDS: tuple[str, ...] = (
    "status",
    "document_number",
    "invoice_id",
    "customer_id",
    "subscription_id",
    "order_date",
    "shipping_date",
    "shipping_cut_off_date",
    "shipped_at",
    "delivered_at",
    "cancelled_at",
    "cancellation_reason",
    "tracking_id",
    "tracking_url",
    "shipment_carrier",
    "reference_id",
    "fulfillment_status",
    "batch_id",
    "note",
)
"""Top-level fields compared (when the ledger holds a value); addresses are compared too."""
LINE_ITEM_FIELDS = ("status", "sku")


@dataclass(frozen=True, slots=True)
class Expected:
    """One order the ledger says Chargebee holds, with its effective values."""

    row_key: str
    source_line: int
    order_id: str
    params: Mapping[str, Any]
    """Import params overlaid with every later succeeded update (nested, API shape)."""
    updated_fields: frozenset[str] = frozenset()
    """Dotted fields a later update batch changed (reported as context, still compared)."""
    fields: frozenset[str] | None = None
    """Compare only these dotted fields (an update batch's own fields); None = all."""
    control: Mapping[str, Any] | None = None
    """The row's ``[control]`` amount (minor units) and currency, compared with the order's
    ``total`` and ``currency_code`` (import batches)."""


@dataclass(frozen=True, slots=True)
class OtherRow:
    """A row of this batch that is NOT succeeded (failed, invalid, ...): its order is unexpected."""

    row_key: str
    source_line: int
    state: str


@dataclass(frozen=True, slots=True)
class Finding:
    """One reconciliation finding (one row of reconciliation.csv)."""

    category: Category
    order_id: str | None
    row_key: str | None
    source_line: int | None
    field: str | None
    expected: str | None
    actual: str | None
    message: str


@dataclass(frozen=True, slots=True)
class Comparison:
    """All findings of one reconciliation and the count of clean matches."""

    findings: tuple[Finding, ...]
    matched: int
    """Expected orders found live with every compared field equal."""
    expected: int
    fetched: int
    counts: Mapping[str, int] = field(default_factory=dict)
    """Findings by category (every category present, 0 when none)."""


def norm(name: str, value: Any) -> str | None:
    """A comparable text form of ``value`` by the field's type (``pipeline.params``)."""
    return normal_value(name, value)


def stem(values: Iterable[str]) -> str:
    """The common prefix of ``values`` without trailing digits (``T-000001``… → ``T-``)."""
    items = [v for v in values if v]
    if not items:
        return ""
    low, high = min(items), max(items)
    size = 0
    while size < min(len(low), len(high)) and low[size] == high[size]:
        size += 1
    return low[:size].rstrip("0123456789")


def compare(
    expected: Sequence[Expected],
    fetched: Iterable[Mapping[str, Any]],
    *,
    other_rows: Mapping[str, OtherRow] | None = None,
    foreign_ids: frozenset[str] = frozenset(),
    detect_extras: bool = True,
) -> Comparison:
    """Compare the ledger's expectations with the orders fetched from Chargebee.

    Args:
        expected: succeeded rows of the batch (effective values).
        fetched: orders as ``GET /orders`` or the export gave them (deleted ones included).
        other_rows: order id → this batch's rows that did not succeed.
        foreign_ids: order ids other ledger batches account for (never extras/duplicates).
        detect_extras: look for extras (import batches; not for update batches).
    """
    other_rows = other_rows or {}
    orders: dict[str, Mapping[str, Any]] = {}
    for order in fetched:
        oid = str(order.get("id") or "")
        if oid and (oid not in orders or _deleted(orders[oid])):
            orders[oid] = order
    live = {oid: o for oid, o in orders.items() if not _deleted(o)}
    findings: list[Finding] = []
    matched = 0
    expected_ids = {e.order_id for e in expected}
    for item in expected:
        held = orders.get(item.order_id)
        if held is None or _deleted(held):
            why = "deleted in Chargebee" if held is not None else "not found in Chargebee"
            findings.append(_finding("missing", item, None, None, None, f"order {why}"))
            continue
        diffs = _field_diffs(item, held)
        findings.extend(diffs)
        matched += not diffs
    duplicate_ids = _duplicates(expected, live, expected_ids | foreign_ids, findings)
    if detect_extras:
        _extras(expected, live, expected_ids, duplicate_ids, other_rows, foreign_ids, findings)
    counts: dict[str, int] = {c: sum(1 for f in findings if f.category == c) for c in CATEGORIES}
    return Comparison(tuple(findings), matched, len(expected), len(orders), counts)


def _deleted(order: Mapping[str, Any]) -> bool:
    return norm("deleted", order.get("deleted")) == "true"


def _finding(
    category: Category,
    item: Expected,
    name: str | None,
    want: str | None,
    got: str | None,
    message: str,
    order_id: str | None = None,
) -> Finding:
    return Finding(
        category,
        order_id or item.order_id,
        item.row_key,
        item.source_line,
        name,
        want,
        got,
        message,
    )


CONTROL_FIELDS = (("amount", "total"), ("currency", "currency_code"))
"""``[control]`` field → the order field it is reconciled with."""


def _control_diffs(item: Expected, order: Mapping[str, Any]) -> list[Finding]:
    """The row's control amount and currency against what the order holds (the invoice's, on
    Chargebee and on a seeded sandbox): a mismatch names both."""
    out: list[Finding] = []
    for key, name in CONTROL_FIELDS if item.control and item.fields is None else ():
        want = item.control.get(key) if item.control else None
        if want is None or want == "":
            continue
        expected_value = norm(name, want)
        actual_value = norm(name, order.get(name))
        if expected_value != actual_value:
            out.append(
                _finding(
                    "mismatch",
                    item,
                    f"{name} (control {key})",
                    expected_value,
                    actual_value,
                    f"the file's control {key} is {expected_value}; Chargebee holds "
                    f"{name} {actual_value if actual_value is not None else '(none)'}",
                )
            )
    return out


def _field_diffs(item: Expected, order: Mapping[str, Any]) -> list[Finding]:
    want = flatten(item.params)
    got = flatten(order)
    out: list[Finding] = _control_diffs(item, order)
    names = [n for n in want if n in COMPARED_FIELDS or n.split(".")[0] in ADDRESS_KINDS]
    for name in names:
        if item.fields is not None and name not in item.fields:
            continue
        expected_value = norm(name, want[name])
        if expected_value is None:
            continue
        actual_value = norm(name, got.get(name))
        if expected_value != actual_value:
            note = " (value set by a later update)" if name in item.updated_fields else ""
            out.append(
                _finding(
                    "mismatch",
                    item,
                    name,
                    expected_value,
                    actual_value,
                    ours_theirs(name, expected_value, actual_value) + note,
                )
            )
    out.extend(_line_item_diffs(item, order))
    return out


def _line_item_diffs(item: Expected, order: Mapping[str, Any]) -> list[Finding]:
    wanted = item.params.get("order_line_items")
    held = order.get("order_line_items")
    if not isinstance(wanted, list) or not isinstance(held, list):
        return []  # the export carries no line items; only the list path compares them
    by_id = {str(li.get("id")): li for li in held if isinstance(li, Mapping)}
    out: list[Finding] = []
    for change in wanted:
        line_id = str(change.get("id"))
        current = by_id.get(line_id, {})
        for name in LINE_ITEM_FIELDS:
            if name not in change:
                continue
            want, got = norm(name, change[name]), norm(name, current.get(name))
            if want is not None and want != got:
                label = f"order_line_items[{line_id}].{name}"
                out.append(
                    _finding(
                        "mismatch",
                        item,
                        label,
                        want,
                        got,
                        ours_theirs(label, want, got),
                    )
                )
    return out


def _duplicates(
    expected: Sequence[Expected],
    live: Mapping[str, Mapping[str, Any]],
    accounted: set[str] | frozenset[str],
    findings: list[Finding],
) -> set[str]:
    by_doc: dict[str, list[str]] = defaultdict(list)
    by_invoice: dict[str, list[str]] = defaultdict(list)
    for oid, order in live.items():
        if oid in accounted:
            continue
        doc = norm("document_number", order.get("document_number"))
        inv = norm("invoice_id", order.get("invoice_id"))
        if doc:
            by_doc[doc].append(oid)
        if inv:
            by_invoice[inv].append(oid)
    invoice_uses: dict[str, int] = defaultdict(int)
    for item in expected:
        inv = norm("invoice_id", item.params.get("invoice_id"))
        if inv:
            invoice_uses[inv] += 1
    found: set[str] = set()
    for item in expected:
        doc = norm("document_number", item.params.get("document_number"))
        inv = norm("invoice_id", item.params.get("invoice_id"))
        if doc:
            others, what = by_doc.get(doc, []), f"document_number {doc!r}"
        elif inv and invoice_uses[inv] == 1:
            others, what = by_invoice.get(inv, []), f"invoice_id {inv!r}"
        else:
            continue
        for oid in sorted(others):
            found.add(oid)
            findings.append(
                _finding(
                    "duplicate",
                    item,
                    "document_number" if doc else "invoice_id",
                    item.order_id,
                    oid,
                    f"order {oid} has the same {what} as order {item.order_id} "
                    f"(source line {item.source_line})",
                    order_id=oid,
                )
            )
    return found


def _extras(
    expected: Sequence[Expected],
    live: Mapping[str, Mapping[str, Any]],
    expected_ids: set[str],
    duplicate_ids: set[str],
    other_rows: Mapping[str, OtherRow],
    foreign_ids: frozenset[str],
    findings: list[Finding],
) -> None:
    id_stem = stem([e.order_id for e in expected] + list(other_rows))
    doc_stem = stem([str(e.params.get("document_number") or "") for e in expected])
    for oid in sorted(live):
        if oid in expected_ids or oid in duplicate_ids or oid in foreign_ids:
            continue
        order = live[oid]
        other = other_rows.get(oid)
        doc = str(order.get("document_number") or "")
        looks_like = (
            other is not None
            or (len(id_stem) >= 2 and oid.startswith(id_stem))
            or (len(doc_stem) >= 2 and doc.startswith(doc_stem))
        )
        if not looks_like:
            continue
        if other is not None:
            message = (
                f"Chargebee holds order {oid}, but the ledger records source line "
                f"{other.source_line} as {other.state}"
            )
        else:
            message = f"order {oid} looks like this batch but matches no ledger row"
        findings.append(
            Finding(
                "extra",
                oid,
                other.row_key if other else None,
                other.source_line if other else None,
                None,
                None,
                doc or None,
                message,
            )
        )
