"""`order-import validate` and `mapping init` through click's CliRunner: exit codes and messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_data"
FIX = ROOT / "tests" / "fixtures" / "input"
MAPPING = str(SAMPLES / "legacy_orders.mapping.toml")


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """validate writes reports/validate-<file>/ in the working directory: keep it in tmp."""
    monkeypatch.chdir(tmp_path)


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={"ORDER_IMPORT_CONFIG": ""})
    return result.exit_code, result.output


def test_valid_file_exits_0() -> None:
    """All rows valid: exit 0 and a summary saying so."""
    code, out = _run("validate", str(SAMPLES / "legacy_orders.csv"), "--mapping", MAPPING)
    assert code == 0
    assert "600 valid, 0 invalid" in out


def test_invalid_rows_exit_1_and_write_report(tmp_path: Path) -> None:
    """Some rows invalid: exit 1, counts by rule, examples with line/column, validation.csv."""
    code, out = _run(
        "validate",
        str(SAMPLES / "legacy_orders_with_errors.csv"),
        "--mapping",
        MAPPING,
        "--report-dir",
        str(tmp_path),
    )
    assert code == 1
    assert "17 invalid" in out  # both rows of the repeated order id
    assert "line 5, column 'Status'" in out
    assert (tmp_path / "validation.csv").is_file()


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("missing.csv", "missing.csv: file not found"),
        ("empty.csv", "empty.csv: the file is empty"),
        ("header_only.csv", "header_only.csv: no data rows"),
        ("binary.csv", "binary.csv: looks like a binary file"),
        ("not_a_workbook.xlsx", "not_a_workbook.xlsx: not a readable workbook"),
    ],
)
def test_unusable_input_exits_2_without_traceback(name: str, needle: str) -> None:
    """Unusable input: exit 2, one message naming the file, never a traceback."""
    code, out = _run("validate", str(FIX / name))
    assert code == 2
    assert needle in out
    assert "Traceback" not in out


def test_bad_mapping_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    """A mapping with a bad key: exit 2 with the mapping path and key in the message."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[dates]\ntimezone = "Mars/Olympus"\n', encoding="utf-8")
    code, out = _run("validate", str(SAMPLES / "legacy_orders.csv"), "--mapping", str(bad))
    assert code == 2
    assert "bad.toml: [dates]" in out
    assert "Mars/Olympus" in out
    assert "Traceback" not in out


def test_encoding_error_names_line(tmp_path: Path) -> None:
    """A wrong --encoding fails with file and line, exit 2."""
    path = tmp_path / "x.csv"
    path.write_bytes(b"id,invoice_id\nA,B\nC,caf\xe9\n")
    code, out = _run("validate", str(path), "--encoding", "utf-8")
    assert code == 2
    assert "x.csv, line 3" in out


def test_mapping_init_matches_legacy_headers(tmp_path: Path) -> None:
    """mapping init maps Order #, Invoice No, Ship To City... and the result validates."""
    out_file = tmp_path / "m.toml"
    code, out = _run("mapping", "init", str(SAMPLES / "legacy_orders.csv"), "--out", str(out_file))
    assert code == 0, out
    text = out_file.read_text(encoding="utf-8")
    assert '"Order #" = "document_number"' in text
    assert '"Invoice No" = "invoice_id"' in text
    assert '"Ship To City" = "shipping_address.city"' in text
    assert '"Shipped" = "shipped"' in text
    assert 'formats = ["%d/%m/%Y %H:%M"]' in text
    code, out = _run("validate", str(SAMPLES / "legacy_orders.csv"), "--mapping", str(out_file))
    assert code == 0, out
    code, out = _run("mapping", "init", str(SAMPLES / "legacy_orders.csv"), "--out", str(out_file))
    assert code == 2
    assert "already exists" in out


def test_sheet_and_delimiter_flags() -> None:
    """--sheet picks a worksheet (unknown ones are listed); --delimiter tab is accepted."""
    code, out = _run("validate", str(FIX / "excel_1900.xlsx"), "--sheet", "Orders")
    assert code == 0, out
    code, out = _run("validate", str(FIX / "excel_1900.xlsx"), "--sheet", "Nope")
    assert code == 2
    assert "no sheet 'Nope'; the workbook has: Orders, Second" in out
    code, out = _run("validate", str(FIX / "utf16_bom_tab.csv"), "--delimiter", "tab")
    assert code == 0, out
    assert "Read as utf-16 text, delimiter TAB." in out


def test_mapping_init_reads_a_german_export(tmp_path: Path) -> None:
    """German headers, cp1252, ';', DD.MM.YYYY and decimal commas: the starter validates as is,
    apart from the status the tool cannot guess (left for the user, named as a bad value)."""
    from tests.exports import write_german_erp

    export = write_german_erp(tmp_path / "auftraege.csv")
    out_file = tmp_path / "m.toml"
    code, out = _run("mapping", "init", str(export.path), "--out", str(out_file))
    assert code == 0, out
    text = out_file.read_text("utf-8")
    for line in (
        '"Rechnungsnummer" = "invoice_id"',
        '"Auftragsdatum" = ["order_date", "created_at"]',
        '"Straße" = "shipping_address.line1"',
        '"PLZ" = "shipping_address.zip"',
        'encoding = "cp1252"',
        'delimiter = ";"',
        'decimal = ","',
        'formats = ["%d.%m.%Y"]',
        'amount = "Betrag"',
        '"Storniert" = "cancelled"',
        '# "Entwurf" = ""',
    ):
        assert line in text, line
    code, out = _run("validate", str(export.path), "--mapping", str(out_file))
    assert code == 1, out
    assert "'Auftragsstatus' (status, enum): 1 distinct" in out
    assert "      3  'Entwurf'" in out
    assert '[values."status"]' in out
    assert "reports/validate-auftraege/validation.csv" in out
    assert (tmp_path / "reports" / "validate-auftraege" / "validation.csv").exists()


def test_mapping_init_flags_day_month_ambiguity(tmp_path: Path) -> None:
    """When no sampled day is above 12, the guessed format is marked AMBIGUOUS."""
    path = tmp_path / "a.csv"
    path.write_text(
        "Invoice,Status,Order Date\nI1,shipped,03/04/2023\nI2,shipped,05/06/2023\n", "utf-8"
    )
    out_file = tmp_path / "m.toml"
    code, out = _run("mapping", "init", str(path), "--out", str(out_file))
    assert code == 0, out
    assert "# AMBIGUOUS: every sampled date fits both %d/%m/%Y" in out_file.read_text("utf-8")
    assert "Check: every sampled date fits both" in out


@pytest.mark.parametrize("preset", ["shopify", "woocommerce", "magento"])
def test_mapping_init_preset_validates_its_export(tmp_path: Path, preset: str) -> None:
    """--preset writes the shipped mapping; the platform's export then validates clean."""
    from tests.exports import write_magento, write_shopify, write_woocommerce

    write = {"shopify": write_shopify, "woocommerce": write_woocommerce, "magento": write_magento}
    suffix = ".xlsx" if preset == "woocommerce" else ".csv"
    export = write[preset](tmp_path / f"export{suffix}")
    out_file = tmp_path / "m.toml"
    code, out = _run(
        "mapping", "init", str(export.path), "--preset", preset, "--out", str(out_file)
    )
    assert code == 0, out
    assert "Check:" not in out  # the file has every column the preset reads
    assert out_file.read_text("utf-8").startswith(
        f"# Written by `order-import mapping init --preset {preset}`"
    )
    code, out = _run(
        "validate", str(export.path), "--mapping", str(out_file), "--report-dir", str(tmp_path)
    )
    assert code == 0, out
    assert f"Skipped by the mapping (never sent): {len(export.skipped)}" in out
