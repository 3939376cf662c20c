"""The numbers of a batch, computed from the ledger alone: shared by reports, summary.json, status.

``summarize`` reads counts, outcomes, the attempts log and the runs; ``render_status_text``
prints them for the terminal (``order-import status``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.errors import LedgerError
from pipeline.ledger.ledger import Ledger
from pipeline.models import ROW_STATES, RowState, exit_code_for

PROBLEM_STATES: tuple[RowState, ...] = ("failed", "conflict", "retryable", "invalid")
"""States whose rows go to failures.csv/xlsx and the report's table."""
MAX_TIMELINE_BINS = 120
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
    achieved_per_minute: float
    """Requests per minute over the time the runs were sending."""
    latency_ms: Mapping[str, float]
    """Latency percentiles (``p50``, ``p90``, ``p95``, ``p99``, ``max``) of attempts."""
    timeline: Sequence[TimelineBin]
    totals_by_currency: Sequence[Mapping[str, Any]]
    """Per currency: rows and sum of ``total`` (minor units) in the source and imported."""
    runs: Sequence[Mapping[str, Any]]
    exit_code: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what summary.json holds)."""
        data = asdict(self)
        data["errors_by_api_code"] = [{"code": c, "rows": n} for c, n in self.errors_by_api_code]
        data["errors_by_rule"] = [{"rule": r, "rows": n} for r, n in self.errors_by_rule]
        data["warnings_by_rule"] = [{"rule": r, "rows": n} for r, n in self.warnings_by_rule]
        data["notes"] = list(self.notes)
        return data


def summarize(ledger: Ledger, batch: str) -> BatchSummary:
    """Compute a batch's summary from the ledger.

    Raises:
        LedgerError: the ledger holds no such batch.
    """
    info = ledger.get_batch(batch)
    if info is None:
        known = ", ".join(b.name for b in ledger.batches()[:10]) or "none"
        raise LedgerError(
            f"{ledger.path}: no batch named {batch!r} (batches in this ledger: {known})"
        )
    counts = {str(k): v for k, v in ledger.counts(batch).items()}
    resolutions = {
        str(k): v for k, v in ledger.tally(batch, "resolution", states=("succeeded",)).items()
    }
    by_code = ledger.tally(batch, "api_error_code", states=("failed", "conflict", "retryable"))
    rules: Counter[str] = Counter()
    warnings: Counter[str] = Counter()
    for row in ledger.rows(batch, states=("invalid",)):
        rules.update({i.rule for i in row.issues if i.severity == "error"})
    for row in ledger.rows(batch, with_issues=True):
        if row.state != "invalid":
            warnings.update({i.rule for i in row.issues if i.severity == "warning"})
    requests, throttled, latency, timeline, active_s = _attempt_stats(ledger, batch)
    runs = ledger.runs(batch)
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
        valid=rows_read - counts["invalid"],
        succeeded=counts["succeeded"],
        imported=resolutions.get("imported", 0) + resolutions.get("replayed", 0),
        already_present=resolutions.get("already_present", 0) + resolutions.get("reconciled", 0),
        failed=counts["failed"],
        invalid=counts["invalid"],
        in_doubt=counts["in_flight"],
        retryable=counts["retryable"],
        conflict=counts["conflict"],
        pending=counts["pending"],
        resolutions=resolutions,
        errors_by_api_code=[(code or "(none)", n) for code, n in by_code.items()],
        errors_by_rule=rules.most_common(),
        warnings_by_rule=warnings.most_common(),
        requests=requests,
        throttled=throttled,
        duration_s=round(duration, 3),
        achieved_per_minute=round(requests / active_s * 60, 2) if active_s > 0 else 0.0,
        latency_ms=latency,
        timeline=timeline,
        totals_by_currency=_currency_totals(ledger, batch),
        runs=[
            {
                "id": r.id,
                "command": r.command,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "status": r.status,
                "rate_per_minute": r.rate_per_minute,
                "throttled": r.throttled,
                "counts": dict(r.counts),
            }
            for r in runs
        ],
        exit_code=exit_code_for(counts),
    )


def _attempt_stats(
    ledger: Ledger, batch: str
) -> tuple[int, int, dict[str, float], list[TimelineBin], float]:
    """(requests, 429s, latency percentiles, timeline, seconds spent sending)."""
    starts: list[float] = []
    latencies: list[float] = []
    kinds: list[int] = []  # 0 ok, 1 throttled, 2 other
    for attempt in ledger.attempts(batch):
        starts.append(attempt.started_at)
        if attempt.latency_ms is not None:
            latencies.append(attempt.latency_ms)
        throttled = attempt.http_status == 429 or attempt.outcome == "throttled"
        ok = attempt.outcome in ("ok", "replayed", "not_found")
        kinds.append(1 if throttled else 0 if ok else 2)
    if not starts:
        return 0, 0, {}, [], 0.0
    latency = _percentiles(latencies)
    first, last = min(starts), max(starts)
    span = max(last - first, 1.0)
    width = _nice_width(span / MAX_TIMELINE_BINS)
    nbins = int(span // width) + 1
    req = [0] * nbins
    ok_n = [0] * nbins
    thr = [0] * nbins
    err = [0] * nbins
    for start, kind in zip(starts, kinds, strict=True):
        i = min(int((start - first) // width), nbins - 1)
        req[i] += 1
        (ok_n, thr, err)[kind][i] += 1
    timeline = [
        TimelineBin(first + i * width, width, req[i], ok_n[i], thr[i], err[i]) for i in range(nbins)
    ]
    active = sum(1 for n in req if n) * width
    return len(starts), sum(thr), latency, timeline, min(active, span + width)


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


def _fmt_duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def render_status_text(summary: BatchSummary) -> str:
    """The batch's numbers as a few plain lines for the terminal."""
    c = summary.counts
    lines = [
        f"batch {summary.batch} ({summary.operation}) from {summary.source_file}",
        f"  rows read {summary.rows_read:,}  valid {summary.valid:,}  invalid {summary.invalid:,}",
        f"  imported {summary.imported:,}  already present {summary.already_present:,}  "
        f"failed {summary.failed:,}  conflict {summary.conflict:,}",
        f"  pending {summary.pending:,}  retryable {summary.retryable:,}  "
        f"in doubt {summary.in_doubt:,}",
        "  states: " + "  ".join(f"{s} {c.get(s, 0):,}" for s in ROW_STATES),
        f"  requests {summary.requests:,}  429s {summary.throttled:,}  "
        f"rate {summary.achieved_per_minute:,.1f}/min  "
        f"time {_fmt_duration(summary.duration_s)} over {len(summary.runs)} run(s)",
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
    verdict = (
        "rows still pending: run the batch again"
        if summary.pending
        else {
            0: "done: every row is in Chargebee",
            1: "finished with rows to fix (see failures.csv)",
            3: "rows are in doubt: run again to reconcile them",
        }.get(summary.exit_code, "")
    )
    lines.append(f"  exit code {summary.exit_code}: {verdict}")
    return "\n".join(lines)
