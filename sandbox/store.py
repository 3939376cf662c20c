"""The sandbox's in-memory state: orders, idempotency records, counters, events, request log.

Optionally persisted through ``persist.Journal`` (orders, idempotency records, counters).
Everything here runs on the server's one event loop, so no locks are needed.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from sandbox import persist
from sandbox.config import SandboxConfig
from sandbox.filters import Filter
from sandbox.invoices import Invoices, generated, read_ids_file, read_seed

COUNT_NAMES = (
    "requests",
    "imports_created",
    "orders_updated",
    "orders_deleted",
    "exports_created",
    "status_2xx",
    "status_4xx",
    "status_429",
    "status_5xx",
    "replays",
    "idempotency_conflicts",
    "rate_limited",
    "concurrency_limited",
    "lock_timeouts",
    "fault_before_commit",
    "fault_after_commit",
    "fault_drop_after_commit",
    "emails_fired",
    "emails_suppressed",
    "webhooks_fired",
    "webhooks_suppressed",
)
"""Counter names reported by ``GET /__sandbox/state`` (all start at 0; exact, never truncated)."""

_COUNTS_EVERY_S = 1.0


@dataclass(slots=True)
class IdempotencyRecord:
    """A stored answer: the request fingerprint, the status and body sent, when it was stored."""

    fingerprint: str
    status: int
    body: bytes
    stored_at: float


def load_invoices(config: SandboxConfig, date: int) -> Invoices:
    """The invoices the config seeds (seed file, strict-invoices ids, generated), or none.

    Raises:
        SeedError: a seed file or strict-invoices file the sandbox cannot use.
    """
    invoices = Invoices(date)
    if config.invoices_file is not None:
        invoices.seed(read_seed(config.invoices_file, date))
    if config.strict_invoices_file is not None:
        invoices.seed(read_ids_file(config.strict_invoices_file, date), replace=False)
    if config.generate_invoices:
        invoices.seed(generated(config.generate_invoices, date), replace=False)
    return invoices


class Store:
    """Orders and bookkeeping of one sandbox.

    Args:
        config: The sandbox configuration (state file, log size, strict invoices).
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.invoices = load_invoices(config, int(time.time()))
        self.journal = persist.Journal(config.state_file) if config.state_file else None
        self._clear()
        if config.state_file:
            self._load(config.state_file)

    def _clear(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}
        self.doc_numbers: dict[str, str] = {}
        self.seq: dict[str, int] = {}
        self.referenced: dict[str, None] = {}
        self.by_invoice: dict[str, set[str]] = {}
        """Order ids per invoice id (deleted orders too): the ``invoice_id[in]`` index."""
        """Invoice ids stored orders name, in the order first named (unseeded invoice list)."""
        self.next_seq = 1
        self.auto_id = 0
        self.idempotency: dict[str, IdempotencyRecord] = {}
        self.counts: Counter[str] = Counter({name: 0 for name in COUNT_NAMES})
        self.events: deque[dict[str, Any]] = deque(maxlen=self.config.request_log_size)
        self.requests: deque[dict[str, Any]] = deque(maxlen=self.config.request_log_size)
        self.version = 0
        self._sorted: dict[str, tuple[int, list[tuple[int, int, str]]]] = {}
        self._counts_written = 0.0

    # -- persistence -------------------------------------------------------------------------
    def _load(self, path: str) -> None:
        records = persist.load(path)
        for record in records:
            if "v" in record:
                for order in record.get("orders", []):
                    self._put(order)
                self.auto_id = int(record.get("auto_id", 0))
                for key, rec in record.get("idempotency", {}).items():
                    self.idempotency[key] = _idem_from_json(rec)
                self.counts.update(record.get("counts", {}))
                if record.get("invoices_seeded"):
                    self.invoices.restore(record.get("invoices", []))
            elif record.get("op") == "order":
                if record.get("fresh"):
                    self.seq.pop(record["order"]["id"], None)
                self._put(record["order"])
                self.auto_id = max(self.auto_id, int(record.get("auto_id", 0)))
            elif record.get("op") == "idem":
                self.idempotency[record["key"]] = _idem_from_json(record["rec"])
            if "counts" in record and "v" not in record:
                self.counts = Counter(record["counts"])
        self.compact()

    def _snapshot(self) -> dict[str, Any]:
        ordered = sorted(self.orders, key=self.seq.__getitem__)
        now = time.time()
        window = self.config.idempotency_window_s
        return {
            "orders": [self.orders[oid] for oid in ordered],
            "auto_id": self.auto_id,
            "idempotency": {
                key: _idem_to_json(rec)
                for key, rec in self.idempotency.items()
                if now - rec.stored_at <= window
            },
            "counts": dict(self.counts),
            **self.invoices.snapshot(),
        }

    def compact(self) -> None:
        """Rewrite the state file as one snapshot (no-op without a state file)."""
        if self.journal is not None:
            self.journal.compact(self._snapshot())

    def close(self) -> None:
        """Compact and close the state file."""
        if self.journal is not None:
            self.compact()
            self.journal.close()

    def _journal(self, record: dict[str, Any]) -> None:
        if self.journal is None:
            return
        now = time.monotonic()
        if now - self._counts_written >= _COUNTS_EVERY_S:
            record["counts"] = dict(self.counts)
            self._counts_written = now
        self.journal.append(record)
        if self.journal.lines > max(10_000, 2 * len(self.orders)):
            self.compact()

    # -- orders ----------------------------------------------------------------------------
    def _put(self, order: dict[str, Any]) -> None:
        oid = order["id"]
        old = self.orders.get(oid)
        if old is not None and self.doc_numbers.get(old.get("document_number", "")) == oid:
            del self.doc_numbers[old["document_number"]]
        if old is not None and old.get("invoice_id") != order.get("invoice_id"):
            self.by_invoice.get(str(old.get("invoice_id")), set()).discard(oid)
        if order.get("invoice_id") is not None:
            self.by_invoice.setdefault(str(order["invoice_id"]), set()).add(oid)
        if order.get("document_number") and not order.get("deleted"):
            self.doc_numbers[order["document_number"]] = oid
        if oid not in self.seq:
            self.seq[oid] = self.next_seq
            self.next_seq += 1
            if order.get("invoice_id"):
                self.referenced.setdefault(order["invoice_id"], None)
        self.orders[oid] = order
        self.version += 1

    def save(self, order: dict[str, Any], *, fresh: bool = False) -> None:
        """Store (insert or replace) an order and journal it before the answer goes out.

        Args:
            order: The full order resource.
            fresh: A new order replacing a deleted one with the same id: it sorts as new.
        """
        if fresh:
            self.seq.pop(order["id"], None)
        self._put(order)
        record = {"op": "order", "order": order, "auto_id": self.auto_id}
        if fresh:
            record["fresh"] = True
        self._journal(record)

    def live(self, order_id: str) -> dict[str, Any] | None:
        """The order with this id unless it is missing or deleted."""
        order = self.orders.get(order_id)
        return None if order is None or order.get("deleted") else order

    def next_auto_id(self) -> str:
        """The next free auto-assigned order id ("assigned incrementally")."""
        while True:
            self.auto_id += 1
            candidate = str(self.auto_id)
            if candidate not in self.orders:
                return candidate

    def document_number_taken(self, number: str) -> bool:
        """Does a live order already carry this document number?"""
        return number in self.doc_numbers

    def page(
        self,
        filters: list[Filter],
        *,
        sort_field: str,
        descending: bool,
        include_deleted: bool,
        cursor: tuple[int, int] | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], tuple[int, int] | None]:
        """One page of orders after ``cursor`` (sort value, sequence); the next cursor or None.

        An ``id`` or ``invoice_id`` filter (``is``/``in``) narrows the candidates through the
        indexes first (pre-flight's look-ups), instead of testing every order; the order of the
        page and the cursors are those of the full scan."""
        keys = self._indexed_keys(filters, sort_field)
        if keys is None:
            keys = self._sorted_keys(sort_field)
        if descending:
            start = len(keys) if cursor is None else bisect.bisect_left(keys, (*cursor, ""))
            indexes: range = range(start - 1, -1, -1)
        else:
            start = 0 if cursor is None else bisect.bisect_right(keys, (*cursor, "\uffff"))
            indexes = range(start, len(keys))
        found: list[dict[str, Any]] = []
        last: tuple[int, int] | None = None
        for i in indexes:
            value, seq, oid = keys[i]
            order = self.orders[oid]
            if order.get("deleted") and not include_deleted:
                continue
            if all(f.matches(order) for f in filters):
                if len(found) == limit:
                    return found, last
                found.append(order)
                last = (value, seq)
        return found, None

    def _indexed_keys(self, filters: list[Filter], field: str) -> list[tuple[int, int, str]] | None:
        """The sort keys of the orders an ``id``/``invoice_id`` ``is``/``in`` filter can
        match (a superset: every filter is still applied), or None without such a filter."""
        for condition in filters:
            if condition.op not in ("is", "in") or condition.field not in ("id", "invoice_id"):
                continue
            values = [condition.value] if condition.op == "is" else condition.value
            if condition.field == "id":
                found: set[str] = {v for v in values if isinstance(v, str) and v in self.orders}
            else:
                found = set()
                by_invoice = self.by_invoice
                for value in values:
                    ids = by_invoice.get(str(value))
                    if ids:
                        found |= ids
            orders, seq = self.orders, self.seq
            return sorted((int(orders[oid].get(field) or 0), seq[oid], oid) for oid in found)
        return None

    def _sorted_keys(self, field: str) -> list[tuple[int, int, str]]:
        cached = self._sorted.get(field)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        keys = sorted(
            (int(o.get(field) or 0), self.seq[oid], oid) for oid, o in self.orders.items()
        )
        self._sorted[field] = (self.version, keys)
        return keys

    # -- idempotency ----------------------------------------------------------------------
    def idempotent(self, key: str) -> IdempotencyRecord | None:
        """The stored answer for ``key`` if it is still inside the idempotency window."""
        record = self.idempotency.get(key)
        if record is None:
            return None
        if time.time() - record.stored_at > self.config.idempotency_window_s:
            del self.idempotency[key]
            return None
        return record

    def remember(self, key: str, fingerprint: str, status: int, body: bytes) -> None:
        """Store a 2xx answer under ``key`` (journaled with the write it belongs to)."""
        record = IdempotencyRecord(fingerprint, status, body, time.time())
        self.idempotency[key] = record
        if len(self.idempotency) % 10_000 == 0:
            self._expire_keys()
        if self.journal is not None:
            self._journal({"op": "idem", "key": key, "rec": _idem_to_json(record)})

    def _expire_keys(self) -> None:
        cutoff = time.time() - self.config.idempotency_window_s
        for key in [k for k, r in self.idempotency.items() if r.stored_at < cutoff]:
            del self.idempotency[key]

    # -- bookkeeping ----------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything (orders, keys, counters, logs) and rewrite the state file."""
        self._clear()
        self.compact()

    def state(
        self, *, orders: bool = True, events: bool = True, requests: bool = True
    ) -> dict[str, Any]:
        """The JSON document of ``GET /__sandbox/state``."""
        ordered = sorted(self.orders, key=self.seq.__getitem__) if orders else []
        return {
            "orders": [self.orders[oid] for oid in ordered],
            "counts": dict(self.counts),
            "events": list(self.events) if events else [],
            "requests": list(self.requests) if requests else [],
        }


def _idem_to_json(record: IdempotencyRecord) -> dict[str, Any]:
    return {
        "fp": record.fingerprint,
        "status": record.status,
        "body": record.body.decode("utf-8"),
        "t": record.stored_at,
    }


def _idem_from_json(data: dict[str, Any]) -> IdempotencyRecord:
    return IdempotencyRecord(
        data["fp"], int(data["status"]), data["body"].encode(), float(data["t"])
    )
