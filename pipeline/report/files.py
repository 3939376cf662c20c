"""The report's data files: failures.csv/.xlsx, validation.csv, summary.json and summary.md.

Every text cell written to CSV/XLSX goes through ``safety.safe_cell``. failures files carry the
rows' original columns plus ``oi:`` tool columns, so a fixed copy goes straight back into
``order-import retry --batch B failures.csv``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import orjson

from pipeline.keys import ROW_KEY_COLUMN, TOOL_COLUMN_PREFIX
from pipeline.ledger import figures
from pipeline.ledger.figures import ProblemRow
from pipeline.ledger.ledger import Ledger, LedgerRow
from pipeline.ledger.schema import corrupted
from pipeline.models import Issue
from pipeline.prepare.findings import REPORT_COLUMNS
from pipeline.report.data import PROBLEM_STATES, BatchSummary, NextStep, preflight_text
from pipeline.report.rates import format_duration
from pipeline.report.xlsx import LONG_TEXT, SheetWriter
from pipeline.safety import FORMULA_TRIGGERS, safe_cell

TOOL_COLUMNS = (
    ROW_KEY_COLUMN,
    f"{TOOL_COLUMN_PREFIX}source_line",
    f"{TOOL_COLUMN_PREFIX}state",
    f"{TOOL_COLUMN_PREFIX}stage",
    f"{TOOL_COLUMN_PREFIX}column",
    f"{TOOL_COLUMN_PREFIX}param",
    f"{TOOL_COLUMN_PREFIX}rule",
    f"{TOOL_COLUMN_PREFIX}api_error_code",
    f"{TOOL_COLUMN_PREFIX}message",
)
"""Tool columns of failures.csv/xlsx, after the original columns."""
VALIDATION_COLUMNS = REPORT_COLUMNS
"""validation.csv has one layout, whether ``validate`` or a run's report writes it."""
XLSX_MAX_ROWS = 1_048_575  # Excel's sheet limit minus the header
CSV_ENCODING = "utf-8-sig"  # a BOM, so Excel shows accented text right; the loader strips it
_ILLEGAL_XLSX = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def failure_fields(row: LedgerRow | ProblemRow) -> dict[str, str]:
    """The ``oi:`` tool columns of one failed/invalid/conflict/retryable row."""
    errors = [i for i in row.issues if i.severity == "error"] if row.state == "invalid" else []

    def joined(values: Iterable[str | None]) -> str:
        return "; ".join(dict.fromkeys(v for v in values if v))

    if errors:
        stage = joined(i.stage for i in errors)
        column = joined(i.column for i in errors)
        param = joined(i.param for i in errors)
        rule = joined(i.rule for i in errors)
        message = joined((f"{i.column}: {i.message}" if i.column else i.message) for i in errors)
    else:
        stage = "preflight" if row.state == "blocked" else "api"
        column = ""
        param = row.param or ""
        rule = row.error_code or ""
        message = row.message or _state_message(row)
    values = (
        row.row_key,
        str(row.source_line),
        row.state,
        stage,
        column,
        param,
        rule,
        row.api_error_code or "",
        message,
    )
    return dict(zip(TOOL_COLUMNS, values, strict=True))


def _state_message(row: LedgerRow | ProblemRow) -> str:
    return _STATE_MESSAGES.get(row.state, "")


_STATE_MESSAGES = {
    "retryable": "transient failures exhausted this run's retries; the next run resends it",
    "conflict": "Chargebee holds a different order under this id; review it by hand",
    "failed": "Chargebee rejected the row",
    "blocked": "pre-flight found the site would refuse it; it was never sent",
}


def original_columns(ledger: Ledger, batch: str) -> list[str]:
    """The problem rows' original column names, in first-seen order (tool columns excluded)."""
    return [
        name
        for name in figures.problem_columns(ledger, batch, PROBLEM_STATES)
        if not name.startswith(TOOL_COLUMN_PREFIX)
    ]


def failure_records(ledger: Ledger, batch: str, columns: Sequence[str]) -> Iterator[list[Any]]:
    """One list of cells per problem row: original columns, then tool columns (all safe).

    The cells ``failure_fields`` gives a ``ProblemRow``, made from the stored tuple without
    building one (``tests/test_report_files.py`` compares both on every kind of row)."""
    for found in figures.problem_tuples(ledger, batch, PROBLEM_STATES):
        try:
            raw = _object(found[4])
            tool = _tool_cells(found)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise corrupted(
                str(ledger.path), f"row {found[1]!r} of batch {batch!r} does not decode: {exc}"
            ) from None
        cells = [raw.get(name, "") for name in columns]
        cells += tool
        yield [safe_cell(v) if type(v) is not str or v[:1] in _TRIGGERS else v for v in cells]


_TRIGGERS = frozenset((*FORMULA_TRIGGERS, "'"))
"""First characters that make ``safe_cell`` change a text: any other text is kept as is."""
_ISSUE_FIELDS = frozenset(f.name for f in fields(Issue))
_ISSUE_REQUIRED = frozenset(
    f.name for f in fields(Issue) if f.default is MISSING and f.default_factory is MISSING
)


def _loads(text: str) -> Any:
    """``json.loads(text)``, by orjson when it can (``json`` for what orjson refuses: NaN,
    huge integers)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _object(text: str) -> dict[str, Any]:
    """A JSON object."""
    value = _loads(text)
    if type(value) is not dict:
        raise ValueError("not a JSON object")
    return value


def _tool_cells(found: tuple[Any, ...]) -> list[Any]:
    """``failure_fields`` of a ``figures.problem_tuples`` tuple, as a list."""
    _, row_key, source_line, state, _, issues, param, error_code, api_error_code, message = found
    errors = _errors(issues) if state == "invalid" and issues != "[]" else []

    def joined(name: str) -> str:
        return "; ".join(dict.fromkeys(v for i in errors if (v := i.get(name))))

    if len(errors) == 1:  # the usual invalid row: one error, nothing to join
        (error,) = errors
        stage = error["stage"] or ""
        column = error["column"] or ""
        param = error["param"] or ""
        rule = error["rule"] or ""
        text = (f"{column}: {error['message']}" if column else error["message"]) or ""
    elif errors:
        stage = joined("stage")
        column = joined("column")
        param = joined("param")
        rule = joined("rule")
        text = "; ".join(
            dict.fromkeys(
                v
                for i in errors
                if (v := (f"{i['column']}: {i['message']}" if i["column"] else i["message"]))
            )
        )
    else:
        stage = "preflight" if state == "blocked" else "api"
        column = ""
        param = param or ""
        rule = error_code or ""
        text = message or _STATE_MESSAGES.get(state, "")
    return [
        row_key,
        str(source_line),
        state,
        stage,
        column,
        param,
        rule,
        api_error_code or "",
        text,
    ]


def _errors(text: str) -> list[dict[str, Any]]:
    """The error findings of an ``issues`` JSON list, as ``Issue`` reads them (its defaults
    filled in; a finding ``Issue`` would refuse raises ``TypeError``)."""
    found = []
    for item in _loads(text):
        keys = item.keys()
        if not keys <= _ISSUE_FIELDS or not keys >= _ISSUE_REQUIRED:
            raise TypeError(f"a finding with fields {sorted(keys)}")
        if item.get("severity", "error") == "error":
            item.setdefault("stage", "schema")
            found.append(item)
    return found


def write_failures(ledger: Ledger, batch: str, csv_path: Path, xlsx_path: Path) -> int:
    """Write failures.csv and failures.xlsx in one pass over the problem rows; returns the
    number of rows."""
    columns = original_columns(ledger, batch)
    header = [safe_cell(h) for h in (*columns, *TOOL_COLUMNS)]
    count = 0
    with (
        csv_path.open("w", newline="", encoding=CSV_ENCODING) as handle,
        SheetWriter(xlsx_path, "failures", long_text=excel_cell) as sheet,
    ):
        writer = csv.writer(handle)
        writer.writerow(header)
        sheet.append(header)
        for record in failure_records(ledger, batch, columns):
            writer.writerow(record)
            if count < XLSX_MAX_ROWS:
                sheet.append(record)  # the writer replaces what XML cannot hold (_xlsx_text)
            count += 1
        if count > XLSX_MAX_ROWS:
            sheet.append([f"... {count - XLSX_MAX_ROWS:,} more rows: see failures.csv"])
    return count


EXCEL_CELL_LIMIT = 32_767
"""Most characters (UTF-16 code units) Excel holds in a cell: a longer one makes Excel
"repair" the file. failures.xlsx cuts such a text to fit, ending it with ``TRUNCATED``;
failures.csv keeps the whole text."""
TRUNCATED = " …[truncated: the full text is in failures.csv]"


def excel_cell(value: Any) -> Any:
    """``value``, or a text too long for an Excel cell cut to fit with ``TRUNCATED`` at its
    end (never splitting a character)."""
    if type(value) is not str or len(value) <= LONG_TEXT or _units(value) <= EXCEL_CELL_LIMIT:
        return value
    room = EXCEL_CELL_LIMIT - _units(TRUNCATED)
    kept = value[:room]
    while _units(kept) > room:
        kept = kept[: -max(1, (_units(kept) - room) // 2)]
    return kept + TRUNCATED


def _units(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (what Excel counts)."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF) if not text.isascii() else len(text)


def _xlsx_text(value: Any) -> Any:
    """A cell's text with the characters XLSX cannot hold replaced (as ``SheetWriter`` does:
    kept for writers that do not, such as openpyxl's)."""
    return _ILLEGAL_XLSX.sub("\ufffd", value) if isinstance(value, str) else value


def write_validation(ledger: Ledger, batch: str, path: Path) -> int:
    """Write validation.csv: one line per finding (errors of invalid rows, and warnings),
    the cells extracted by SQLite (``figures.finding_lines``)."""
    count = 0
    with path.open("w", newline="", encoding=CSV_ENCODING) as handle:
        writer = csv.writer(handle)
        writer.writerow(VALIDATION_COLUMNS)
        for row_key, whole, *cells in figures.finding_lines(ledger, batch):
            if not whole:
                raise corrupted(
                    str(ledger.path),
                    f"row {row_key!r} of batch {batch!r} does not decode: a finding is not "
                    "a whole validation finding",
                )
            writer.writerow(
                [safe_cell(v) if type(v) is str and v[:1] in _TRIGGERS else v for v in cells]
            )
            count += 1
    return count


def write_summary_json(summary: BatchSummary, path: Path, extra: dict[str, Any]) -> None:
    """Write summary.json: the BatchSummary as a dict, plus ``extra`` (generation info)."""
    data = {**summary.to_dict(), **extra}
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", "utf-8")


def _md(text: object) -> str:
    """Escape Markdown/HTML-significant characters in data shown in summary.md."""
    return re.sub(r"([\\`*_{}\[\]<>()#+!|])", r"\\\1", str(text))


def _code(text: object) -> str:
    """Data shown inside a Markdown code span (no escapes apply there; backticks removed)."""
    return "`" + str(text).replace("`", "'").replace("\n", " ") + "`"


def render_summary_md(summary: BatchSummary, steps: Sequence[NextStep]) -> str:
    """A short Markdown summary for a ticket or a chat message, ending with the next steps."""
    s = summary
    lines = [
        f"## order-import batch {_md(s.batch)}",
        "",
        f"- Source: {_md(s.source_file)} (sha256 `{s.input_sha256[:12]}…`)",
        f"- Rows read: **{s.rows_read:,}**, valid {s.valid:,}, invalid **{s.invalid:,}**",
        f"- Imported: **{s.imported:,}**, already present {s.already_present:,}",
        f"- Failed: **{s.failed:,}**, conflict {s.conflict:,}, retryable {s.retryable:,}, "
        f"in doubt {s.in_doubt:,}, pending {s.pending:,}, blocked **{s.blocked:,}**",
        f"- {_md(preflight_text(s))}",
        f"- Requests {s.requests:,} (429s {s.throttled:,}), {_md(s.rate.text())}; "
        f"{format_duration(s.duration_s)} over {len(s.runs)} run(s)",
    ]
    if s.errors_by_api_code:
        top = ", ".join(f"{_code(c)} {n:,}" for c, n in s.errors_by_api_code[:5])
        lines.append(f"- Top API errors: {top}")
    if s.errors_by_rule:
        top = ", ".join(f"{_code(r)} {n:,}" for r, n in s.errors_by_rule[:5])
        lines.append(f"- Top validation rules: {top}")
    if s.skipped:
        top = ", ".join(f"{_md(r)} {n:,}" for r, n in s.skip_reasons[:5])
        lines.append(f"- Skipped by the mapping (never sent): **{s.skipped:,}**: {top}")
    if not s.totals_by_currency:
        lines.append("- Amounts by currency: none mapped (map `[control]` amount and currency)")
    lines += ["", f"Exit code {s.exit_code}. Next:", ""]
    lines += [
        f"- {_md(step.text)}" + (f": {_code(step.command)}" if step.command else "")
        for step in steps
    ]
    lines.append("")
    return "\n".join(lines)
