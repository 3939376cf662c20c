"""Reports people review and fix from, rebuilt from the ledger alone: ``write_reports``.

Writes report.html (self-contained: inline SVG charts, inline JS, no network), failures.csv and
failures.xlsx (fix and feed back to ``retry``), validation.csv, summary.json and summary.md.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from pipeline.config import Settings
from pipeline.errors import LedgerError
from pipeline.ledger.ledger import Ledger, LedgerRow
from pipeline.report.charts import all_charts
from pipeline.report.data import (
    PROBLEM_STATES,
    RECONCILIATION_CATEGORIES,
    RECONCILIATION_SCHEMA,
    BatchSummary,
    NextStep,
    next_steps,
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
DEFAULT_REPORTS_ROOT = Path("reports")
CHART_TITLES = (
    ("outcome", "Rows by state"),
    ("api_errors", "API errors by api_error_code"),
    ("rules", "Validation errors by rule"),
    ("timeline", "Throughput and 429s"),
    ("latency", "Latency percentiles"),
)
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


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


def default_report_dir(settings: Settings | None, batch: str) -> Path:
    """``settings.report_dir`` when set, else ``reports/<batch>/`` (batch made path-safe)."""
    if settings is not None and settings.report_dir is not None:
        return settings.report_dir
    name = _UNSAFE_NAME.sub("_", batch).strip("._") or "batch"
    return DEFAULT_REPORTS_ROOT / name


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
        reconciliation = _reconciliation(out_dir / "reconciliation.json")
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


def _table_lines(row: LedgerRow) -> Iterator[dict[str, Any]]:
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
        "stage": "api",
        "column": row.param or "",
        "value": value,
        "code": row.api_error_code or row.state,
        "message": fields["oi:message"],
        "row_key": row.row_key,
    }


def _table(ledger: Ledger, batch: str) -> tuple[list[dict[str, Any]], bool]:
    lines: list[dict[str, Any]] = []
    for row in ledger.rows(batch, states=PROBLEM_STATES):
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


def _clock(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _reconciliation(path: Path) -> dict[str, Any] | None:
    """The last ``reconcile`` result written next to the reports, when there is a readable one."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("schema") != RECONCILIATION_SCHEMA:
        return None
    examples = document.get("examples") or {}
    document["lines"] = [
        {"category": category, **{k: "" if v is None else v for k, v in finding.items()}}
        for category in RECONCILIATION_CATEGORIES
        for finding in (examples.get(category) or [])
        if isinstance(finding, dict)
    ]
    document["generated"] = _clock(document.get("generated_at"))
    return document


def batch_next_steps(
    summary: BatchSummary,
    settings: Settings | None,
    out_dir: Path | None = None,
    reconciliation: dict[str, Any] | None = None,
) -> list[NextStep]:
    """The batch's next steps, with the report directory's failures file and reconciliation.

    A reconciliation older than the batch's last run no longer describes it: its findings are
    not repeated as a next step (run ``reconcile`` again instead).
    """
    if out_dir is None:
        out_dir = default_report_dir(settings, summary.batch)
    if reconciliation is None:
        reconciliation = _reconciliation(out_dir / "reconciliation.json")
    last_run = max((r["finished_at"] or r["started_at"] for r in summary.runs), default=0.0)
    current = reconciliation is not None and (
        float(reconciliation.get("generated_at") or 0) >= math.floor(last_run)
    )
    counts = (reconciliation or {}).get("counts") or {}
    missing = int(counts.get("missing") or 0) if current else 0
    return next_steps(
        summary,
        ledger_path=settings.ledger_path if settings else None,
        failures_path=out_dir / "failures.csv",
        missing=missing,
        reconciled=current and bool((reconciliation or {}).get("clean")),
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
            "started": _clock(r["started_at"]),
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
        generated=_clock(time.time()) + " UTC",
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
