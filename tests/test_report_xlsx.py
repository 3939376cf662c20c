"""failures.xlsx's streamed writer (``report/xlsx.py``) writes what openpyxl's write-only
workbook wrote: the same cells read back, by openpyxl and by calamine (the loader's reader)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import python_calamine as pc
from openpyxl import Workbook, load_workbook

from pipeline.report.files import _xlsx_text
from pipeline.report.xlsx import SheetWriter, column_name
from tests.status_history import xlsx_cells

HOSTILE: list[Any] = [
    "plain",
    "a\r\nb",
    "a\rb",
    "a\nb",
    "  lead and trail  ",
    "x&<>\"'",
    "\ttab",
    "emoji 😀",
    "Zürich",
    "'=cmd|' /C calc'!A0",
    "-12.50",
    "",
    "\u2028",
    "a\x01b\x1fc",
    "]]>",
    "&amp;",
    "\ufffd",
    "<t>not markup</t>",
    "x" * 5000,
    7,
    2.5,
    True,
    None,
]


def _rows() -> list[list[Any]]:
    header = [f"c{i}" for i in range(len(HOSTILE))]
    return [header, HOSTILE, HOSTILE[::-1], ["only one"], HOSTILE[5:] + ["tail"] * 30]


def _openpyxl(path: Path, rows: list[list[Any]]) -> None:
    """The writer failures.xlsx had before: openpyxl's write-only workbook."""
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("failures")
    for row in rows:
        ws.append([_xlsx_text(v) for v in row])
    wb.save(path)


def _streamed(path: Path, rows: list[list[Any]]) -> None:
    """As failures.xlsx is written now: the writer itself replaces what XML cannot hold."""
    with SheetWriter(path, "failures") as sheet:
        for row in rows:
            sheet.append(row)


def _read_calamine(path: Path) -> list[list[Any]]:
    return list(pc.CalamineWorkbook.from_path(str(path)).get_sheet_by_name("failures").to_python())


def test_streamed_xlsx_reads_back_as_openpyxl_wrote_it(tmp_path: Path) -> None:
    """Hostile text (markup, control characters, CR/LF, emoji, long cells), numbers, booleans
    and empty cells read back identically from both writers' files, by openpyxl and calamine;
    the file also opens in openpyxl's full (not read-only) mode."""
    rows = _rows()
    _openpyxl(tmp_path / "old.xlsx", rows)
    _streamed(tmp_path / "new.xlsx", rows)
    old = xlsx_cells(tmp_path / "old.xlsx")
    assert xlsx_cells(tmp_path / "new.xlsx") == old
    assert old[1][0] == "plain"  # the comparison compares cells, not two empty sheets
    assert _read_calamine(tmp_path / "new.xlsx") == _read_calamine(tmp_path / "old.xlsx")
    full = load_workbook(tmp_path / "new.xlsx")
    assert full.sheetnames == ["failures"]
    assert full["failures"]["B2"].value == "a\nb"


def test_column_names() -> None:
    """Columns are lettered as spreadsheets letter them."""
    assert [column_name(i) for i in (0, 1, 25, 26, 27, 51, 52, 701, 702)] == [
        "A",
        "B",
        "Z",
        "AA",
        "AB",
        "AZ",
        "BA",
        "ZZ",
        "AAA",
    ]
