"""A one-sheet XLSX written as a stream: what failures.xlsx needs, at the speed of the CSV.

An XLSX is a zip of XML parts (ECMA-376, SpreadsheetML). failures.xlsx is one sheet of text and
numbers without styles, so its sheet is written line by line into the zip with inline strings
(``t="inlineStr"``), as openpyxl's and xlsxwriter's streaming modes write the same cells, at a
fraction of their cost per cell (``bench/bench_xlsx.py`` measures the three side by side).
Cells read back the same (``tests/test_report_xlsx.py``: openpyxl and calamine, against
openpyxl's write-only writer, hostile text included).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_TYPES = (
    _HEAD + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/styles.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    _HEAD + f'<Relationships xmlns="{_PKG}"><Relationship Id="rId1" '
    f'Type="{_REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
_BOOK_RELS = (
    _HEAD + f'<Relationships xmlns="{_PKG}">'
    f'<Relationship Id="rId1" Type="{_REL}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{_REL}/styles" Target="styles.xml"/></Relationships>'
)
_STYLES = (
    _HEAD + f'<styleSheet xmlns="{_NS}">'
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)
_ESCAPE = re.compile(r"[&<>]")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# A carriage return is written as is (as openpyxl does): XML readers hand it back as a line feed.
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Characters XML 1.0 (or UTF-8) cannot hold: replaced by U+FFFD."""
LONG_TEXT = 16_383
"""Texts up to this long always fit an Excel cell (32,767 UTF-16 units, two per character at
most): ``SheetWriter``'s ``long_text`` is asked only about longer ones."""
_SPECIAL = re.compile(r"[&<>\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""What ``_escape`` changes: a text without any is written as it is."""


def _escape(text: str) -> str:
    if _ILLEGAL.search(text):
        text = _ILLEGAL.sub("\ufffd", text)
    return _ESCAPE.sub(lambda m: _ENTITIES[m.group()], text) if _ESCAPE.search(text) else text


def column_name(index: int) -> str:
    """``A``, ``B``, ... ``Z``, ``AA``... for a 0-based column index."""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


class SheetWriter:
    """Write one sheet named ``name`` into a new XLSX at ``path``, a row at a time."""

    def __init__(
        self,
        path: Path,
        name: str,
        *,
        compresslevel: int = 1,
        long_text: Callable[[str], str] | None = None,
    ) -> None:
        """``long_text``: what to write instead of a text longer than ``LONG_TEXT`` characters
        (``files.excel_cell`` cuts one Excel cannot hold); None: every text as it is."""
        self._long_text = long_text
        self._zip = zipfile.ZipFile(
            path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel
        )
        self._zip.writestr("[Content_Types].xml", _TYPES)
        self._zip.writestr("_rels/.rels", _ROOT_RELS)
        self._zip.writestr(
            "xl/workbook.xml",
            _HEAD + f'<workbook xmlns="{_NS}" xmlns:r="{_REL}"><sheets>'
            f'<sheet name="{_escape(name)}" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        self._zip.writestr("xl/_rels/workbook.xml.rels", _BOOK_RELS)
        self._zip.writestr("xl/styles.xml", _STYLES)
        self._sheet: IO[bytes] = self._zip.open("xl/worksheets/sheet1.xml", "w", force_zip64=True)
        self._sheet.write((_HEAD + f'<worksheet xmlns="{_NS}"><sheetData>').encode())
        self._rows = 0
        self._columns: list[str] = []
        self._buffer: list[str] = []

    def append(self, values: Sequence[object]) -> None:
        """One row: ``str`` as text, ``int``/``float`` as numbers, ``bool`` as booleans, None
        and ``""`` as an empty cell."""
        self._rows += 1
        row = self._rows
        while len(self._columns) < len(values):
            self._columns.append(column_name(len(self._columns)))
        cells = [f'<row r="{row}">']
        for column, value in zip(self._columns, values, strict=False):
            if type(value) is str:  # the usual cell: text, most often needing no escape
                if value:
                    if len(value) > LONG_TEXT and self._long_text is not None:
                        value = self._long_text(value)
                    text = _escape(value) if _SPECIAL.search(value) else value
                    cells.append(
                        f'<c r="{column}{row}" t="inlineStr"><is><t xml:space="preserve">'
                        f"{text}</t></is></c>"
                    )
            elif value is None or value == "":
                continue  # an empty cell, as openpyxl leaves it
            elif isinstance(value, bool):
                cells.append(f'<c r="{column}{row}" t="b"><v>{int(value)}</v></c>')
            elif isinstance(value, int | float):
                cells.append(f'<c r="{column}{row}"><v>{value!r}</v></c>')
            else:
                cells.append(
                    f'<c r="{column}{row}" t="inlineStr"><is><t xml:space="preserve">'
                    f"{_escape(str(value))}</t></is></c>"
                )
        cells.append("</row>")
        self._buffer.append("".join(cells))
        if len(self._buffer) >= 500:
            self._flush()

    def extend(self, rows: Iterable[Sequence[object]]) -> None:
        for values in rows:
            self.append(values)

    def _flush(self) -> None:
        self._sheet.write("".join(self._buffer).encode("utf-8"))
        self._buffer.clear()

    def close(self) -> None:
        """Finish the sheet and the file."""
        if self._sheet.closed:
            return
        self._flush()
        self._sheet.write(b"</sheetData></worksheet>")
        self._sheet.close()
        self._zip.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
