"""Pre-flight: before rows are sent, ask the site (read-only, in batches) whether it takes them.

For a list of rows (``WorkItem``) about to be sent, at most one ``[in]`` request per 100 rows per
check kind (docs/preflight.md):

* ``GET /orders?id[in]=[...]``: the row's order id is not taken. Found and holding this row's
  order (the comparison ``duplicate_entry`` verification uses) → ``succeeded`` /
  ``already_present``; found with the same identity but other values → ``conflict``
  (``content_differs``, exactly what sending would end in); another order → ``blocked``
  ``order_id_taken``;
* ``GET /invoices?id[in]=[...]``: the invoice exists (``invoice_not_found``) and belongs to the
  row's customer / subscription (``invoice_customer_mismatch`` /
  ``invoice_subscription_mismatch``);
* ``GET /orders?invoice_id[in]=[...]``: no other order is on the invoice (``invoice_has_order``),
  unless the mapping allows several orders per invoice;
* document numbers (``document_number_taken``): against every order the look-ups above found plus
  one bounded scan of the site's newest orders (``⌈N/100⌉`` pages for N rows; the list API has no
  document-number filter).

Rows that pass are returned to be sent; the others get an ``Outcome`` (never sent).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from pipeline.api.client import printable
from pipeline.api.listing import MAX_IDS, Lister
from pipeline.errors import AuthError, PipelineError, first_error
from pipeline.models import Outcome, WorkItem
from pipeline.params import same_value

__all__ = ["BLOCK_CODES", "Preflight", "PreflightStats", "Verify", "scan_pages"]

_KINDS = ("order_ids", "invoices", "invoice_orders")
"""The look-ups of one part of 100 rows (run at once); the scan is read once per run."""

Verify = Callable[[WorkItem, Mapping[str, Any]], Outcome]
"""What an order already holding the row's id means for the row: ``succeeded`` (it is this row's
order) or ``conflict``; ``send.verification.verified_outcome`` with its batch and run bound."""

BLOCK_CODES = (
    "invoice_not_found",
    "invoice_customer_mismatch",
    "invoice_subscription_mismatch",
    "order_id_taken",
    "invoice_has_order",
    "document_number_taken",
)
"""The ``error_code`` of a ``blocked`` row: why the site would refuse it."""


def scan_pages(rows: int) -> int:
    """Pages of the site's order list read for the document-number check: ⌈rows/100⌉."""
    return max(1, -(-rows // MAX_IDS))


@dataclass(slots=True)
class PreflightStats:
    """What pre-flight did in one run (mutable; owned by ``Preflight``)."""

    checked: int = 0
    blocked: Counter[str] = field(default_factory=Counter)
    """Rows blocked, by ``error_code``."""
    already_present: int = 0
    conflict: int = 0
    scanned_orders: int = 0
    """Orders the document-number scan read."""
    scan_complete: bool = True
    """False when the site holds more orders than the scan read."""
    by_kind: Counter[str] = field(default_factory=Counter)
    """Requests by check kind (``invoices``, ``order_ids``, ``invoice_orders``, ``scan``)."""

    @property
    def requests(self) -> int:
        return sum(self.by_kind.values())

    def text(self) -> str:
        """``pre-flight: 3 requests, 2 rows blocked (invoice_not_found 2)`` and the scan bound."""
        blocked = sum(self.blocked.values())
        parts = [f"pre-flight: {self.requests} request(s), {self.checked} row(s) checked"]
        reasons = ", ".join(f"{code} {n}" for code, n in self.blocked.most_common())
        parts.append(f"{blocked} row(s) blocked" + (f" ({reasons})" if reasons else ""))
        if self.already_present:
            parts.append(f"{self.already_present} already in Chargebee")
        if self.conflict:
            parts.append(f"{self.conflict} in conflict")
        text = ", ".join(parts)
        if not self.scan_complete:
            text += (
                f"; document numbers were checked only against the {self.scanned_orders} newest "
                "orders of the site and those the look-ups found"
            )
        return text


@dataclass(slots=True)
class _Site:
    """What the look-ups of one list of rows found."""

    invoices: dict[str, Mapping[str, Any]]
    by_id: dict[str, Mapping[str, Any]]
    by_invoice: dict[str, list[Mapping[str, Any]]]


class Preflight:
    """Checks rows against the site before they are sent (see the module docstring).

    Args:
        lister: list requests through the run's limiter and retry policy.
        batch, run_id: stamped on the outcomes of rows that are not sent.
        verify: decides what an order already holding a row's id means (see ``Verify``).
        several_per_invoice: the mapping allows several orders on one invoice (no
            ``invoice_has_order`` check, and no request for it).
        expected_rows: rows this run will check at most: bounds the document-number scan.
        parallel: look-up requests in flight at once (at most one more, the scan): parts of
            100 rows are checked ``parallel // 3`` at a time, their kinds at once.
    """

    def __init__(
        self,
        lister: Lister,
        *,
        batch: str,
        run_id: int,
        verify: Verify,
        several_per_invoice: bool = False,
        expected_rows: int = 0,
        parallel: int = len(_KINDS),
    ) -> None:
        self.lister = lister
        self.batch = batch
        self.run_id = run_id
        self.verify = verify
        self.several_per_invoice = several_per_invoice
        self.expected_rows = expected_rows
        self.stats = PreflightStats()
        self.parallel = parallel
        self._documents: dict[str, str] | None = None
        """Document number → id of the order holding it, from the scan (read once per run)."""
        self._scan_lock = anyio.Lock()

    async def check(self, items: Sequence[WorkItem]) -> tuple[list[WorkItem], list[Outcome]]:
        """(rows to send, outcomes of the rows that must not be sent), in parts of 100 rows.

        The look-ups of one part run at once (order ids, invoices, orders on the invoices), and
        ``parallel // 3`` parts at a time (the document-number scan alongside), so at most
        ``parallel + 1`` requests are in flight; every one through the lister's limiter. The
        order of the rows is kept.

        Raises:
            ApiError: a look-up failed after its retries (nothing of ``items`` was decided);
                unwrapped from the task group, like ``AuthError`` and ``AdmissionHalted``.
        """
        parts = [items[start : start + MAX_IDS] for start in range(0, len(items), MAX_IDS)]
        decided: list[tuple[list[WorkItem], list[Outcome]]] = [([], []) for _ in parts]
        scanned = anyio.Event()
        todo = iter(range(len(parts)))

        async def scan() -> None:
            await self._scanned_documents(items)
            scanned.set()

        async def worker() -> None:
            for index in todo:  # shared: each part is taken by one worker
                site = await self._look_up(parts[index])
                await scanned.wait()
                decided[index] = self._decide_part(parts[index], site)

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(scan)
                for _ in range(min(len(parts), max(1, self.parallel // len(_KINDS)))):
                    group.start_soon(worker)
        except BaseExceptionGroup as failed:
            raise _first_error(failed) from None
        send: list[WorkItem] = []
        held: list[Outcome] = []
        for part, (part_send, part_held) in zip(parts, decided, strict=True):
            send += part_send
            held += part_held
            self._tally(len(part), part_held)
        return send, held

    def _decide_part(
        self, part: Sequence[WorkItem], site: _Site
    ) -> tuple[list[WorkItem], list[Outcome]]:
        documents = self._documents or {}
        send: list[WorkItem] = []
        held: list[Outcome] = []
        for item in part:
            outcome = self._decide(item, site, documents)
            if outcome is None:
                send.append(item)
            else:
                held.append(outcome)
        return send, held

    def _tally(self, checked: int, held: Sequence[Outcome]) -> None:
        """Count a part's decisions (once every part of the call was decided: a failed call
        counts nothing)."""
        self.stats.checked += checked
        for outcome in held:
            if outcome.state == "blocked":
                self.stats.blocked[outcome.error_code or "blocked"] += 1
            elif outcome.state == "succeeded":
                self.stats.already_present += 1
            else:
                self.stats.conflict += 1

    # -- look-ups --------------------------------------------------------------------------

    def _counter(self, kind: str) -> Callable[[], None]:
        """Counts one request of ``kind`` per HTTP attempt of the call it is handed to (exact
        when look-ups of several kinds and parts run at once)."""

        def count() -> None:
            self.stats.by_kind[kind] += 1

        return count

    async def _look_up(self, part: Sequence[WorkItem]) -> _Site:
        """The part's look-ups, the kinds at once."""
        ids = [item.order_id for item in part if item.order_id]
        invoice_ids = [str(v) for item in part if (v := item.params.get("invoice_id"))]
        site = _Site({}, {}, {})

        async def order_ids() -> None:
            call = self.lister.by_values("order", "id", ids, on_request=self._counter("order_ids"))
            for order in await call:
                site.by_id[str(order.get("id"))] = order

        async def invoices() -> None:
            call = self.lister.by_values(
                "invoice", "id", invoice_ids, on_request=self._counter("invoices")
            )
            for invoice in await call:
                site.invoices[str(invoice.get("id"))] = invoice

        async def invoice_orders() -> None:
            call = self.lister.by_values(
                "order", "invoice_id", invoice_ids, on_request=self._counter("invoice_orders")
            )
            for order in await call:
                site.by_invoice.setdefault(str(order.get("invoice_id")), []).append(order)

        async with anyio.create_task_group() as group:
            if ids:
                group.start_soon(order_ids)
            if invoice_ids:
                group.start_soon(invoices)
                if not self.several_per_invoice:
                    group.start_soon(invoice_orders)
        return site

    async def _scanned_documents(self, items: Sequence[WorkItem]) -> None:
        """The site's newest orders by document number, read once per run (⌈N/100⌉ pages at
        most) when a row names a document number; kept in ``self._documents``."""
        if self._documents is not None:
            return
        if not any(item.params.get("document_number") for item in items):
            return
        async with self._scan_lock:
            if self._documents is not None:
                return
            pages = scan_pages(self.expected_rows or len(items))
            listing = await self.lister.listing(
                "order",
                {"sort_by": {"desc": "created_at"}},
                max_pages=pages,
                strict=False,
                on_request=self._counter("scan"),
            )
            self.stats.scanned_orders = len(listing.items)
            self.stats.scan_complete = listing.complete
            documents: dict[str, str] = {}
            for order in listing.items:
                number = order.get("document_number")
                if number not in (None, ""):
                    documents.setdefault(str(number), str(order.get("id")))
            self._documents = documents

    # -- decisions -------------------------------------------------------------------------

    def _decide(self, item: WorkItem, site: _Site, documents: Mapping[str, str]) -> Outcome | None:
        """The outcome of a row that must not be sent, or None when it may go."""
        params = item.params
        if item.order_id and (holder := site.by_id.get(item.order_id)) is not None:
            verdict = self.verify(item, holder)
            if verdict.state != "conflict" or verdict.error_code != "id_conflict":
                return verdict  # this row's order (succeeded) or an earlier version of it
            return self._blocked(
                item,
                "order_id_taken",
                "id",
                f"order {item.order_id} already exists in Chargebee with other identity fields "
                f"({verdict.message}): change this row's id or delete that order, then retry",
            )
        invoice_id = str(params.get("invoice_id") or "")
        if invoice_id:
            invoice = site.invoices.get(invoice_id)
            if invoice is None:
                return self._blocked(
                    item,
                    "invoice_not_found",
                    "invoice_id",
                    f"invoice {invoice_id} not found in Chargebee: import invoices first",
                )
            mismatch = _belongs_to(params, invoice)
            if mismatch is not None:
                return self._blocked(item, *mismatch)
            others = [
                o for o in site.by_invoice.get(invoice_id, []) if str(o.get("id")) != item.order_id
            ]
            if others:
                holders = ", ".join(str(o.get("id")) for o in others[:5])
                return self._blocked(
                    item,
                    "invoice_has_order",
                    "invoice_id",
                    f"order {holders} already exists in Chargebee for invoice {invoice_id}: "
                    "one order per invoice (set [orders] several_per_invoice = true in the "
                    "mapping if several are intended)",
                )
        number = params.get("document_number")
        if number not in (None, ""):
            holder_id = _document_holder(str(number), item.order_id, site, documents)
            if holder_id is not None:
                return self._blocked(
                    item,
                    "document_number_taken",
                    "document_number",
                    f"order {holder_id} already holds document number {number} in Chargebee",
                )
        return None

    def _blocked(self, item: WorkItem, code: str, param: str, message: str) -> Outcome:
        return Outcome(
            self.batch,
            item.row_key,
            self.run_id,
            "blocked",
            order_id=item.order_id,
            error_code=code,
            param=param,
            message=printable(message)[:2000],
        )


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The exception a failed look-up raised, out of its task group(s): an ``AuthError`` first
    (the run stops on it whatever else failed), then any ``PipelineError``, then the first."""
    return first_error(group, AuthError, PipelineError, BaseException) or group


def _belongs_to(
    params: Mapping[str, Any], invoice: Mapping[str, Any]
) -> tuple[str, str, str] | None:
    """(code, param, message) when the row names a customer or subscription the invoice does not
    belong to. An invoice that names no subscription is not a mismatch (an invoice may bill
    several subscriptions, or none)."""
    invoice_id = str(invoice.get("id"))
    for name, code in (
        ("customer_id", "invoice_customer_mismatch"),
        ("subscription_id", "invoice_subscription_mismatch"),
    ):
        ours = params.get(name)
        theirs = invoice.get(name)
        if ours in (None, "") or theirs in (None, ""):
            continue
        if not same_value(name, ours, theirs):
            what = name.removesuffix("_id")
            return (
                code,
                name,
                f"invoice {invoice_id} belongs to {what} {theirs} in Chargebee, not {ours}",
            )
    return None


def _document_holder(
    number: str, order_id: str | None, site: _Site, documents: Mapping[str, str]
) -> str | None:
    """The id of another order holding document number ``number``, or None."""
    found = [o for o in site.by_id.values()]
    found += [o for orders in site.by_invoice.values() for o in orders]
    for order in found:
        if str(order.get("document_number") or "") == number and str(order.get("id")) != order_id:
            return str(order.get("id"))
    holder = documents.get(number)
    if holder is not None and holder != order_id:
        return holder
    return None
