"""Reports people review and fix from, rebuilt from the ledger alone: ``write_reports``.

Writes report.html (self-contained: inline SVG charts, inline JS, no network), failures.csv and
failures.xlsx (fix and feed back to ``retry``), validation.csv, summary.json and summary.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from pipeline.config import Settings
from pipeline.errors import LedgerError
from pipeline.ledger import figures
from pipeline.ledger.figures import ProblemRow
from pipeline.ledger.ledger import Ledger
from pipeline.report.charts import all_charts
from pipeline.report.data import (
    PROBLEM_STATES,
    BatchSummary,
    NextStep,
    batch_next_steps,
    clock,
    read_reconciliation,
    summarize,
)
from pipeline.report.files import (
    failure_fields,
    render_summary_md,
    write_failures,
    write_summary_json,
    write_validation,
)
from pipeline.report.rates import format_duration

TABLE_CAP = 5_000
"""Lines in report.html's table; the full list is in failures.csv/xlsx."""
CHART_TITLES = (
    ("outcome", "Rows by state"),
    ("api_errors", "API errors by api_error_code"),
    ("rules", "Validation errors by rule"),
    ("timeline", "Throughput and 429s"),
    ("latency", "Latency percentiles"),
)


@dataclass(frozen=True, slots=True)
class ReportPaths:
    """Where each report file was written, and how much went into them."""

    out_dir: Path
    html: Path
    failures_csv: Path
    failures_xlsx: Path
    validation_csv: Path
    summary_json: Path
    summary_md: Path
    failures: int
    """Rows in failures.csv (failed, conflict, retryable and invalid)."""
    findings: int
    """Lines in validation.csv."""
    table_rows: int
    """Lines in report.html's table."""
    table_capped: bool
    """True when the table shows only the first ``TABLE_CAP`` lines."""
    summary: BatchSummary


def write_reports(
    ledger: Ledger, batch: str, out_dir: Path, *, settings: Settings | None = None
) -> ReportPaths:
    """Rebuild every report file of ``batch`` from the ledger into ``out_dir``.

    Raises:
        LedgerError: no such batch, or the ledger cannot be read.
        PipelineError: ``out_dir`` cannot be written (as LedgerError naming the path).
    """
    summary = summarize(ledger, batch)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LedgerError(
            f"{out_dir}: cannot create the report directory ({exc.strerror})"
        ) from None
    paths = {
        "html": out_dir / "report.html",
        "failures_csv": out_dir / "failures.csv",
        "failures_xlsx": out_dir / "failures.xlsx",
        "validation_csv": out_dir / "validation.csv",
        "summary_json": out_dir / "summary.json",
        "summary_md": out_dir / "summary.md",
    }
    try:
        failures = write_failures(ledger, batch, paths["failures_csv"], paths["failures_xlsx"])
        findings = write_validation(ledger, batch, paths["validation_csv"])
        table, capped = _table(ledger, batch)
        reconciliation = read_reconciliation(out_dir / "reconciliation.json")
        steps = batch_next_steps(summary, settings, out_dir, reconciliation)
        html = _render_html(summary, table, capped, steps, reconciliation)
        paths["html"].write_text(html, "utf-8")
        extra = {
            "generated_at": time.time(),
            "next_steps": [{"text": s.text, "command": s.command} for s in steps],
            "files": {name: path.name for name, path in paths.items()},
            "failures_rows": failures,
            "validation_findings": findings,
        }
        write_summary_json(summary, paths["summary_json"], extra)
        paths["summary_md"].write_text(render_summary_md(summary, steps), "utf-8")
    except OSError as exc:
        raise LedgerError(
            f"{out_dir}: cannot write the reports ({exc.strerror or exc})",
            hint="the ledger is intact: rebuild them with `order-import report --batch "
            f"{batch} --out DIR`",
        ) from None
    return ReportPaths(
        out_dir=out_dir,
        failures=failures,
        findings=findings,
        table_rows=len(table),
        table_capped=capped,
        summary=summary,
        **paths,
    )


def _table_lines(row: ProblemRow) -> Iterator[dict[str, Any]]:
    """One line per error finding of an invalid row; one line per API-failed row."""
    errors = [i for i in row.issues if i.severity == "error"] if row.state == "invalid" else []
    if errors:
        for issue in errors:
            yield {
                "line": issue.source_line,
                "state": row.state,
                "stage": issue.stage,
                "column": issue.column or issue.param or "",
                "value": issue.value or "",
                "code": issue.rule,
                "message": issue.message,
                "row_key": row.row_key,
            }
        return
    fields = failure_fields(row)
    value = row.raw.get(row.param, "") if row.param else ""
    yield {
        "line": row.source_line,
        "state": row.state,
        "stage": fields["oi:stage"],
        "column": row.param or "",
        "value": value,
        "code": (row.error_code if row.state == "blocked" else row.api_error_code) or row.state,
        "message": fields["oi:message"],
        "row_key": row.row_key,
    }


def _table(ledger: Ledger, batch: str) -> tuple[list[dict[str, Any]], bool]:
    lines: list[dict[str, Any]] = []
    for row in figures.problem_rows(ledger, batch, PROBLEM_STATES):
        for line in _table_lines(row):
            if len(lines) >= TABLE_CAP:
                return lines, True
            lines.append(line)
    return lines, False


def _blank_none(value: Any) -> Any:
    """Render a missing value as nothing, never as Python's ``None``."""
    return "" if value is None else value


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("pipeline.report", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True),
        finalize=_blank_none,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render_html(
    summary: BatchSummary,
    table: list[dict[str, Any]],
    capped: bool,
    steps: list[NextStep],
    reconciliation: dict[str, Any] | None = None,
) -> str:
    runs = [
        {
            "id": r["id"],
            "command": r["command"],
            "started": clock(r["started_at"]),
            "duration": (
                format_duration(r["finished_at"] - r["started_at"]) if r["finished_at"] else ""
            ),
            "status": r["status"],
            "rate": r["rate_text"],
            "throttled": r["throttled"],
        }
        for r in summary.runs
    ]
    template = _environment().get_template("report.html.j2")
    return template.render(
        s=summary,
        generated=clock(time.time()) + " UTC",
        duration=format_duration(summary.duration_s),
        rate_span=format_duration(summary.rate.send_seconds),
        steps=steps,
        charts=all_charts(summary),
        chart_titles=CHART_TITLES,
        problem_rows=sum(summary.counts.get(state, 0) for state in PROBLEM_STATES),
        table=table,
        capped=capped,
        table_states=sorted({line["state"] for line in table}),
        table_codes=sorted({str(line["code"]) for line in table}),
        runs=runs,
        rec=reconciliation,
    )
