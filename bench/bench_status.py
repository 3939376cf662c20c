"""``status`` and ``report`` on a big ledger, old code against new, and failures.xlsx writers.

``python -m bench.bench_status [--quick]`` prints ``bench_ledger.status_and_report`` (set
``BENCH_BASELINE`` to an old checkout with its ``.venv``, ``BENCH_BIG_ROWS``, and
``BENCH_BIG_LEDGER`` to reuse a big ledger) and the time to write the same failure rows with
openpyxl's write-only workbook (what failures.xlsx used), xlsxwriter's ``constant_memory``
workbook (when it is installed; it is not a dependency) and ``report/xlsx.py``, side by side.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.bench_ledger import status_and_report
from bench.common import Figure, figure
from pipeline.report.files import TOOL_COLUMNS, _xlsx_text
from pipeline.report.xlsx import SheetWriter

ROWS = 170_000
"""Failure rows of a 10M-row batch with 1% invalid, 0.5% failed and 0.2% retryable rows."""


def _records(n: int) -> list[list[Any]]:
    """``n`` failure records shaped like failures.csv's: a few original columns, then the tool
    columns, text with accents and markup."""
    return [
        [f"B-{i:08d}", str(i % 1000), "EUR", f"Zürich <{i}> & co", *(
            f"B-{i:08d}", str(i + 2), "invalid", "rule", "status", "status", "enum", "",
            "status: not a status",
        )]
        for i in range(n)
    ]  # fmt: skip


def _openpyxl(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("failures")
    ws.append(header)
    for row in rows:
        ws.append([_xlsx_text(v) for v in row])
    wb.save(path)


def _xlsxwriter(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    import xlsxwriter  # type: ignore[import-not-found, unused-ignore]

    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_numbers": False})
    ws = wb.add_worksheet("failures")
    ws.write_row(0, 0, header)
    for i, row in enumerate(rows, start=1):
        ws.write_row(i, 0, [_xlsx_text(v) for v in row])
    wb.close()


def _streamed(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with SheetWriter(path, "failures") as sheet:
        sheet.append(header)
        for row in rows:
            sheet.append([_xlsx_text(v) for v in row])


def xlsx_writers(n: int = ROWS) -> list[Figure]:
    """Seconds to write ``n`` failure rows with each writer, one after the other in this run."""
    rows = _records(n)
    header = ["id", "total", "currency", "note", *TOOL_COLUMNS]
    writers: list[tuple[str, Callable[[Path, list[str], list[list[Any]]], None]]] = [
        ("openpyxl write_only (failures.xlsx before)", _openpyxl),
        ("xlsxwriter constant_memory", _xlsxwriter),
        ("report/xlsx.py SheetWriter (failures.xlsx now)", _streamed),
    ]
    took: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-xlsx-") as tmp:
        for name, write in writers:
            started = time.perf_counter()
            try:
                write(Path(tmp) / "f.xlsx", header, rows)
            except ImportError:
                continue
            took[name] = time.perf_counter() - started
    new = took[writers[-1][0]]
    return [
        figure(
            f"failures.xlsx, {n:,} rows: {name}",
            round(seconds, 2),
            "s",
            note=f"{seconds / n * 1e6:,.0f} us/row; {seconds / new:,.1f}x the streamed writer",
        )
        for name, seconds in took.items()
    ] + (
        []
        if "xlsxwriter constant_memory" in took
        else [figure("xlsxwriter constant_memory", "skipped", "", note="not installed")]
    )


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    for row in [*xlsx_writers(20_000 if quick else ROWS), *status_and_report(quick)]:
        print(f"{row['name']:<62} {row['value']!s:>10} {row['unit']:<3} {row['note']}")
