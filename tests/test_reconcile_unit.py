"""Unit tests of reconciliation's pure parts: export CSV by header, comparison, ledger overlay."""

from __future__ import annotations

import io
import zipfile

import pytest

from pipeline.errors import PermanentApiError
from pipeline.reconcile.compare import Expected, OtherRow, compare, norm, stem
from pipeline.reconcile.export import canonical_column, read_export_zip
from pipeline.reconcile.ledger_view import changed_fields, overlay


def zipped(files: dict[str, str]) -> bytes:
    """A zip holding the given CSV texts."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def expected(oid: str, line: int, **params: object) -> Expected:
    """An expected order with default identity params."""
    base = {"id": oid, "document_number": f"D{oid}", "invoice_id": f"I{oid}", "status": "shipped"}
    return Expected(f"k{line}", line, oid, {**base, **params})


def test_snake_case_and_human_label_headers_map_to_the_same_fields():
    """Data-Catalog snake_case and report-style labels both name the order fields."""
    assert canonical_column("shipping_address_city") == "shipping_address.city"
    assert canonical_column("Shipping Address City") == "shipping_address.city"
    assert canonical_column("Shipping Address Line 1") == "shipping_address.line1"
    assert canonical_column("Billing Zip Code") == "billing_address.zip"
    assert canonical_column("Order ID") == "id"
    assert canonical_column("Document Number") == "document_number"
    assert canonical_column("Reason Code") == "cancellation_reason"
    assert canonical_column("shipping_date") == "shipping_date"
    assert canonical_column("Gift Note Colour") is None


def test_export_zip_rows_become_nested_orders_and_line_item_files_are_skipped():
    """orders.csv is read by header; order_line_items.csv (which also has ids) is ignored."""
    data = zipped(
        {
            "order_line_items.csv": "id,order_id,status\nli_1,A-1,shipped\n",
            "orders.csv": (
                "\ufeffOrder ID,Status,Shipping Address City,Deleted,Unknown Column\n"
                "A-1,shipped,Kraków,false,x\nA-2,delivered,,true,y\n"
            ),
        }
    )
    orders = read_export_zip(data)
    assert orders == [
        {
            "id": "A-1",
            "status": "shipped",
            "shipping_address": {"city": "Kraków"},
            "deleted": False,
        },
        {"id": "A-2", "status": "delivered", "deleted": True},
    ]


def test_export_without_an_id_column_is_an_unknown_layout():
    """A CSV with no recognisable order id column raises export_layout_unknown."""
    with pytest.raises(PermanentApiError) as info:
        read_export_zip(zipped({"orders.csv": "Foo,Bar\n1,2\n"}))
    assert info.value.api_error_code == "export_layout_unknown"
    with pytest.raises(PermanentApiError):
        read_export_zip(b"not a zip")


def test_norm_compares_timestamps_across_unix_and_iso_forms():
    """Unix seconds, ISO 8601 and ints compare equal; empty is None."""
    assert norm("order_date", 1672531200) == norm("order_date", "2023-01-01T00:00:00Z")
    assert norm("order_date", "1672531200") == "1672531200"
    assert norm("note", "  ") is None
    assert norm("deleted", True) == "true"


def test_stem_strips_trailing_digits_of_the_common_prefix():
    """The batch's id series stem is the common prefix without its digits."""
    assert stem(["T-000001", "T-000019"]) == "T-"
    assert stem(["OLD1001", "OLD1999"]) == "OLD"
    assert stem([]) == ""


def test_compare_reports_each_category_against_the_right_row():
    """Missing, deleted, mismatch, duplicate and extra each name their row and field."""
    rows = [expected("T-1", 2), expected("T-2", 3), expected("T-3", 4), expected("T-4", 5)]
    fetched: list[dict[str, object]] = [
        {"id": "T-1", "document_number": "DT-1", "invoice_id": "IT-1", "status": "shipped"},
        {"id": "T-2", "document_number": "DT-2", "invoice_id": "IT-2", "status": "returned"},
        {"id": "T-3", "deleted": True, "document_number": "DT-3"},
        {"id": "X-9", "document_number": "DT-1", "invoice_id": "IT-1"},
        {"id": "T-77", "document_number": "ZZ"},
        {"id": "UNRELATED", "document_number": "QQ"},
    ]
    result = compare(rows, fetched)
    got = {(f.category, f.order_id, f.source_line, f.field) for f in result.findings}
    assert got == {
        ("mismatch", "T-2", 3, "status"),
        ("missing", "T-3", 4, None),
        ("missing", "T-4", 5, None),
        ("duplicate", "X-9", 2, "document_number"),
        ("extra", "T-77", None, None),
    }
    assert result.matched == 1
    assert result.counts == {"missing": 2, "extra": 1, "duplicate": 1, "mismatch": 1}


def test_orders_of_other_batches_and_failed_rows_are_told_apart():
    """Ids other batches account for are no extras; an order for a failed row is an extra."""
    rows = [expected("T-1", 2)]
    fetched = [
        {"id": "T-1", "document_number": "DT-1", "invoice_id": "IT-1", "status": "shipped"},
        {"id": "T-2", "document_number": "DT-2"},
        {"id": "T-3", "document_number": "DT-3"},
    ]
    result = compare(
        rows,
        fetched,
        other_rows={"T-3": OtherRow("k9", 9, "failed")},
        foreign_ids=frozenset({"T-2"}),
    )
    assert [(f.category, f.order_id, f.source_line) for f in result.findings] == [
        ("extra", "T-3", 9)
    ]


def test_invoice_duplicates_only_when_invoices_are_unique_in_the_batch():
    """Without document numbers, a second order on a one-order invoice is a duplicate."""
    one = Expected("k2", 2, "T-1", {"id": "T-1", "invoice_id": "INV-1"})
    two = [
        Expected("k2", 2, "T-1", {"id": "T-1", "invoice_id": "INV-2"}),
        Expected("k3", 3, "T-2", {"id": "T-2", "invoice_id": "INV-2"}),
    ]
    fetched = [
        {"id": "T-1", "invoice_id": "INV-1"},
        {"id": "T-2", "invoice_id": "INV-2"},
        {"id": "Z-1", "invoice_id": "INV-1"},
        {"id": "Z-2", "invoice_id": "INV-2"},
    ]
    dup = compare([one], fetched, detect_extras=False)
    assert [(f.category, f.order_id) for f in dup.findings] == [("duplicate", "Z-1")]
    shared = compare(two, [{**fetched[1], "id": "T-1"}, *fetched[1:]], detect_extras=False)
    assert [f.category for f in shared.findings] == []


def test_line_items_are_compared_only_when_the_order_carries_them():
    """Line item status is checked on list-shaped orders, skipped for export rows."""
    item = Expected(
        "k", 2, "T-1", {"id": "T-1", "order_line_items": [{"id": "li_1", "status": "returned"}]}
    )
    listed = {"id": "T-1", "order_line_items": [{"id": "li_1", "status": "shipped"}]}
    assert [f.field for f in compare([item], [listed]).findings] == [
        "order_line_items[li_1].status"
    ]
    assert compare([item], [{"id": "T-1"}]).findings == ()


def test_restricted_fields_compare_only_what_an_update_batch_changed():
    """An update batch's expectation compares only its own fields."""
    item = Expected(
        "k",
        2,
        "T-1",
        {"id": "T-1", "status": "shipped", "tracking_id": "A"},
        fields=frozenset({"tracking_id"}),
    )
    assert compare([item], [{"id": "T-1", "status": "returned", "tracking_id": "A"}]).matched == 1


def test_overlay_applies_updates_like_chargebee():
    """Scalars replace, shipping_address merges, line items merge by id, id never changes."""
    base = {"id": "A", "status": "queued", "shipping_address": {"city": "X", "zip": "1"}}
    change = {
        "id": "A",
        "status": "shipped",
        "shipping_address": {"city": "Y"},
        "order_line_items": [{"id": "li_1", "status": "shipped"}],
    }
    merged = overlay(base, change)
    assert merged == {
        "id": "A",
        "status": "shipped",
        "shipping_address": {"city": "Y", "zip": "1"},
        "order_line_items": [{"id": "li_1", "status": "shipped"}],
    }
    again = overlay(merged, {"order_line_items": [{"id": "li_1", "sku": "S"}]})
    assert again["order_line_items"] == [{"id": "li_1", "status": "shipped", "sku": "S"}]
    assert changed_fields(change) == {"status", "shipping_address.city", "order_line_items"}
