"""Read XLSX/XLSM/XLSB/XLS/ODS workbooks with python-calamine, every cell rendered as text.

Numbers keep every digit (no ``1.2E+11``), date cells become ISO 8601 text, and the workbook's
date system (1900 or 1904) is recorded so numeric serial dates can be converted by the mapper.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError
from pipeline.load.rows import RawChunk, Source, clean_header, fit_row, frame_from_rows
from pipeline.models import Issue

_DATE1904 = re.compile(rb"<(?:\w+:)?workbookPr\b[^>]*\bdate1904\s*=\s*\"(1|true)\"", re.IGNORECASE)


def cell_text(value: object) -> str:
    """Render one calamine cell as text without losing digits.

    Integral floats print as integers (``123456789012345``, not ``1.23456789012345e+14``); other
    floats use the shortest round-trip form; datetimes become ISO 8601 (``2023-04-05T14:22:00``).
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value.total_seconds())
    return str(value)


def workbook_date_system(path: Path) -> int:
    """1904 when an XLSX/XLSM workbook declares ``date1904``, else 1900 (also for XLS/ODS)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "xl/workbook.xml" not in names:
                return 1900
            return 1904 if _DATE1904.search(archive.read("xl/workbook.xml")[:65536]) else 1900
    except (zipfile.BadZipFile, OSError, KeyError):
        return 1900


def sheet_names(path: Path) -> list[str]:
    """The workbook's sheet names, or ``[]`` when it cannot be read as a workbook."""
    import python_calamine as pc

    try:
        return list(pc.CalamineWorkbook.from_path(str(path)).sheet_names)
    except Exception:  # calamine raises several unrelated types for corrupt files
        return []


def open_workbook(path: Path, *, sheet: str | None, chunk_rows: int) -> Source:
    """Open a workbook sheet (name, or 0-based index as text; default the first sheet).

    Raises:
        InputError: not a readable workbook, password protected, no such sheet, no header.
    """
    import python_calamine as pc

    try:
        workbook = pc.CalamineWorkbook.from_path(str(path))
    except pc.PasswordError:
        raise InputError("the workbook is password protected", path=str(path)) from None
    except Exception as exc:  # calamine raises several unrelated types for corrupt files
        raise InputError(
            f"not a readable workbook ({type(exc).__name__})",
            path=str(path),
            hint="save it again as .xlsx or export CSV",
        ) from None
    names: list[str] = list(workbook.sheet_names)
    if not names:
        raise InputError("the workbook has no sheets", path=str(path))
    if sheet is None:
        name = names[0]
    elif sheet in names:
        name = sheet
    elif sheet.strip().isdigit() and int(sheet) < len(names):
        name = names[int(sheet)]
    else:
        raise InputError(
            f"no sheet {sheet!r}; the workbook has: {', '.join(names)}",
            path=str(path),
        )
    try:
        data = workbook.get_sheet_by_name(name)
        first_row = int(data.start[0]) + 1 if data.start else 1
        rows = iter(data.iter_rows())
    except Exception as exc:  # corrupt sheet XML
        raise InputError(
            f"cannot read sheet {name!r} ({type(exc).__name__})", path=str(path)
        ) from None
    reader = _SheetReader(path, name, rows, first_row, chunk_rows)
    header, header_line = reader.read_header()
    return Source(
        path=path,
        kind="workbook",
        header=header,
        header_line=header_line,
        sheet=name,
        excel_date_system=workbook_date_system(path),
        _chunks=reader.chunks(),
    )


class _SheetReader:
    """Turn calamine rows into text chunks; the source line is the Excel row number."""

    def __init__(
        self, path: Path, sheet: str, rows: Iterator[list[Any]], first_row: int, chunk_rows: int
    ) -> None:
        self.path = path
        self.sheet = sheet
        self.rows = rows
        self.row_number = first_row - 1
        self.chunk_rows = chunk_rows
        self.header: list[str] = []

    def _next(self) -> tuple[int, list[str]] | None:
        for raw in self.rows:
            self.row_number += 1
            cells = [cell_text(value) for value in raw]
            if any(cell.strip() for cell in cells):
                return self.row_number, cells
        return None

    def read_header(self) -> tuple[list[str], int]:
        first = self._next()
        if first is None:
            raise InputError(f"sheet {self.sheet!r} is empty", path=str(self.path))
        line, names = first
        while names and not names[-1].strip():
            names.pop()  # calamine pads to the used range's width
        self.header = clean_header(names, self.path, line)
        return self.header, line

    def chunks(self) -> Iterator[RawChunk]:
        width = len(self.header)
        while True:
            rows: list[list[str]] = []
            lines: list[int] = []
            issues: list[tuple[int, Issue]] = []
            while len(rows) < self.chunk_rows:
                item = self._next()
                if item is None:
                    break
                line, cells = item
                if len(cells) > width and not any(c.strip() for c in cells[width:]):
                    cells = cells[:width]
                elif len(cells) != width:
                    cells = fit_row(cells, width, line, issues, len(rows))
                rows.append(cells)
                lines.append(line)
            if not rows:
                return
            yield RawChunk(frame_from_rows(self.header, rows), np.asarray(lines, np.int64), issues)
            if len(rows) < self.chunk_rows:
                return
