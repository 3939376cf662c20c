"""Update rows left in doubt by a crash: looked up, compared with what was sent, then decided.

An update is not idempotent over time: resending an old correction after a newer one was made
overwrites the newer one. So a row left ``in_flight`` is never resent blindly. Its order is
looked up (``GET /orders/{id}``) and every field the row sent is compared (typed, see
``pipeline.params``) with what Chargebee holds and with what the ledger knew the order held
when the row was sent:

- Chargebee holds what we sent → ``succeeded`` (``reconciled``), nothing resent;
- it still holds the values from before, and no later correction in the ledger touched those
  fields → back to ``pending``: sent in this run;
- anything else (the order changed since, here or behind the tool's back, or the ledger cannot
  say what it held before) → ``conflict``, with ours and theirs per field: never resent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio

from pipeline.api.client import ChargebeeClient
from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import RetryPolicy, send_with_retries
from pipeline.config import Settings
from pipeline.errors import ApiError, AuthError
from pipeline.ledger.ledger import Ledger, LedgerRow
from pipeline.models import Outcome
from pipeline.params import held_value, ours_theirs, same_value, sent_fields
from pipeline.reconcile.ledger_view import changed_fields, known_orders

if TYPE_CHECKING:
    import httpx

Decision = Literal["applied", "not_applied", "changed"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the look-up says about one in-doubt update row."""

    decision: Decision
    fields: tuple[str, ...] = ()
    """The fields that decided it (those Chargebee holds otherwise than we sent)."""
    detail: str = ""
    """``field: ours …, theirs …`` for each, for the message."""


@dataclass(slots=True)
class InDoubtResult:
    """Counts of one resolution pass."""

    applied: int = 0
    resent: int = 0
    conflicts: int = 0
    notes: list[str] = field(default_factory=list)


def decide(
    sent: Mapping[str, Any],
    order: Mapping[str, Any],
    before: Mapping[str, Any] | None,
    newer: frozenset[str] = frozenset(),
) -> Verdict:
    """Compare an in-doubt update's params with the order Chargebee holds.

    Args:
        sent: the params the row sent (only changed fields, with ``id``).
        order: the order as ``GET /orders/{id}`` returned it.
        before: what the ledger knew the order held when the row was sent (None: unknown).
        newer: dotted fields later succeeded updates (in any batch) set since then.
    """
    wanted = sent_fields(sent)
    differing = [n for n, v in wanted.items() if not same_value(n, v, held_value(order, n))]
    if not differing:
        return Verdict("applied")
    detail = "; ".join(ours_theirs(n, wanted[n], held_value(order, n)) for n in differing[:8])
    untouched = before is not None and all(
        same_value(n, held_value(before, n), held_value(order, n)) for n in differing
    )
    touched_later = any(_base(n) in newer for n in differing)
    if untouched and not touched_later:
        return Verdict("not_applied", tuple(differing), detail)
    return Verdict("changed", tuple(differing), detail)


def _base(name: str) -> str:
    return "order_line_items" if name.startswith("order_line_items[") else name


def resolve_in_doubt(
    ledger: Ledger,
    settings: Settings,
    batch: str,
    run_id: int,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> InDoubtResult:
    """Look up every in-doubt row of update batch ``batch`` and record what it means.

    Rows whose update Chargebee holds become ``succeeded``; rows it never received go back to
    ``pending`` (the run sends them); rows whose order changed since become ``conflict``.
    A failed look-up leaves the row in doubt (noted), to be tried again by the next run.

    Raises:
        AuthError: the key was refused (nothing was sent).
    """
    rows = list(ledger.rows(batch, states=("in_flight",)))
    result = InDoubtResult()
    if not rows:
        return result
    anyio.run(_resolve, ledger, settings, batch, run_id, rows, result, transport)
    return result


async def _resolve(
    ledger: Ledger,
    settings: Settings,
    batch: str,
    run_id: int,
    rows: list[LedgerRow],
    result: InDoubtResult,
    transport: httpx.AsyncBaseTransport | None,
) -> None:
    limiter = RateLimiter.from_settings(settings)
    policy = RetryPolicy.from_settings(settings)
    async with ChargebeeClient(settings, transport=transport) as client:
        for row in rows:
            oid = row.order_id or str(row.params.get("id") or "")
            if not oid:
                result.notes.append(f"row {row.row_key} is in doubt and has no order id to check")
                continue
            try:
                order, attempts = await send_with_retries(
                    lambda oid=oid: client.retrieve_order(oid),  # type: ignore[misc]
                    limiter=limiter,
                    policy=policy,
                    status_of=lambda found: 200 if found is not None else 404,
                )
            except AuthError:
                raise
            except ApiError as err:
                result.notes.append(
                    f"row {row.row_key} (order {oid}): look-up failed ({err.message}); "
                    "still in doubt, tried again by the next run"
                )
                continue
            ledger.record(_outcome(ledger, batch, run_id, row, oid, order, attempts, result))


def _outcome(
    ledger: Ledger,
    batch: str,
    run_id: int,
    row: LedgerRow,
    oid: str,
    order: Mapping[str, Any] | None,
    attempts: int,
    result: InDoubtResult,
) -> Outcome:
    if order is None:
        # No such order: resending cannot overwrite anything (Chargebee answers 404).
        result.resent += 1
        return Outcome(batch, row.row_key, run_id, "pending", attempts=attempts)
    sent_at = row.updated_at
    before = known_orders(ledger, order_ids=[oid], exclude_batch=batch, as_of=sent_at).get(oid)
    newer = _newer_fields(ledger, oid, sent_at)
    verdict = decide(row.params, order, before.params if before else None, newer)
    if verdict.decision == "applied":
        result.applied += 1
        return Outcome(
            batch,
            row.row_key,
            run_id,
            "succeeded",
            resolution="reconciled",
            order_id=oid,
            http_status=200,
            attempts=attempts,
        )
    if verdict.decision == "not_applied":
        result.resent += 1
        return Outcome(batch, row.row_key, run_id, "pending", attempts=attempts)
    result.conflicts += 1
    why = (
        "the ledger does not know what it held before"
        if before is None
        else "it changed since this update was sent"
    )
    return Outcome(
        batch,
        row.row_key,
        run_id,
        "conflict",
        order_id=oid,
        http_status=200,
        error_code="changed_since",
        param=verdict.fields[0],
        message=(
            f"order {oid} was left in doubt and {why} ({verdict.detail}); not resent, so a "
            "newer correction is never overwritten. If ours is right, send it again in a new "
            "update batch"
        ),
        attempts=attempts,
    )


def _newer_fields(ledger: Ledger, oid: str, since: float) -> frozenset[str]:
    """Fields that succeeded updates of ``oid`` (any update batch) set after ``since``."""
    names: set[str] = set()
    for info in ledger.batches():
        if info.operation != "update":
            continue
        for row in ledger.rows(info.name, states=("succeeded",)):
            if row.updated_at >= since and (row.order_id or row.params.get("id")) == oid:
                names |= changed_fields(row.params)
    return frozenset(names)
