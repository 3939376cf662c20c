"""``reconcile``: compare what Chargebee holds for a batch with the ledger, row by row.

Fetches the orders updated since the batch started (an orders export, or paging ``GET
/orders``), confirms any expected order not in that set by id, compares (``reconcile_compare``)
and writes ``reconciliation.csv`` and ``reconciliation.json`` (schema: docs/reconcile.md).
"""

from __future__ import annotations

import csv
import json
import shlex
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio

from pipeline.api.client import ChargebeeClient
from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import RetryPolicy
from pipeline.config import DEFAULT_LEDGER, Settings
from pipeline.errors import ApiError, AuthError, ConfigError
from pipeline.ledger.ledger import Ledger
from pipeline.ledger.lock import run_lock
from pipeline.reconcile.compare import (
    CATEGORIES,
    Comparison,
    Expected,
    Finding,
    OtherRow,
    compare,
)
from pipeline.reconcile.fetch import Fetcher, Sleep
from pipeline.reconcile.ledger_view import changed_fields, known_orders
from pipeline.reconcile.missing import MISSING_KEYS
from pipeline.report.data import RECONCILIATION_SCHEMA, default_report_dir
from pipeline.report.write import write_reports
from pipeline.safety import safe_cell

if TYPE_CHECKING:
    import httpx

Via = Literal["export", "list", "auto"]
VIAS: tuple[Via, ...] = ("auto", "export", "list")
WINDOW_MARGIN_S = 3600
"""Orders updated since the batch started minus this margin are fetched (clock skew)."""
MIN_LIVE_POLL_S = 10.0
"""Chargebee asks for at least 10 s between export polls; only the sandbox may poll faster."""
EXAMPLES = 20
CSV_COLUMNS = (
    "category",
    "order_id",
    "source_line",
    "row_key",
    "field",
    "expected",
    "actual",
    "message",
)


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    """What a reconciliation found, and where it wrote the details."""

    batch: str
    source: str
    """Where Chargebee's side came from: ``export`` or ``list``."""
    expected: int
    fetched: int
    matched: int
    missing: int
    extra: int
    duplicate: int
    mismatched: int
    """Field mismatches (one per field)."""
    csv_path: Path
    json_path: Path
    notes: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        """No finding of any kind."""
        return not (self.missing or self.extra or self.duplicate or self.mismatched)

    @property
    def exit_code(self) -> int:
        """0 clean, 1 findings."""
        return 0 if self.clean else 1


@dataclass(frozen=True, slots=True)
class _Plan:
    operation: str
    expected: list[Expected]
    other_rows: dict[str, OtherRow]
    foreign_ids: frozenset[str]
    window_start: int


def reconcile_batch(
    settings: Settings,
    batch: str,
    *,
    via: Via = "auto",
    out_dir: Path | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep | None = None,
) -> ReconcileResult:
    """Reconcile ``batch`` against Chargebee; write reconciliation.csv/.json; return the result.

    Args:
        settings: resolved settings (``export_poll_seconds`` spaces export polls).
        batch: an import batch (or an update batch: its changed fields are checked).
        via: ``export`` (fail if unusable), ``list``, or ``auto`` (export, else list).
        out_dir: where to write; default the batch's report directory.
        transport: httpx transport seam for tests.
        sleep: poll sleeper seam for tests.

    Raises:
        ConfigError: no such batch/ledger, or a bad ``via``.
        AuthError / ApiError: Chargebee could not be read.
    """
    if via not in VIAS:
        raise ConfigError(f"--via must be one of {', '.join(VIAS)}, not {via!r}")
    if not settings.ledger_path.is_file():
        raise ConfigError(f"no ledger at {settings.ledger_path}", hint="pass --ledger PATH")
    settings.check_target()
    settings.require_api_key()
    out = out_dir or default_report_dir(settings, batch)
    _check_out_dir(out)
    with run_lock(settings.ledger_path), Ledger(settings.ledger_path) as ledger:
        plan = _plan(ledger, batch)
        run_id = ledger.start_run(batch, command="reconcile", settings_summary={"via": via})
        notes: list[str] = []
        status = "failed"
        try:
            orders, source = anyio.run(_fetch, settings, plan, via, notes, transport, sleep)
            comparison = compare(
                plan.expected,
                orders,
                other_rows=plan.other_rows,
                foreign_ids=plan.foreign_ids,
                detect_extras=plan.operation == "import",
            )
            if plan.operation == "import" and comparison.counts.get("missing"):
                notes.append(_resend_step(settings, batch, comparison.counts["missing"]))
            result = _write(out, batch, plan, comparison, source, via, notes)
            status = "clean" if result.clean else "findings"
        finally:
            summary: dict[str, Any] = {"via": via, "notes": notes}
            if status != "failed":
                summary.update(comparison.counts, matched=comparison.matched, source=source)
                summary[MISSING_KEYS] = sorted(
                    {
                        f.row_key
                        for f in comparison.findings
                        if f.category == "missing" and f.row_key
                    }
                )
            ledger.finish_run(run_id, status=f"reconciled: {status}", summary=summary)
        # report.html shows the reconciliation section from reconciliation.json beside it.
        write_reports(ledger, batch, out, settings=settings)
    return result


def _resend_step(settings: Settings, batch: str, missing: int) -> str:
    """The command that sends the missing orders again, runnable exactly as printed."""
    where = ""
    if settings.ledger_path != DEFAULT_LEDGER:
        where = f" --ledger {shlex.quote(str(settings.ledger_path))}"
    return (
        f"{missing} order(s) missing in Chargebee: send them again with "
        f"`order-import retry --batch {shlex.quote(batch)}{where} --missing` (each is looked up "
        "first)"
    )


def _check_out_dir(out: Path) -> None:
    """``--out`` must be a directory (made when missing): refused before anything is fetched."""
    if out.exists() and not out.is_dir():
        raise ConfigError(
            f"--out {out}: is a file, not a directory",
            hint="name a directory: reconciliation.csv, .json and report.html are written in it",
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create the directory ({exc.strerror})") from None


def _plan(ledger: Ledger, batch: str) -> _Plan:
    info = ledger.get_batch(batch)
    if info is None:
        raise ConfigError(f"no batch named {batch!r} in {ledger.path}")
    succeeded: dict[str, tuple[str, int, Any, Any]] = {}
    other: dict[str, OtherRow] = {}
    for row in ledger.rows(batch):
        oid = row.order_id or (str(row.params["id"]) if row.params.get("id") else None)
        if oid is None:
            continue
        if row.state == "succeeded":
            succeeded[oid] = (row.row_key, row.source_line, row.params, row.control)
        elif row.state != "invalid":
            other[oid] = OtherRow(row.row_key, row.source_line, row.state)
    known = known_orders(ledger, order_ids=succeeded.keys())
    expected = []
    for oid, (row_key, line, params, control) in succeeded.items():
        entry = known.get(oid)
        effective = entry.params if entry is not None else dict(params)
        fields = None if info.operation == "import" else frozenset(changed_fields(params))
        updated = frozenset(entry.updated_fields) if entry is not None else frozenset()
        expected.append(Expected(row_key, line, oid, effective, updated, fields, control))
    foreign = frozenset(
        oid
        for other_batch in ledger.batches()
        if other_batch.name != batch and other_batch.operation == "import"
        for row in ledger.rows(other_batch.name, states=("succeeded",))
        if (oid := row.order_id) is not None and oid not in succeeded
    )
    window = int(info.created_at) - WINDOW_MARGIN_S
    return _Plan(info.operation, expected, other, foreign, window)


def poll_interval(settings: Settings) -> float:
    """Seconds between export polls: the setting, but never under 10 s off loopback."""
    if settings.site_kind != "loopback":
        return max(settings.export_poll_seconds, MIN_LIVE_POLL_S)
    return settings.export_poll_seconds


async def _fetch(
    settings: Settings,
    plan: _Plan,
    via: Via,
    notes: list[str],
    transport: httpx.AsyncBaseTransport | None,
    sleep: Sleep | None,
) -> tuple[list[dict[str, Any]], str]:
    limiter = RateLimiter.from_settings(settings)
    poll = poll_interval(settings)
    if poll != settings.export_poll_seconds:
        notes.append(f"export polls spaced {poll:.0f} s (Chargebee's minimum)")
    async with ChargebeeClient(settings, transport=transport) as client:
        fetcher = Fetcher(client, limiter, RetryPolicy.from_settings(settings), sleep=sleep)
        orders: list[dict[str, Any]] | None = None
        source = "list"
        if via in ("export", "auto"):
            try:
                filters = {"order": {"updated_at": {"after": plan.window_start}}}
                orders = await fetcher.via_export(filters, poll_seconds=poll)
                source = "export"
            except AuthError:
                raise
            except ApiError as err:
                if via == "export":
                    raise
                notes.append(f"export unusable ({err.message}); used GET /orders instead")
        if orders is None:
            orders = await fetcher.via_list(
                {
                    "updated_at": {"after": plan.window_start},
                    "include_deleted": True,
                    "sort_by": {"asc": "updated_at"},
                }
            )
        seen = {str(o.get("id")) for o in orders}
        unseen = sorted(e.order_id for e in plan.expected if e.order_id not in seen)
        if unseen:
            notes.append(
                f"{len(unseen)} expected order(s) outside the fetched set: looked up by id"
            )
            orders.extend(await fetcher.by_ids(unseen))
        notes.append(f"{fetcher.requests} request(s) to Chargebee")
    return orders, source


def _write(
    out: Path,
    batch: str,
    plan: _Plan,
    comparison: Comparison,
    source: str,
    via: str,
    notes: list[str],
) -> ReconcileResult:
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "reconciliation.csv"
    json_path = out / "reconciliation.json"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for finding in comparison.findings:
            writer.writerow([safe_cell(_cell(getattr(finding, c))) for c in CSV_COLUMNS])
    counts = dict(comparison.counts)
    document = {
        "schema": RECONCILIATION_SCHEMA,
        "batch": batch,
        "operation": plan.operation,
        "generated_at": int(time.time()),
        "via": via,
        "source": source,
        "window": {"updated_after": plan.window_start},
        "clean": not comparison.findings,
        "exit_code": 1 if comparison.findings else 0,
        "counts": {
            "expected": comparison.expected,
            "fetched": comparison.fetched,
            "matched": comparison.matched,
            **counts,
        },
        "examples": {c: [_example(f) for f in _first(comparison.findings, c)] for c in CATEGORIES},
        "notes": notes,
        "csv": csv_path.name,
    }
    json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")
    return ReconcileResult(
        batch=batch,
        source=source,
        expected=comparison.expected,
        fetched=comparison.fetched,
        matched=comparison.matched,
        missing=counts["missing"],
        extra=counts["extra"],
        duplicate=counts["duplicate"],
        mismatched=counts["mismatch"],
        csv_path=csv_path,
        json_path=json_path,
        notes=tuple(notes),
    )


def _cell(value: object) -> object:
    return "" if value is None else value


def _first(findings: tuple[Finding, ...], category: str) -> list[Finding]:
    return [f for f in findings if f.category == category][:EXAMPLES]


def _example(finding: Finding) -> dict[str, Any]:
    data = asdict(finding)
    data.pop("category")
    return data
