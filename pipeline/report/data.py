"""The numbers of a batch, computed from the ledger alone: shared by reports, summary.json, status.

``summarize`` reads counts, outcomes, the attempts log and the runs; ``render_status_text``
prints them for the terminal (``order-import status``).
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.config import DEFAULT_LEDGER, Settings
from pipeline.errors import LedgerError
from pipeline.ledger import figures
from pipeline.ledger.ledger import Ledger
from pipeline.ledger.records import RunInfo
from pipeline.models import ROW_STATES, RowState, exit_code_for
from pipeline.report.attempts import (
    RunAttempts,
    attempt_figures,
    max_in_window_np,
    timeline_counts,
)
from pipeline.report.rates import RateFigures, format_duration

PROBLEM_STATES: tuple[RowState, ...] = ("failed", "conflict", "retryable", "invalid", "blocked")
"""States whose rows go to failures.csv/xlsx and the report's table."""
MAX_TIMELINE_BINS = 120
DEFAULT_REPORTS_ROOT = Path("reports")
"""Reports go to ``reports/<batch>/`` unless ``report_dir`` says otherwise."""
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
RECONCILIATION_SCHEMA = "order-import/reconciliation/1"
"""The ``schema`` of reconciliation.json: written by reconcile, read into report.html."""
RECONCILIATION_CATEGORIES = ("missing", "extra", "duplicate", "mismatch")
PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True, slots=True)
class TimelineBin:
    """Attempts that started in one time bucket."""

    start: float
    """Unix seconds at the start of the bucket."""
    width_s: float
    requests: int
    ok: int
    throttled: int
    """429 answers."""
    errors: int
    """Other non-ok attempts (transient and permanent)."""


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """Everything a person (or automation) needs to judge a batch, from the ledger alone."""

    batch: str
    operation: str
    source_file: str
    input_sha256: str
    config_fingerprint: str
    tool_version: str
    created_at: float
    counts: Mapping[str, int]
    """Rows by state, every state present."""
    rows_read: int
    valid: int
    succeeded: int
    imported: int
    """Succeeded rows our POST created (or Chargebee replayed for our key)."""
    already_present: int
    """Succeeded rows Chargebee already held (duplicate_entry verified, or reconciled)."""
    failed: int
    invalid: int
    in_doubt: int
    retryable: int
    conflict: int
    pending: int
    skipped: int
    """Rows a mapping ``[[skip]]`` rule excluded: never sent, by design."""
    skip_reasons: Sequence[tuple[str, int]]
    """Skipped rows by reason, most frequent first."""
    resolutions: Mapping[str, int]
    errors_by_api_code: Sequence[tuple[str, int]]
    """Failed/conflict/retryable rows by ``api_error_code``, most frequent first."""
    errors_by_rule: Sequence[tuple[str, int]]
    """Validation errors (of invalid rows) by rule, most frequent first."""
    warnings_by_rule: Sequence[tuple[str, int]]
    requests: int
    """HTTP attempts in the attempts log."""
    throttled: int
    """429 answers in the attempts log."""
    duration_s: float
    """Sum of the runs' wall-clock durations."""
    rate: RateFigures
    """The batch's requests over its runs' send phases (see ``pipeline.report.rates``)."""
    latency_ms: Mapping[str, float]
    """Latency percentiles (``p50``, ``p90``, ``p95``, ``p99``, ``max``) of attempts."""
    timeline: Sequence[TimelineBin]
    totals_by_currency: Sequence[Mapping[str, Any]]
    """Per currency: rows and sum of ``total`` (minor units) in the source and imported."""
    runs: Sequence[Mapping[str, Any]]
    exit_code: int
    notes: tuple[str, ...] = field(default_factory=tuple)
    canary_paused: bool = False
    """The last run stopped after its canary rows on purpose; the rest are pending."""
    canary_order_ids: tuple[str, ...] = ()
    """The order ids the canary sent (to review in Chargebee before the rest go)."""
    blocked: int = 0
    """Rows pre-flight held back: the site would refuse them (never sent)."""
    blocked_reasons: Sequence[tuple[str, int]] = ()
    """Blocked rows by ``error_code`` (``invoice_not_found``...), most frequent first."""
    preflight_requests: int = 0
    """Pre-flight look-ups (attempts of kind ``preflight``) over every run of the batch."""

    @property
    def achieved_per_minute(self) -> float | None:
        """Accepted requests per minute over the send phases; None for under a minute of sending."""
        return self.rate.per_minute

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what summary.json holds)."""
        data = asdict(self)
        data["rate"] = self.rate.to_dict()
        data["achieved_per_minute"] = self.rate.per_minute
        data["errors_by_api_code"] = [{"code": c, "rows": n} for c, n in self.errors_by_api_code]
        data["errors_by_rule"] = [{"rule": r, "rows": n} for r, n in self.errors_by_rule]
        data["warnings_by_rule"] = [{"rule": r, "rows": n} for r, n in self.warnings_by_rule]
        data["skip_reasons"] = [{"reason": r, "rows": n} for r, n in self.skip_reasons]
        data["blocked_reasons"] = [{"code": c, "rows": n} for c, n in self.blocked_reasons]
        data["notes"] = list(self.notes)
        return data


def summarize(ledger: Ledger, batch: str, *, full: bool = True) -> BatchSummary:
    """Compute a batch's summary from the ledger.

    ``full=False`` (the text of ``order-import status``) leaves out the figures the text does
    not show: ``warnings_by_rule``, ``totals_by_currency`` (a pass over every row) and the
    ``timeline`` (all empty). Attempt figures come from ``report.attempts`` (cached per run).

    Raises:
        LedgerError: the ledger holds no such batch.
    """
    info = ledger.get_batch(batch)
    if info is None:
        known = ", ".join(b.name for b in ledger.batches()[:10]) or "none"
        raise LedgerError(
            f"{ledger.path}: no batch named {batch!r} (batches in this ledger: {known})"
        )
    counts, by_resolution = figures.outcome_counts(ledger, batch, ROW_STATES)
    resolutions = {str(k): v for k, v in by_resolution.items()}
    by_code = ledger.tally(batch, "api_error_code", states=("failed", "conflict", "retryable"))
    rules = figures.rule_counts(ledger, batch, True, "error")
    warnings = figures.rule_counts(ledger, batch, False, "warning") if full else []
    runs = ledger.runs(batch)
    preflight_requests = sum(_preflight_requests(r) for r in runs)
    limits = {r.id: _run_limit(r) for r in runs}
    found = attempt_figures(ledger, batch, runs, limits, PERCENTILES)
    latency = {k: round(v, 1) for k, v in found.latency_ms.items()}
    timeline = _timeline(found.runs) if full else []
    requests, throttled, run_rates, overall = (
        found.requests,
        found.throttled,
        found.by_run,
        found.overall,
    )
    duration = sum((r.finished_at - r.started_at) for r in runs if r.finished_at is not None)
    rows_read = sum(counts.values())
    return BatchSummary(
        batch=batch,
        operation=info.operation,
        source_file=info.source_file,
        input_sha256=info.input_sha256,
        config_fingerprint=info.config_fingerprint,
        tool_version=info.tool_version,
        created_at=info.created_at,
        counts=counts,
        rows_read=rows_read,
        valid=rows_read - counts["invalid"] - counts.get("skipped", 0),
        succeeded=counts["succeeded"],
        imported=resolutions.get("imported", 0) + resolutions.get("replayed", 0),
        already_present=resolutions.get("already_present", 0) + resolutions.get("reconciled", 0),
        failed=counts["failed"],
        invalid=counts["invalid"],
        in_doubt=counts["in_flight"],
        retryable=counts["retryable"],
        conflict=counts["conflict"],
        pending=counts["pending"],
        skipped=counts.get("skipped", 0),
        skip_reasons=[
            (str(reason or "(no reason)"), n)
            for reason, n in ledger.tally(batch, "message", states=("skipped",)).items()
        ],
        resolutions=resolutions,
        errors_by_api_code=[(code or "(none)", n) for code, n in by_code.items()],
        errors_by_rule=rules,
        warnings_by_rule=warnings,
        requests=requests,
        throttled=throttled,
        duration_s=round(duration, 3),
        rate=overall,
        latency_ms=latency,
        timeline=timeline,
        totals_by_currency=_currency_totals(ledger, batch) if full else [],
        runs=[
            {
                "id": r.id,
                "command": r.command,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "status": r.status,
                "limit_per_minute": limits[r.id],
                "rate": run_rates[r.id].to_dict() if r.id in run_rates else None,
                "rate_text": run_rates[r.id].text() if r.id in run_rates else "no requests",
                "throttled": r.throttled,
                "counts": dict(r.counts),
            }
            for r in runs
        ],
        exit_code=exit_code_for(counts),
        blocked=counts.get("blocked", 0),
        blocked_reasons=[
            (str(code or "blocked"), n)
            for code, n in ledger.tally(batch, "error_code", states=("blocked",)).items()
        ],
        preflight_requests=preflight_requests,
        **_canary(runs, counts),
    )


def _preflight_requests(run: RunInfo) -> int:
    """Pre-flight requests a run recorded in its summary (0 when it ran none)."""
    found = run.summary.get("preflight")
    value = found.get("requests") if isinstance(found, dict) else 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _canary(runs: Sequence[RunInfo], counts: Mapping[str, int]) -> dict[str, Any]:
    """Whether the batch waits after a canary run, and which orders that canary sent."""
    sending = [r for r in runs if r.command in ("run", "retry")]
    if not sending or not sending[-1].summary.get("canary_stopped") or not counts.get("pending"):
        return {}
    ids = sending[-1].summary.get("canary_order_ids") or ()
    return {"canary_paused": True, "canary_order_ids": tuple(str(i) for i in ids)}


@dataclass(frozen=True, slots=True)
class NextStep:
    """What to do next about a batch: a sentence, and the command it names (if any)."""

    text: str
    command: str | None = None

    def line(self) -> str:
        """The sentence with its command, for plain text."""
        return f"{self.text}: {self.command}" if self.command else self.text


def next_steps(
    summary: BatchSummary,
    *,
    ledger_path: Path | None = None,
    failures_path: Path | None = None,
    missing: int = 0,
    reconciled: bool = False,
) -> list[NextStep]:
    """The next steps a batch's real state calls for, most urgent first (never empty).

    ``ledger_path`` is added to the commands when it is not the default ledger, so every command
    shown can be run exactly as printed from the same folder.
    """
    s = summary
    where = ""
    if ledger_path is not None and ledger_path != DEFAULT_LEDGER:
        where = f" --ledger {shlex.quote(str(ledger_path))}"
    batch = shlex.quote(s.batch)
    steps: list[NextStep] = []
    if s.in_doubt:
        steps.append(
            NextStep(
                f"{s.in_doubt:,} row(s) are in doubt (the tool stopped mid-request): run the same "
                "command again; they are looked up in Chargebee before anything is resent"
            )
        )
    if s.canary_paused:
        ids = ", ".join(s.canary_order_ids[:20]) or "see the ledger"
        more = f" and {len(s.canary_order_ids) - 20:,} more" if len(s.canary_order_ids) > 20 else ""
        steps.append(
            NextStep(
                f"paused after a canary: review the orders it sent in Chargebee ({ids}{more}), "
                f"then run the same command again to send the other {s.pending:,} row(s)"
            )
        )
    elif s.pending:
        steps.append(
            NextStep(f"{s.pending:,} row(s) are still pending: run the same command again")
        )
    if s.retryable:
        steps.append(
            NextStep(
                f"{s.retryable:,} row(s) met transient errors: send them again",
                f"order-import retry --batch {batch}{where}",
            )
        )
    if s.failed or s.invalid:
        target = shlex.quote(str(failures_path)) if failures_path else "failures.csv"
        steps.append(
            NextStep(
                f"fix the {s.failed + s.invalid:,} row(s) in {target} "
                "(keep the oi:row_key column), then retry them",
                f"order-import retry --batch {batch}{where} {target}",
            )
        )
    if s.blocked:
        reasons = ", ".join(f"{code} {n:,}" for code, n in s.blocked_reasons[:5])
        first = (
            "import the missing invoices into Chargebee"
            if any(code == "invoice_not_found" for code, _ in s.blocked_reasons)
            else "resolve what the site holds (see the failures file)"
        )
        steps.append(
            NextStep(
                f"{s.blocked:,} row(s) were blocked by pre-flight, never sent ({reasons}): "
                f"{first}, then check and send them again",
                f"order-import retry --batch {batch}{where}",
            )
        )
    if s.conflict:
        steps.append(
            NextStep(
                f"{s.conflict:,} row(s) conflict with orders already in Chargebee: compare ours "
                "and theirs in the failures file and correct the source or the order"
            )
        )
    if missing:
        steps.append(
            NextStep(
                f"the last reconciliation found {missing:,} order(s) missing in Chargebee: "
                "send them again",
                f"order-import retry --batch {batch}{where} --missing",
            )
        )
    if not steps:
        if reconciled:
            steps.append(NextStep("done: every row is in Chargebee and reconciliation is clean"))
        else:
            steps.append(
                NextStep(
                    "done: every row is in Chargebee; compare the batch with what Chargebee holds",
                    f"order-import reconcile --batch {batch}{where}",
                )
            )
    return steps


def _run_limit(run: RunInfo) -> float | None:
    """The requests-per-minute limit a run used, as it recorded in its settings."""
    value = run.settings.get("rate_per_minute")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _timeline(runs: Sequence[RunAttempts]) -> list[TimelineBin]:
    """Requests, successes, 429s and other answers per time bucket (the report's chart)."""
    if not runs:
        return []
    first = min(r.figures.first_start for r in runs)
    last = max(r.figures.last_start for r in runs)
    span = max(last - first, 1.0)
    width = _nice_width(span / MAX_TIMELINE_BINS)
    nbins = int(span // width) + 1
    counts = timeline_counts(runs, first, width, nbins)
    timeline = []
    for i in range(nbins):
        req, ok, thr, err = counts.get(i, (0, 0, 0, 0))
        timeline.append(TimelineBin(first + i * width, width, req, ok, thr, err))
    return timeline


_max_in_window = max_in_window_np
"""The vectorised ``rates.max_in_window`` (``report.attempts``), under its old name."""


def _nice_width(raw: float) -> float:
    """Round a bucket width up to 1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10, 15, 30 min, 1 h, ..."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400):
        if raw <= step:
            return float(step)
    return float(math.ceil(raw / 86400) * 86400)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values.sort()
    out = {}
    for p in PERCENTILES:
        index = min(len(values) - 1, max(0, math.ceil(p / 100 * len(values)) - 1))
        out[f"p{p}"] = round(values[index], 1)
    out["max"] = round(values[-1], 1)
    return out


def _currency_totals(ledger: Ledger, batch: str) -> list[dict[str, Any]]:
    per: dict[str, dict[str, int]] = {}
    for currency, state, rows, total in ledger.totals_by_currency(batch):
        entry = per.setdefault(
            currency or "(none)",
            {"source_rows": 0, "source_total": 0, "imported_rows": 0, "imported_total": 0},
        )
        entry["source_rows"] += rows
        entry["source_total"] += total
        if state == "succeeded":
            entry["imported_rows"] += rows
            entry["imported_total"] += total
    return [{"currency": cur, **vals} for cur, vals in sorted(per.items())]


def render_status_text(summary: BatchSummary, steps: Sequence[NextStep]) -> str:
    """The batch's numbers and its next steps as a few plain lines for the terminal."""
    c = summary.counts
    lines = [
        f"batch {summary.batch} ({summary.operation}) from {summary.source_file}",
        f"  rows read {summary.rows_read:,}  valid {summary.valid:,}  invalid {summary.invalid:,}",
        f"  imported {summary.imported:,}  already present {summary.already_present:,}  "
        f"failed {summary.failed:,}  conflict {summary.conflict:,}",
        f"  pending {summary.pending:,}  retryable {summary.retryable:,}  "
        f"in doubt {summary.in_doubt:,}  skipped {summary.skipped:,}  "
        f"blocked {summary.blocked:,}",
        "  states: " + "  ".join(f"{s} {c.get(s, 0):,}" for s in ROW_STATES),
        f"  requests {summary.requests:,}  429s {summary.throttled:,}  "
        f"time {format_duration(summary.duration_s)} over {len(summary.runs)} run(s)",
        f"  rate: {summary.rate.text()}",
    ]
    if summary.latency_ms:
        lines.append(
            "  latency ms: " + "  ".join(f"{k} {v:,.0f}" for k, v in summary.latency_ms.items())
        )
    if summary.errors_by_api_code:
        top = ", ".join(f"{code} {n:,}" for code, n in summary.errors_by_api_code[:5])
        lines.append(f"  top API errors: {top}")
    if summary.errors_by_rule:
        top = ", ".join(f"{rule} {n:,}" for rule, n in summary.errors_by_rule[:5])
        lines.append(f"  top validation rules: {top}")
    if summary.skip_reasons:
        top = ", ".join(f"{reason} {n:,}" for reason, n in summary.skip_reasons[:5])
        lines.append(f"  skipped by the mapping: {top}")
    lines.append(f"  {preflight_text(summary)}")
    lines.append(f"  exit code {summary.exit_code}")
    lines.extend(f"  next: {step.line()}" for step in steps)
    return "\n".join(lines)


def preflight_text(summary: BatchSummary) -> str:
    """``pre-flight: 3 requests, 2 rows blocked (invoice_not_found 2)`` for the batch."""
    reasons = ", ".join(f"{code} {n:,}" for code, n in summary.blocked_reasons)
    return (
        f"pre-flight: {summary.preflight_requests:,} request(s), {summary.blocked:,} row(s) "
        "blocked" + (f" ({reasons})" if reasons else "")
    )


def default_report_dir(settings: Settings | None, batch: str) -> Path:
    """``settings.report_dir`` when set, else ``reports/<batch>/`` (batch made path-safe)."""
    if settings is not None and settings.report_dir is not None:
        return settings.report_dir
    name = _UNSAFE_NAME.sub("_", batch).strip("._") or "batch"
    return DEFAULT_REPORTS_ROOT / name


def clock(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def read_reconciliation(path: Path) -> dict[str, Any] | None:
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
    document["generated"] = clock(document.get("generated_at"))
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
        reconciliation = read_reconciliation(out_dir / "reconciliation.json")
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
