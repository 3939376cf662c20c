"""failures.csv/.xlsx and validation.csv read column-wise (``figures.problem_tuples``,
``figures.finding_lines``) hold exactly what the record-per-row reading gave; amounts by currency
from the stored ``currency``/``amount`` columns (schema v9) equal the sums over the rows' JSON;
a cell too long for Excel is cut in failures.xlsx with a visible marker, whole in failures.csv.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import LedgerError
from pipeline.ledger import figures
from pipeline.ledger.ledger import Ledger
from pipeline.models import Issue, SourceRow
from pipeline.report.data import PROBLEM_STATES
from pipeline.report.files import (
    CSV_ENCODING,
    EXCEL_CELL_LIMIT,
    TRUNCATED,
    excel_cell,
    failure_fields,
    failure_records,
    original_columns,
    write_failures,
    write_validation,
)
from pipeline.safety import safe_cell
from tests import status_history

BATCH = status_history.BATCH


def _record_per_row_failures(led: Ledger, columns: list[str]) -> Iterator[list[Any]]:
    """failures.csv's records as the code before schema v9 made them: a ``ProblemRow`` each."""
    for row in figures.problem_rows(led, BATCH, PROBLEM_STATES):
        raw = [row.raw.get(name, "") for name in columns]
        yield [safe_cell(v) for v in raw] + [safe_cell(v) for v in failure_fields(row).values()]


def _record_per_row_findings(led: Ledger) -> Iterator[list[Any]]:
    """validation.csv's lines as the code before schema v9 made them: ``Issue`` records."""
    for row in figures.finding_rows(led, BATCH):
        for i in row.issues:
            cells = (
                row.source_file, row.sheet or "", i.source_line, i.column or "", i.param or "",
                i.value or "", i.rule, i.severity, i.message,
            )  # fmt: skip
            yield [safe_cell(c) for c in cells]


def _csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding=CSV_ENCODING) as handle:
        return list(csv.reader(handle))


def _history(tmp_path: Path) -> Path:
    """status_history's batch (invalid rows with one or two errors, warnings, API failures,
    retryables, hostile cells, four runs, two killed), plus blocked and conflict rows and
    findings whose column is empty."""
    path = tmp_path / "ledger.sqlite"
    status_history.build(path)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE rows SET state = 'blocked', error_code = 'invoice_not_found', "
            "message = NULL WHERE batch = ? AND row_key IN ('H-0001', 'H-0005')",
            (BATCH,),
        )
        conn.execute(
            "UPDATE rows SET state = 'conflict', api_error_code = 'duplicate_entry', "
            "message = NULL WHERE batch = ? AND row_key = 'H-0011'",
            (BATCH,),
        )
        conn.execute(
            "UPDATE rows SET issues = json_set(issues, '$[0].column', NULL, "
            "'$[0].value', NULL) WHERE batch = ? AND row_key = 'H-0018'",
            (BATCH,),
        )
    return path


def test_failure_records_equal_the_record_per_row_reading(tmp_path: Path) -> None:
    with Ledger(_history(tmp_path)) as led:
        columns = original_columns(led, BATCH)
        new = list(failure_records(led, BATCH, columns))
        old = list(_record_per_row_failures(led, columns))
    assert len(new) > 40
    assert {r[len(columns) + 2] for r in new} >= {"invalid", "failed", "blocked", "conflict"}
    assert any("; " in r[-1] for r in new)  # an invalid row with two errors
    assert new == old


def test_validation_csv_equals_the_record_per_row_reading(tmp_path: Path) -> None:
    with Ledger(_history(tmp_path)) as led:
        count = write_validation(led, BATCH, tmp_path / "validation.csv")
        old = list(_record_per_row_findings(led))
    lines = _csv(tmp_path / "validation.csv")
    assert count == len(old) == len(lines) - 1 > 20
    assert {line[7] for line in lines[1:]} == {"error", "warning"}
    # what csv writes of each old cell (None and "" both empty, numbers as text)
    assert lines[1:] == [["" if c is None else str(c) for c in cells] for cells in old]


def test_a_finding_that_does_not_decode_names_its_row(tmp_path: Path) -> None:
    path = _history(tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE rows SET issues = '[{\"rule\": \"x\"}]' WHERE batch = ? AND row_key = 'H-0009'",
            (BATCH,),
        )
    with Ledger(path) as led:
        with pytest.raises(LedgerError, match="H-0009"):
            write_validation(led, BATCH, tmp_path / "validation.csv")
        with pytest.raises(LedgerError, match="H-0009"):
            list(failure_records(led, BATCH, original_columns(led, BATCH)))


_OLD_TOTALS = (
    "SELECT coalesce(json_extract(control, '$.currency'), "
    "json_extract(params, '$.currency_code')) AS cur, state, count(*) AS n, "
    "coalesce(sum(CAST(coalesce(json_extract(control, '$.amount'), "
    "json_extract(params, '$.total')) AS INTEGER)), 0) AS total "
    "FROM rows WHERE batch = ? AND (control IS NOT NULL "
    "OR json_extract(params, '$.total') IS NOT NULL) "
    "GROUP BY cur, state ORDER BY cur, state"
)
"""How amounts by currency were read before schema v9: from every row's JSON."""


def _money_row(i: int, version: int) -> SourceRow:
    params: dict[str, Any] = {"id": f"M-{i}", "currency_code": ("EUR", "USD", None)[i % 3]}
    if i % 5:  # text totals too (CAST reads "3.6" as 3, "x1" as 0); rows changed between versions
        params["total"] = (i * 7 + version, f"{i}.{5 + version}", f"x{version}", None)[i % 4]
    control = (
        None,
        {"amount": i * 100 + version, "currency": "CHF"},
        {"amount": None, "currency": None},
        {"currency": "" if i % 2 else "GBP"},
        {"amount": f"{i}9"},
    )[(i + version) % 5]
    return SourceRow(f"M-{i}", "m.csv", None, i + 2, {"id": f"M-{i}"}, params, (), control=control)


def _totals(led: Ledger, path: Path) -> tuple[list[Any], list[Any]]:
    """(amounts by currency as read now, as read from the JSON), each as one list."""
    new = led.totals_by_currency(BATCH)
    with sqlite3.connect(path) as conn:
        old = conn.execute(_OLD_TOTALS, (BATCH,)).fetchall()
    merged: dict[tuple[str | None, str], list[int]] = {}
    for cur, state, n, total in old:  # the reports show "" and no currency both as "(none)"
        entry = merged.setdefault((cur or None, state), [0, 0])
        entry[0] += n
        entry[1] += total
    return sorted(new, key=str), sorted(
        ((c, s, n, t) for (c, s), (n, t) in merged.items()), key=str
    )


def _new_batch(led: Ledger) -> int:
    """A new batch in ``led`` and a run of it: the run's id."""
    led.open_batch(
        BATCH, operation="import", source_file="m.csv", input_sha256="0" * 64,
        config_fingerprint="m",
    )  # fmt: skip
    return led.start_run(BATCH, command="run", settings_summary={})


def test_stored_amounts_by_currency_equal_the_sums_over_the_json(tmp_path: Path) -> None:
    """Planned rows, rows planned again with changed params/control, and rows sent: the stored
    columns sum to what the JSON sums to."""
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as led:
        run = _new_batch(led)
        led.plan(BATCH, [_money_row(i, 0) for i in range(60)], operation="import", run_id=run)
        new, old = _totals(led, path)
        assert new == old
        assert len(new) >= 4
        led.plan(BATCH, [_money_row(i, 1) for i in range(60)], operation="import", run_id=run)
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE rows SET state = 'succeeded' WHERE rowid % 3 = 0")
        new, old = _totals(led, path)
        assert new == old
        assert {s for _, s, _, _ in new} == {"pending", "succeeded"}


def test_a_v8_ledger_gets_its_amounts_on_upgrade(tmp_path: Path) -> None:
    """The v9 step fills the columns of rows planned before it, as planning fills them."""
    path = _history(tmp_path)
    with Ledger(path) as led:
        want = led.totals_by_currency(BATCH)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE rows SET currency = NULL, amount = NULL")
        conn.execute("DROP INDEX rows_money")
        conn.execute("ALTER TABLE rows DROP COLUMN currency")
        conn.execute("ALTER TABLE rows DROP COLUMN amount")
        conn.execute("UPDATE meta SET value = '8' WHERE key = 'schema_version'")
    with Ledger(path) as led:
        assert led.totals_by_currency(BATCH) == want
        new, old = _totals(led, path)
    assert new == old
    assert {c for c, _, _, _ in want} == {"EUR", "USD", "PLN"}


def test_excel_cell_limit(tmp_path: Path) -> None:
    """A text longer than an Excel cell holds is cut in failures.xlsx, to the limit exactly,
    ending with the marker; failures.csv keeps it whole; shorter texts are untouched."""
    from python_calamine import CalamineWorkbook

    long = "é" * 20_000 + "😀" * 10_000 + "tail"
    assert excel_cell("x" * EXCEL_CELL_LIMIT) == "x" * EXCEL_CELL_LIMIT
    assert excel_cell(7) == 7
    cut = excel_cell(long)
    assert isinstance(cut, str)
    assert cut.endswith(TRUNCATED)
    assert long.startswith(cut[: -len(TRUNCATED)])
    assert len(cut.encode("utf-16-le")) // 2 <= EXCEL_CELL_LIMIT
    assert len(cut.encode("utf-16-le")) // 2 >= EXCEL_CELL_LIMIT - 1

    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as led:
        run = _new_batch(led)
        issue = Issue(2, "note", "note", "x", "max_length", "too long")
        row = SourceRow("L-1", "l.csv", None, 2, {"id": "L-1", "note": long}, {}, (issue,))
        led.plan(BATCH, [row], operation="import", run_id=run)
        assert write_failures(led, BATCH, tmp_path / "f.csv", tmp_path / "f.xlsx") == 1
    assert _csv(tmp_path / "f.csv")[1][1] == long
    sheet = CalamineWorkbook.from_path(str(tmp_path / "f.xlsx")).get_sheet_by_index(0)
    assert sheet.to_python()[1][1] == cut
