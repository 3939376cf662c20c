"""Write validation findings to validation.csv and render the terminal summary of ``validate``.

Cells are neutralised (``pipeline.safety.safe_cell``) so a spreadsheet never runs them.
Imports errors, models, safety.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
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
    skipped: int = 0
    """Rows (orders, when grouped) a mapping ``[[skip]]`` rule set aside; never sent."""
    skipped_by_reason: Mapping[str, int] = field(default_factory=dict)
    bad_values: tuple[BadColumn, ...] = ()
    """Distinct offending values per column, most frequent first (see ``BadValues``)."""
    orders_from_lines: int = 0
    """With ``[orders] group_by``: source lines that became the orders counted in rows_read."""
    encoding_note: str | None = None
    """Set when the encoding was guessed: says so, with a few non-ASCII values as read."""

    @property
    def exit_code(self) -> int:
        """0 when every row is valid, else 1."""
        return 1 if self.invalid else 0


@dataclass(frozen=True, slots=True)
class BadColumn:
    """The distinct values one column got wrong, for the terminal summary."""

    column: str | None
    param: str | None
    rule: str
    counts: tuple[tuple[str, int], ...]
    """(value, rows) most frequent first, at most ``BadValues.SHOWN``."""
    distinct: int
    """Distinct bad values seen (up to ``BadValues.MAX_DISTINCT``)."""


VALUE_MAP_RULES = frozenset({"enum", "country"})
"""Rules a ``[values]`` entry fixes: the summary prints a block to paste for them."""


class BadValues:
    """Counts the distinct offending values of each (column, param, rule) over a file."""

    SHOWN = 12
    MAX_DISTINCT = 10_000

    def __init__(self) -> None:
        self._counts: dict[tuple[str | None, str | None, str], Counter[str]] = {}

    def add(self, issue: Issue) -> None:
        """Count an error's value (warnings and value-less findings are not counted)."""
        if issue.severity != "error" or issue.value is None or issue.param is None:
            return
        counts = self._counts.setdefault((issue.column, issue.param, issue.rule), Counter())
        if issue.value in counts or len(counts) < self.MAX_DISTINCT:
            counts[issue.value] += 1

    def columns(self) -> tuple[BadColumn, ...]:
        """Per column, the most frequent bad values (columns with the most bad rows first)."""
        out = [
            BadColumn(column, param, rule, tuple(c.most_common(self.SHOWN)), len(c))
            for (column, param, rule), c in self._counts.items()
        ]
        out.sort(key=lambda b: -sum(n for _, n in b.counts))
        return tuple(out)


def values_block(bad: tuple[BadColumn, ...]) -> str:
    """A ``[values]`` block to paste into the mapping for enum and country errors."""
    out: list[str] = []
    for entry in bad:
        if entry.rule not in VALUE_MAP_RULES or entry.param is None:
            continue
        out.append(f'[values."{entry.param}"]')
        for value, _ in entry.counts:
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'"{escaped}" = ""  # FILL IN: the {entry.rule} value it means')
    return "\n".join(out)


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def default_validation_dir(source: Path) -> Path:
    """Where ``validate`` writes validation.csv without ``--report-dir``."""
    name = _UNSAFE_NAME.sub("_", source.stem).strip("._") or "input"
    return Path("reports") / f"validate-{name}"


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
    if summary.orders_from_lines:
        lines.append(
            f"Grouped {summary.orders_from_lines} source lines into {summary.rows_read} orders."
        )
    if summary.skipped:
        lines.append(f"Skipped by the mapping (never sent): {summary.skipped}")
        for reason, count in summary.skipped_by_reason.items():
            lines.append(f"  {count:>7}  {reason}")
    if summary.encoding:
        shown = {"\t": "TAB", ",": ",", ";": ";", "|": "|"}.get(summary.delimiter or "", "?")
        lines.append(f"Read as {summary.encoding} text, delimiter {shown}.")
    if summary.encoding_note:
        lines.append(summary.encoding_note)
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
    if summary.bad_values:
        lines.append("Bad values by column (distinct values, rows):")
        for entry in summary.bad_values:
            name = entry.column or entry.param
            more = entry.distinct - len(entry.counts)
            lines.append(
                f"  {name!r} ({entry.param}, {entry.rule}): {entry.distinct} distinct"
                + (f", first {len(entry.counts)} shown" if more > 0 else "")
            )
            for value, count in entry.counts:
                lines.append(f"    {count:>7}  {value!r}")
        block = values_block(summary.bad_values)
        if block:
            lines.append("Paste into the mapping file and fill in (docs/mapping.md, [values]):")
            lines.extend("  " + line for line in block.splitlines())
    if summary.report_path is not None:
        lines.append(f"Every finding is in {summary.report_path}")
    if summary.invalid == 0:
        lines.append("All rows are valid.")
    return "\n".join(lines)
