"""``update``: post-import corrections through ``POST /orders/{id}``, only the changed fields.

Reads the corrections file (``update_rows``), drops every field equal to what the ledger knows
the order holds (its import params + later succeeded updates), records rows with nothing left
to change as ``succeeded``/``unchanged`` without a request, and hands the rest to the runner
(same worker pool, limiter, ledger, progress and reports as ``run``). ``POST /orders`` (create)
is deprecated and never used. Rows left in doubt by a crash are looked up and compared with
what they sent before anything is resent (``update.in_doubt``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.ledger.ledger import Ledger
from pipeline.ledger.lock import run_lock
from pipeline.load.reader import input_sha256
from pipeline.models import Issue, Outcome, RunSummary, SourceRow
from pipeline.params import flatten, same_value, shown
from pipeline.progress import Progress
from pipeline.reconcile.ledger_view import KnownOrder, known_orders
from pipeline.send.runner import RunRequest, run_batch
from pipeline.update.in_doubt import resolve_in_doubt
from pipeline.update.rows import IMPORT_ONLY_KEY, read_update_rows

if TYPE_CHECKING:
    import httpx


def diff_params(requested: Mapping[str, Any], known: KnownOrder | None) -> dict[str, Any]:
    """The params of an update row that differ from what the ledger knows (always with ``id``).

    Scalars are compared in normal form (timestamps as seconds); ``shipping_address`` field by
    field; line items by id (status and sku). With no ledger knowledge, everything is sent.
    """
    held = known.params if known is not None else {}
    out: dict[str, Any] = {"id": requested["id"]}
    for name, value in requested.items():
        if name == "id":
            continue
        if isinstance(value, Mapping):
            current = held.get(name) or {}
            changed = {k: v for k, v in value.items() if not same_value(k, v, current.get(k))}
            if changed:
                out[name] = changed
        elif name == "order_line_items" and isinstance(value, list):
            lines = {str(li.get("id")): li for li in held.get(name) or []}
            items = []
            for item in value:
                current = lines.get(str(item.get("id")), {})
                if any(not same_value(k, v, current.get(k)) for k, v in item.items() if k != "id"):
                    items.append(dict(item))
            if items:
                out[name] = items
        elif not same_value(name, value, held.get(name)):
            out[name] = value
    return out


def plan_update_rows(
    rows: Iterable[SourceRow], known: Mapping[str, KnownOrder], done: set[str]
) -> tuple[list[SourceRow], list[SourceRow]]:
    """Split rows into (to plan and send, unchanged): valid rows carry only changed fields.

    Rows in ``done`` (already succeeded in this batch) and invalid rows pass through as they are.
    """
    send: list[SourceRow] = []
    unchanged: list[SourceRow] = []
    for row in rows:
        row = _check_import_only(row, known)
        if row.row_key in done or not row.is_valid:
            send.append(row)
            continue
        oid = str(row.params["id"])
        params = diff_params(row.params, known.get(oid))
        target = send if len(params) > 1 else unchanged
        target.append(replace(row, params=params))
    return send, unchanged


def _check_import_only(row: SourceRow, known: Mapping[str, KnownOrder]) -> SourceRow:
    """A mapped row's import-only values must equal what was imported; they are never sent.

    A difference makes the row invalid (``not_updatable``), naming ours and the imported value.
    An order the ledger does not know cannot be checked: the values are dropped.
    """
    imported = row.params.get(IMPORT_ONLY_KEY)
    if not isinstance(imported, Mapping):
        return row
    params = {k: v for k, v in row.params.items() if k != IMPORT_ONLY_KEY}
    entry = known.get(str(params.get("id") or ""))
    issues = list(row.issues)
    if entry is not None:
        held = flatten(entry.params)
        for name, value in imported.items():
            if held.get(name) is not None and not same_value(name, value, held.get(name)):
                issues.append(
                    Issue(
                        source_line=row.source_line,
                        column=None,
                        param=name,
                        value=str(value)[:200],
                        rule="not_updatable",
                        message=(
                            f"not updatable: {name} can only be set when an order is imported; "
                            f"this file says {shown(value)}, the order was imported with "
                            f"{shown(held.get(name))}"
                        ),
                    )
                )
    return replace(row, params=params, issues=tuple(issues))


def update_batch(
    settings: Settings,
    source: Path,
    batch: str,
    *,
    dry_run: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Apply a corrections file as update batch ``batch``; return the run's summary.

    Raises:
        InputError, ConfigError, LedgerError, DriftError: nothing was sent.
        AuthError: the key was refused.
    """
    rows = read_update_rows(source, settings)
    ids = {str(r.params["id"]) for r in rows if r.params.get("id")}
    if not dry_run:
        settings.check_target()
        settings.require_api_key()
    # One run per ledger: the lock is held from the first ledger write to the end of the run
    # (run_batch takes it again, re-entrantly).
    with run_lock(settings.ledger_path):
        with Ledger(settings.ledger_path) as ledger:
            info = ledger.get_batch(batch)
            if info is not None and info.operation != "update":
                raise ConfigError(
                    f"batch {batch!r} is an {info.operation} batch; corrections need their own "
                    "batch",
                    hint="use a new --batch name for the update, e.g. --batch fixes-1",
                )
            notes = (
                []
                if info is None or dry_run
                else _settle_in_doubt(ledger, settings, batch, transport)
            )
            known = known_orders(ledger, order_ids=ids)
            done = {r.row_key for r in ledger.rows(batch, states=("succeeded",))} if info else set()
            to_send, unchanged = plan_update_rows(rows, known, done)
            if unchanged and not dry_run:
                _record_unchanged(ledger, settings, source, batch, unchanged)
            elif unchanged:
                to_send.extend(unchanged)  # dry run: planned pending, nothing recorded as done
        summary = run_batch(
            settings,
            RunRequest("update", batch, source=source, operation="update", dry_run=dry_run),
            transport=transport,
            progress=progress,
            rows=[to_send],
        )
    if unchanged:
        notes.append(f"{len(unchanged)} row(s) already match what Chargebee holds: nothing sent")
    if notes:
        summary = replace(summary, notes=(*notes, *summary.notes))
    return summary


def _settle_in_doubt(
    ledger: Ledger,
    settings: Settings,
    batch: str,
    transport: httpx.AsyncBaseTransport | None,
) -> list[str]:
    """Look up the batch's in-doubt rows before anything is planned or sent (see in_doubt)."""
    if not ledger.counts(batch).get("in_flight"):
        return []
    run_id = ledger.start_run(batch, command="update-lookup", settings_summary={})
    status = "failed"
    try:
        result = resolve_in_doubt(ledger, settings, batch, run_id, transport=transport)
        status = "finished"
    finally:
        ledger.finish_run(run_id, status=status, summary={})
    notes = list(result.notes)
    if result.applied or result.resent or result.conflicts:
        notes.insert(
            0,
            f"rows left in doubt, looked up first: {result.applied} already applied, "
            f"{result.resent} resent, {result.conflicts} changed since (not resent)",
        )
    return notes


def _record_unchanged(
    ledger: Ledger, settings: Settings, source: Path, batch: str, rows: list[SourceRow]
) -> None:
    """Plan rows with nothing to change and record them succeeded/unchanged (no request)."""
    ledger.open_batch(
        batch,
        operation="update",
        source_file=str(source),
        input_sha256=input_sha256(source),
        config_fingerprint=settings.fingerprint(),
        allow_drift=settings.allow_drift,
    )
    run_id = ledger.start_run(
        batch, command="update-plan", settings_summary={"unchanged": len(rows)}
    )
    ledger.plan(batch, rows, operation="update", run_id=run_id)
    for row in rows:
        ledger.record(
            Outcome(
                batch,
                row.row_key,
                run_id,
                "succeeded",
                resolution="unchanged",
                order_id=row.order_id,
            )
        )
    ledger.finish_run(run_id, status="finished", summary={"unchanged": len(rows)})
