"""``update``: post-import corrections through ``POST /orders/{id}``, only the changed fields.

Reads the corrections file (``update_rows``), drops every field equal to what the ledger knows
the order holds (its import params + later succeeded updates), records rows with nothing left
to change as ``succeeded``/``unchanged`` without a request, and hands the rest to the runner
(same worker pool, limiter, ledger, progress and reports as ``run``). ``POST /orders`` (create)
is deprecated and never used: ``refuse_create`` says so when a configuration asks for it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import DEFAULT_CONFIG_FILE, Settings
from pipeline.errors import ConfigError
from pipeline.ledger.ledger import Ledger
from pipeline.load.reader import input_sha256
from pipeline.models import Outcome, RunSummary, SourceRow
from pipeline.progress import Progress
from pipeline.reconcile.compare import norm
from pipeline.reconcile.ledger_view import KnownOrder, known_orders
from pipeline.send.runner import RunRequest, run_batch
from pipeline.update.rows import read_update_rows

if TYPE_CHECKING:
    import httpx

CREATE_MESSAGE = (
    "POST /orders (create an order) is deprecated by Chargebee and order-import never uses it"
)
CREATE_HINT = (
    "historical orders are imported with POST /orders/import_order (`order-import run FILE "
    "--batch B`); corrections to imported orders go through `order-import update FILE --batch B`"
)
_CREATE_KEYS = frozenset({"endpoint", "operation", "method", "api", "action"})
_CREATE_WORDS = ("create", "post /orders", "/orders/create")


def refuse_create(
    operation: str | None = None,
    *,
    config_file: Path | None = None,
    mapping_path: Path | None = None,
) -> None:
    """Raise a ConfigError pointing to import_order when anything asks for ``POST /orders``.

    Checked: an ``--operation`` value, and ``endpoint``/``operation``/``method`` keys (at any
    table level) of the config file (explicit, or ``./order-import.toml``) and mapping file.
    """
    if operation is not None and _asks_create(operation):
        raise ConfigError(f"--operation {operation}: {CREATE_MESSAGE}", hint=CREATE_HINT)
    config = config_file or (DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None)
    for path in (config, mapping_path):
        if path is None or not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue  # the settings/mapping loader reports unreadable files itself
        for where, value in _keys(data):
            if where.rsplit(".", 1)[-1] in _CREATE_KEYS and _asks_create(str(value)):
                raise ConfigError(
                    f"{path}: {where} = {value!r}: {CREATE_MESSAGE}", hint=CREATE_HINT
                )


def _asks_create(value: str) -> bool:
    text = " ".join(value.lower().split())
    return text in ("create", "create_order", "orders.create") or any(
        text.startswith(w) for w in _CREATE_WORDS[1:]
    )


def _keys(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        where = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _keys(value, where + ".")
        else:
            yield where, value


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
            changed = {k: v for k, v in value.items() if norm(k, v) != norm(k, current.get(k))}
            if changed:
                out[name] = changed
        elif name == "order_line_items" and isinstance(value, list):
            lines = {str(li.get("id")): li for li in held.get(name) or []}
            items = []
            for item in value:
                current = lines.get(str(item.get("id")), {})
                if any(norm(k, v) != norm(k, current.get(k)) for k, v in item.items() if k != "id"):
                    items.append(dict(item))
            if items:
                out[name] = items
        elif norm(name, value) != norm(name, held.get(name)):
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
        if row.row_key in done or not row.is_valid:
            send.append(row)
            continue
        oid = str(row.params["id"])
        params = diff_params(row.params, known.get(oid))
        target = send if len(params) > 1 else unchanged
        target.append(replace(row, params=params))
    return send, unchanged


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
    refuse_create(config_file=settings.config_file, mapping_path=settings.mapping_path)
    rows = read_update_rows(source, settings)
    ids = {str(r.params["id"]) for r in rows if r.params.get("id")}
    with Ledger(settings.ledger_path) as ledger:
        info = ledger.get_batch(batch)
        if info is not None and info.operation != "update":
            raise ConfigError(
                f"batch {batch!r} is an {info.operation} batch; corrections need their own batch",
                hint="use a new --batch name for the update, e.g. --batch fixes-1",
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
        note = f"{len(unchanged)} row(s) already match what Chargebee holds: nothing sent"
        summary = replace(summary, notes=(*summary.notes, note))
    return summary


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
