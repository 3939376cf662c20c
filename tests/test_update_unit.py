"""Unit tests of update's pure parts: column forms, row validation, diffing, the create guard."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.errors import InputError
from pipeline.models import SourceRow
from pipeline.reconcile.ledger_view import KnownOrder
from pipeline.update.rows import classify, read_update_rows
from pipeline.update.update import diff_params, plan_update_rows


def write(path: Path, rows: list[dict[str, str]]) -> Path:
    """A CSV file with the union of the rows' columns."""
    header = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_column_forms_for_params_addresses_and_line_items():
    """API names, dotted/bracket addresses and three line-item spellings are understood."""
    assert classify("status").kind == "param"  # type: ignore[union-attr]
    assert classify("shipping_address[city]").param == "shipping_address.city"  # type: ignore[union-attr]
    assert classify("shipping_address.zip").param == "shipping_address.zip"  # type: ignore[union-attr]
    assert classify("billing_address[city]").kind == "billing"  # type: ignore[union-attr]
    for name, field, index in (
        ("order_line_items[status][1]", "status", 1),
        ("order_line_items[1][sku]", "sku", 1),
        ("line_item_id", "id", 0),
    ):
        column = classify(name)
        assert column is not None
        assert (column.kind, column.param, column.index) == ("line_item", field, index)
    assert classify("order_id").kind == "id"  # type: ignore[union-attr]
    assert classify("invoice_id") is None
    assert classify("oi:row_key").kind == "ignore"  # type: ignore[union-attr]


def test_rows_are_parsed_validated_and_keyed(tmp_path):
    """Dates become seconds, enums are checked, billing and duplicates make rows invalid."""
    path = write(
        tmp_path / "fixes.csv",
        [
            {
                "id": "A",
                "status": "New",
                "delivered_at": "2023-01-02T00:00:00Z",
                "billing_address[city]": "",
            },
            {"id": "B", "status": "teleported", "delivered_at": "", "billing_address[city]": ""},
            {"id": "C", "status": "", "delivered_at": "", "billing_address[city]": "Berlin"},
            {"id": "A", "status": "shipped", "delivered_at": "", "billing_address[city]": ""},
        ],
    )
    rows = read_update_rows(path, Settings())
    assert rows[0].params == {"id": "A", "status": "new", "delivered_at": 1672617600}
    assert rows[0].is_valid
    assert [i.rule for i in rows[1].issues] == ["enum"]
    assert rows[2].issues[0].rule == "not_updatable"
    assert "billing_address" in rows[2].issues[0].message
    assert rows[2].issues[0].column == "billing_address[city]"
    assert [i.rule for i in rows[3].issues] == ["unique_in_file"]
    assert rows[0].source_line == 2
    assert rows[0].row_key.startswith("u:A:")
    again = read_update_rows(path, Settings())
    assert [r.row_key for r in again] == [r.row_key for r in rows]


def test_unknown_or_import_only_columns_are_an_input_error(tmp_path):
    """An invoice_id column cannot be corrected: a clear InputError naming the column."""
    path = write(tmp_path / "fixes.csv", [{"id": "A", "invoice_id": "X"}])
    with pytest.raises(InputError) as info:
        read_update_rows(path, Settings())
    assert info.value.column == "invoice_id"
    no_id = write(tmp_path / "noid.csv", [{"status": "shipped"}])
    with pytest.raises(InputError, match="no order id column"):
        read_update_rows(no_id, Settings())


def test_diff_keeps_only_changed_fields():
    """Equal scalars, address fields and line items are dropped; the id always stays."""
    known = KnownOrder(
        "A",
        params={
            "id": "A",
            "status": "shipped",
            "shipped_at": 1672531200,
            "shipping_address": {"city": "X", "zip": "1"},
            "order_line_items": [{"id": "li_1", "status": "shipped"}],
        },
    )
    requested = {
        "id": "A",
        "status": "shipped",
        "shipped_at": 1672531200,
        "tracking_id": "T",
        "shipping_address": {"city": "X", "zip": "2"},
        "order_line_items": [
            {"id": "li_1", "status": "shipped"},
            {"id": "li_2", "status": "returned"},
        ],
    }
    assert diff_params(requested, known) == {
        "id": "A",
        "tracking_id": "T",
        "shipping_address": {"zip": "2"},
        "order_line_items": [{"id": "li_2", "status": "returned"}],
    }
    assert diff_params({"id": "Z", "status": "new"}, None) == {"id": "Z", "status": "new"}


def test_plan_splits_unchanged_rows_and_passes_done_and_invalid_rows():
    """Rows with nothing left to change are set apart; done and invalid rows pass through."""
    known = {"A": KnownOrder("A", params={"id": "A", "status": "shipped"})}

    def row(key: str, **params: object) -> SourceRow:
        return SourceRow(key, "f.csv", None, 2, {}, {"id": "A", **params})

    same, changed, done = (
        row("k1", status="shipped"),
        row("k2", status="new"),
        row("k3", status="x"),
    )
    send, unchanged = plan_update_rows([same, changed, done], known, {"k3"})
    assert [r.row_key for r in unchanged] == ["k1"]
    assert [(r.row_key, dict(r.params)) for r in send] == [
        ("k2", {"id": "A", "status": "new"}),
        ("k3", {"id": "A", "status": "x"}),
    ]


def test_import_only_columns_are_not_updatable_and_point_to_import(tmp_path):
    """An import file given to update: 'not updatable' naming the column; hint names run."""
    path = write(tmp_path / "fixes.csv", [{"id": "A", "invoice_id": "INV-1", "status": "shipped"}])
    with pytest.raises(InputError, match="not updatable: 'invoice_id'") as info:
        read_update_rows(path, Settings())
    text = str(info.value)
    assert "column 'invoice_id'" in text
    assert "order-import run" in text
    assert "POST /orders is deprecated" in text
    with pytest.raises(InputError, match="not an order-update column") as other:
        read_update_rows(write(tmp_path / "x.csv", [{"id": "A", "colour": "red"}]), Settings())
    assert "not updatable" not in str(other.value)


def test_mapping_renames_columns_and_sets_date_formats(tmp_path):
    """--mapping: [columns] renames legacy headers, [dates] parses local wall-clock dates."""
    mapping = tmp_path / "m.toml"
    mapping.write_text(
        '[columns]\n"Order Ref" = "id"\n"Carrier" = "shipment_carrier"\n'
        '"Delivered" = "delivered_at"\n"Ship City" = "shipping_address[city]"\n'
        '[dates]\nformats = ["%d/%m/%Y"]\ntimezone = "Europe/Berlin"\n',
        encoding="utf-8",
    )
    path = write(
        tmp_path / "fixes.csv",
        [{"Order Ref": "A", "Carrier": "DHL", "Delivered": "02/01/2023", "Ship City": "Köln"}],
    )
    (row,) = read_update_rows(path, Settings(mapping_path=mapping))
    assert row.is_valid, row.issues
    assert row.params == {
        "id": "A",
        "shipment_carrier": "DHL",
        "delivered_at": 1672614000,  # 2023-01-02 00:00 in Berlin = 2023-01-01T23:00Z
        "shipping_address": {"city": "Köln"},
    }


def test_xi_is_refused_without_eu_vat_and_accepted_with_it(tmp_path):
    """A correction to ``XI`` (Northern Ireland) follows the same rule as an import: only
    with ``eu_vat``; other countries are unaffected."""
    path = write(
        tmp_path / "fixes.csv",
        [
            {"id": "A", "shipping_address[country]": "XI"},
            {"id": "B", "shipping_address[country]": "gb"},
        ],
    )
    plain = read_update_rows(path, Settings())
    assert [i.rule for i in plain[0].issues] == ["country_xi"]
    assert "eu_vat = true" in plain[0].issues[0].message
    assert plain[1].issues == ()
    assert plain[1].params["shipping_address"] == {"country": "GB"}
    with_vat = read_update_rows(path, Settings(eu_vat=True))
    assert with_vat[0].issues == ()
    assert with_vat[0].params["shipping_address"] == {"country": "XI"}
