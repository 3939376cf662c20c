"""XLS (Excel 97-2003) and ODS workbooks: read through the same text-preserving path as XLSX."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipeline.load.reader import open_source

xlwt = pytest.importorskip("xlwt")
odf_opendocument = pytest.importorskip("odf.opendocument")


def write_xls(path: Path) -> Path:
    """An .xls with a text id keeping its zeros, a long numeric id, and a date cell."""
    book = xlwt.Workbook()
    sheet = book.add_sheet("Orders")
    date_style = xlwt.easyxf(num_format_str="yyyy-mm-dd hh:mm")
    for col, name in enumerate(["id", "invoice_id", "order_date", "note"]):
        sheet.write(0, col, name)
    sheet.write(1, 0, "000123")
    sheet.write(1, 1, 123456789012345)
    sheet.write(1, 2, dt.datetime(2023, 4, 5, 14, 22), date_style)
    sheet.write(1, 3, "Zoë")
    book.save(str(path))
    return path


def write_ods(path: Path) -> Path:
    """An .ods with the same cells (the date as an ODF date value)."""
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    doc = odf_opendocument.OpenDocumentSpreadsheet()
    table = Table(name="Orders")

    def row(cells: list[TableCell]) -> None:
        tr = TableRow()
        for cell in cells:
            tr.addElement(cell)
        table.addElement(tr)

    def text(value: str) -> TableCell:
        cell = TableCell(valuetype="string")
        cell.addElement(P(text=value))
        return cell

    row([text(n) for n in ["id", "invoice_id", "order_date", "note"]])
    number = TableCell(valuetype="float", value="123456789012345")
    number.addElement(P(text="123456789012345"))
    date = TableCell(valuetype="date", datevalue="2023-04-05T14:22:00")
    date.addElement(P(text="2023-04-05 14:22"))
    row([text("000123"), number, date, text("Zoë")])
    doc.spreadsheet.addElement(table)
    doc.save(str(path))
    return path


@pytest.mark.parametrize("writer", [write_xls, write_ods], ids=["xls", "ods"])
def test_legacy_workbooks_keep_every_digit_as_text(tmp_path, writer):
    """Leading zeros stay, long ids are not in scientific notation, dates become ISO text."""
    suffix = ".xls" if writer is write_xls else ".ods"
    source = open_source(writer(tmp_path / f"orders{suffix}"))
    assert source.sheet == "Orders"
    row = next(source.chunks()).frame.iloc[0].to_dict()
    assert row["id"] == "000123"
    assert row["invoice_id"] == "123456789012345"
    assert row["order_date"].startswith("2023-04-05")
    assert "14:22" in row["order_date"]
    assert row["note"] == "Zoë"
