"""Write validation findings to validation.csv and render the terminal summary of ``validate``.

Cells are neutralised (``pipeline.safety.safe_cell``) so a spreadsheet never runs them.
Imports errors, models, safety.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from pipeline.errors import InputError
from pipeline.models import Issue
from pipeline.safety import safe_cell

REPORT_NAME = "validation.csv"
REPORT_COLUMNS = (
    "source_file",
    "sheet",
    "source_line",
    "column",
    "param",
    "value",
    "rule",
    "severity",
    "message",
)


@dataclass(frozen=True, slots=True)
class ValidationSummary:
    """What ``validate`` found in one file."""

    source_file: str
    sheet: str | None
    rows_read: int
    valid: int
    """Rows without any error (they may carry warnings)."""
    invalid: int
    """Rows with at least one error; they would never be sent."""
    warnings: int
    """Warning findings (row warnings plus file-level notes such as ignored columns)."""
    errors: int
    """Error findings (a row can have several)."""
    counts_by_rule: Mapping[str, int]
    """Findings per rule name, errors and warnings together."""
    examples: tuple[Issue, ...]
    """The first findings (errors first), for the terminal summary."""
    file_issues: tuple[Issue, ...] = ()
    """Header-level findings: unknown, unmapped or missing columns."""
    report_path: Path | None = None
    """validation.csv, when a report directory was given."""
    encoding: str | None = None
    delimiter: str | None = None
    duration_s: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def exit_code(self) -> int:
        """0 when every row is valid, else 1."""
        return 1 if self.invalid else 0


class ValidationReportWriter:
    """Streams findings into ``<report_dir>/validation.csv``; a no-op when report_dir is None."""

    def __init__(self, report_dir: Path | None, source_file: str, sheet: str | None) -> None:
        self.path = None if report_dir is None else report_dir / REPORT_NAME
        self.source_file = source_file
        self.sheet = sheet
        self._fh: TextIO | None = None
        self._writer: Any = None

    def __enter__(self) -> ValidationReportWriter:
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = self.path.open("w", encoding="utf-8", newline="")
            except OSError as exc:
                raise InputError(
                    f"cannot write the report ({exc.strerror or exc})", path=str(self.path)
                ) from None
            self._writer = csv.writer(self._fh)
            self._writer.writerow(REPORT_COLUMNS)
        return self

    def write(self, issue: Issue) -> None:
        """Append one finding."""
        if self._writer is None:
            return
        self._writer.writerow(
            [
                safe_cell(self.source_file),
                safe_cell(self.sheet or ""),
                issue.source_line,
                safe_cell(issue.column or ""),
                safe_cell(issue.param or ""),
                safe_cell(issue.value or ""),
                issue.rule,
                issue.severity,
                safe_cell(issue.message),
            ]
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fh is not None:
            self._fh.close()


def render_summary(summary: ValidationSummary) -> str:
    """The terminal summary: counts, counts by rule, first examples with line and column."""
    where = summary.source_file + (f" (sheet {summary.sheet})" if summary.sheet else "")
    lines = [
        f"Validated {where}: {summary.rows_read} rows read, {summary.valid} valid, "
        f"{summary.invalid} invalid; {summary.errors} errors, {summary.warnings} warnings "
        f"({summary.duration_s:.1f} s).",
    ]
    if summary.encoding:
        shown = {"\t": "TAB", ",": ",", ";": ";", "|": "|"}.get(summary.delimiter or "", "?")
        lines.append(f"Read as {summary.encoding} text, delimiter {shown}.")
    if summary.counts_by_rule:
        lines.append("Findings by rule:")
        width = max(len(rule) for rule in summary.counts_by_rule)
        for rule, count in summary.counts_by_rule.items():
            lines.append(f"  {rule:<{width}}  {count}")
    if summary.examples:
        lines.append("First findings:")
        for issue in summary.examples:
            column = f", column {issue.column!r}" if issue.column else ""
            value = f" (value {issue.value!r})" if issue.value is not None else ""
            lines.append(
                f"  line {issue.source_line}{column}: {issue.severity}: {issue.message}{value}"
            )
    if summary.report_path is not None:
        lines.append(f"Every finding is in {summary.report_path}")
    if summary.invalid == 0:
        lines.append("All rows are valid.")
    return "\n".join(lines)
