"""prepare_rows / validate_file on the sample data: exact error counts, CSV == XLSX, SourceRows."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.errors import ConfigError, InputError
from pipeline.keys import ROW_KEY_COLUMN
from pipeline.prepare.prepare import prepare_rows, validate_file

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"
MAPPING = SAMPLES / "legacy_orders.mapping.toml"


def _settings(**kw: object) -> Settings:
    return Settings(mapping_path=MAPPING, **kw)  # type: ignore[arg-type]


def test_known_error_file_counts_exactly(tmp_path: Path) -> None:
    """Every injected error is found once, by rule, and validation.csv holds them all."""
    summary = validate_file(SAMPLES / "legacy_orders_with_errors.csv", _settings(), tmp_path)
    assert dict(summary.counts_by_rule) == {
        "enum": 3,
        "required": 2,
        "date": 2,
        "date_order": 2,
        "email": 2,
        "country": 1,
        "duplicate_row_key": 2,  # both rows of the repeated order id (lines 31 and 32)
        "max_length": 1,
        "integer": 1,
        "ragged_row": 1,
        "leading_zero": 1,
    }
    assert (summary.rows_read, summary.invalid, summary.errors, summary.warnings) == (
        100,
        17,
        17,
        1,
    )
    with (tmp_path / "validation.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 18
    dup_lines = sorted(int(r["source_line"]) for r in rows if r["rule"] == "duplicate_row_key")
    assert dup_lines == [31, 32]
    enum_lines = sorted(int(r["source_line"]) for r in rows if r["rule"] == "enum")
    assert enum_lines == [5, 19, 44]
    assert {r["column"] for r in rows if r["rule"] == "email"} == {"Ship To Email"}


def test_sample_csv_and_xlsx_are_valid_and_identical() -> None:
    """The demo files validate cleanly and the workbook maps to exactly the CSV's params."""
    csv_rows = [
        r for chunk in prepare_rows(SAMPLES / "legacy_orders.csv", _settings()) for r in chunk
    ]
    xlsx_rows = [
        r for chunk in prepare_rows(SAMPLES / "legacy_orders.xlsx", _settings()) for r in chunk
    ]
    assert len(csv_rows) == 600
    assert all(r.is_valid for r in csv_rows)
    assert [r.params for r in csv_rows] == [r.params for r in xlsx_rows]
    assert [r.row_key for r in csv_rows] == [r.row_key for r in xlsx_rows]


def test_source_rows_carry_nested_params_and_ids() -> None:
    """Params are nested, timestamps int, the id is prefix + document number, raw is text."""
    first = next(iter(prepare_rows(SAMPLES / "legacy_orders.csv", _settings())))[0]
    assert first.row_key == first.order_id == "OLD-" + first.raw["Order #"]
    assert isinstance(first.params["order_date"], int)
    assert first.params["shipping_address"]["city"] == first.raw["Ship To City"]
    assert first.params["batch_id"] == "legacy-2024"
    assert first.source_line == 2
    assert first.sheet is None


def test_api_column_file_needs_no_mapping() -> None:
    """API-named columns (dots or brackets) validate without a mapping file."""
    summary = validate_file(SAMPLES / "api_columns.csv", Settings(), None)
    assert (summary.rows_read, summary.invalid) == (60, 0)


def test_chunks_follow_chunk_rows() -> None:
    """prepare_rows yields lists of at most chunk_rows rows."""
    sizes = [len(c) for c in prepare_rows(SAMPLES / "legacy_orders.csv", _settings(chunk_rows=250))]
    assert sizes == [250, 250, 100]


def test_failures_file_row_key_and_unneutralise(tmp_path: Path) -> None:
    """oi:row_key becomes the key, other oi: columns are ignored, apostrophes are undone."""
    path = tmp_path / "failures.csv"
    path.write_text(
        f"{ROW_KEY_COLUMN},oi:error,id,invoice_id,status,created_at,order_date,shipping_date,"
        "shipping_address[phone]\n"
        "KEY-1,boom,A1,INV1,shipped,2023-04-05,2023-04-05,2023-04-06,'+44 20 7946 0000\n",
        encoding="utf-8",
    )
    (row,) = next(iter(prepare_rows(path, Settings())))
    assert row.row_key == "KEY-1"
    assert row.order_id == "A1"
    assert row.params["shipping_address"]["phone"] == "+44 20 7946 0000"
    assert "oi:error" not in row.raw
    assert not row.issues


def test_derived_ids_are_deterministic_without_id_column(tmp_path: Path) -> None:
    """Without an id column every row gets a stable MIG- id derived from its content hash."""
    path = tmp_path / "noid.csv"
    path.write_text(
        "invoice_id,status,created_at,order_date,shipping_date\n"
        "INV1,shipped,2023-04-05,2023-04-05,2023-04-06\n",
        encoding="utf-8",
    )
    one = next(iter(prepare_rows(path, Settings())))[0]
    two = next(iter(prepare_rows(path, Settings())))[0]
    assert one.order_id == two.order_id
    assert str(one.order_id).startswith("MIG-")
    assert one.row_key.startswith("h:")


def test_missing_required_columns_raise_before_rows(tmp_path: Path) -> None:
    """A file without any param columns, or lacking required ones, is exit-2 input."""
    path = tmp_path / "x.csv"
    path.write_text("foo,bar\n1,2\n", encoding="utf-8")
    with pytest.raises(InputError, match="no import_order columns"):
        prepare_rows(path, Settings())
    path.write_text("invoice_id,status\n1,shipped\n", encoding="utf-8")
    with pytest.raises(InputError, match="created_at"):
        prepare_rows(path, Settings())


def test_broken_mapping_is_a_config_error(tmp_path: Path) -> None:
    """A mapping naming an unknown param fails with the file and key."""
    bad = tmp_path / "m.toml"
    bad.write_text('[columns]\n"Order #" = "order_number"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"m.toml: \[columns"):
        prepare_rows(SAMPLES / "legacy_orders.csv", Settings(mapping_path=bad))


def test_duplicate_ids_and_keys_are_caught(tmp_path: Path) -> None:
    """Identical rows repeat a key; distinct oi:row_keys with one id repeat the id. Every row
    involved is invalid, the first one too (it names the line repeating it)."""
    path = tmp_path / "dups.csv"
    row = "INV1,shipped,2023-04-05,2023-04-05,2023-04-06"
    path.write_text(
        f"invoice_id,status,created_at,order_date,shipping_date\n{row}\n{row}\n", encoding="utf-8"
    )
    summary = validate_file(path, Settings(), None)
    assert dict(summary.counts_by_rule) == {"duplicate_row_key": 2}
    assert (summary.valid, summary.invalid) == (0, 2)
    path.write_text(
        f"{ROW_KEY_COLUMN},id,invoice_id,status,created_at,order_date,shipping_date\n"
        f"K1,A1,{row}\nK2,A1,{row}\n",
        encoding="utf-8",
    )
    summary = validate_file(path, Settings(), None)
    assert dict(summary.counts_by_rule) == {"duplicate_id": 2}
    assert (summary.valid, summary.invalid) == (0, 2)
    messages = {i.source_line: i.message for i in summary.examples}
    assert messages[2].startswith("id is repeated on line 3")
    assert messages[3] == "id repeats line 2"


@pytest.mark.parametrize(
    ("system", "order_date"),
    [(1900, "2023-04-05T12:00:00+00:00"), (1904, "2027-04-06T12:00:00+00:00")],
)
def test_excel_serials_follow_the_workbook_date_system(system: int, order_date: str) -> None:
    """Serial 45021.5 is 2023-04-05 12:00 in a 1900 workbook and 2027-04-06 12:00 in 1904."""
    fixture = Path(__file__).parent / "fixtures" / "input" / f"excel_{system}.xlsx"
    (row,) = next(iter(prepare_rows(fixture, Settings())))
    moment = dt.datetime.fromtimestamp(row.params["order_date"], dt.UTC).isoformat()
    assert moment == order_date
    created = dt.datetime.fromtimestamp(row.params["created_at"], dt.UTC).isoformat()
    assert created == "2023-04-05T14:22:00+00:00"
    assert row.order_id == "000123"
    assert row.params["invoice_id"] == "123456789012345"
    assert row.sheet == "Orders"


def test_collapse_mixes_one_line_and_several_line_orders() -> None:
    """One-line orders stay as they are; several-line orders take each read column's first
    non-empty value, keep every line, and a disagreement names both lines."""
    import numpy as np
    import pandas as pd

    from pipeline.load.rows import RawChunk
    from pipeline.prepare.grouping import collapse

    frame = pd.DataFrame(
        {
            "Name": ["#1", "#1", "#2", "#3", "#3", "#3", "#4"],
            "Zip": ["", "1015 CJ", "80331", "10115", "", "10117", ""],
            "Item": ["a", "b", "c", "d", "e", "f", "g"],
        },
        dtype="str",
    )
    chunk = RawChunk(frame, np.arange(2, 9), [])
    out = collapse(chunk, "Name", ["Name", "Zip"])
    assert out.frame["Name"].tolist() == ["#1", "#2", "#3", "#4"]
    assert out.frame["Zip"].tolist() == ["1015 CJ", "80331", "10115", ""]
    assert out.frame["Item"].tolist() == ["a", "c", "d", "g"]  # not read: the first row's
    assert out.lines.tolist() == [2, 4, 5, 8]
    assert out.group_lines == [(2, 3), (4,), (5, 6, 7), (8,)]
    assert [(pos, i.rule, i.source_line, i.value) for pos, i in out.issues] == [
        (2, "group_conflict", 5, "10115 | 10117")
    ]
