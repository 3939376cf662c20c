"""Order exports (FACTS §7): jobs that go ``in_process`` → ``completed`` after a delay, capped at
``max_exports_in_process``, and the zip of CSV they point to. Jobs live in memory only.
"""

from __future__ import annotations

import csv
import io
import secrets
import time
import zipfile
from dataclasses import dataclass, field
from typing import Any

from sandbox import errors
from sandbox.filters import Filter, parse_filter
from sandbox.forms import split_key
from sandbox.validation import ORDER_STATUSES

EXPORT_VALID_S = 4 * 3600
"""A download URL is valid for 4 hours (``valid_till``)."""

ORDER_COLUMNS = (
    "id",
    "document_number",
    "invoice_id",
    "customer_id",
    "subscription_id",
    "business_entity_id",
    "status",
    "order_type",
    "price_type",
    "payment_status",
    "cancellation_reason",
    "order_date",
    "shipping_date",
    "shipping_cut_off_date",
    "shipped_at",
    "delivered_at",
    "cancelled_at",
    "status_update_at",
    "created_at",
    "updated_at",
    "tracking_id",
    "tracking_url",
    "shipment_carrier",
    "reference_id",
    "fulfillment_status",
    "batch_id",
    "note",
    "currency_code",
    "refundable_credits_issued",
    "total",
    "resource_version",
    "deleted",
)
ADDRESS_COLUMNS = (
    "first_name",
    "last_name",
    "email",
    "company",
    "phone",
    "line1",
    "line2",
    "line3",
    "city",
    "state_code",
    "state",
    "zip",
    "country",
    "validation_status",
)
CSV_COLUMNS = (
    *ORDER_COLUMNS,
    *(f"shipping_address_{c}" for c in ADDRESS_COLUMNS),
    *(f"billing_address_{c}" for c in ADDRESS_COLUMNS),
)
"""Header row of ``orders.csv`` inside the export zip (snake_case, like the Data Catalog)."""

_TEXT = ("id", "subscription_id", "customer_id", "original_order_id")
_ENUM = ("status", "price_type", "resent_status")
_TIMES = ("order_date", "shipping_date", "shipped_at", "delivered_at", "cancelled_at", "updated_at")
_NUMBERS = ("amount_paid", "refundable_credits", "refundable_credits_issued")
EXPORT_FIELDS: dict[str, str] = {
    **dict.fromkeys(_TEXT, "text"),
    **dict.fromkeys(_ENUM, "enum"),
    **dict.fromkeys(_TIMES, "timestamp"),
    **dict.fromkeys(_NUMBERS, "number"),
    "is_resent": "boolean",
}
"""``order[<field>][<op>]`` filters the orders export accepts, by kind."""
_ID_OPS = frozenset({"is", "is_not", "starts_with", "in", "not_in"})
EXPORT_TEXT_OPS: dict[str, frozenset[str]] = {
    "id": _ID_OPS,
    "customer_id": _ID_OPS,
    "subscription_id": _ID_OPS | {"is_present"},
    "original_order_id": frozenset({"is", "is_not", "starts_with"}),
}
"""Operators per text field, as the spec lists them (only ``subscription_id`` has is_present)."""
EXPORT_ENUMS: dict[str, tuple[str, ...]] = {
    "status": ORDER_STATUSES,
    "price_type": ("tax_exclusive", "tax_inclusive"),
    "resent_status": ("fully_resent", "partially_resent"),
}
"""Values the enum filters of the orders export accept."""


def parse_export_filters(form: dict[str, str]) -> list[Filter]:
    """``total[op]`` and ``order[field][op]`` parameters → filters; anything else is refused."""
    found: list[Filter] = []
    for key, value in form.items():
        parsed = split_key(key)
        if parsed is None:
            raise errors.unknown_param(key)
        name, parts = parsed
        if name == "total" and len(parts) == 1:
            found.append(parse_filter(key, "total", "number", parts[0], value))
        elif name == "order" and len(parts) == 2 and parts[0] in EXPORT_FIELDS:
            if parts[1] not in EXPORT_TEXT_OPS.get(parts[0], {parts[1]}):
                raise errors.unknown_param(key)
            kind = EXPORT_FIELDS[parts[0]]
            allowed = EXPORT_ENUMS.get(parts[0])
            found.append(parse_filter(key, parts[0], kind, parts[1], value, allowed))
        else:
            raise errors.unknown_param(key)
    return found


def orders_zip(orders: list[dict[str, Any]]) -> bytes:
    """A zip holding ``orders.csv`` (one header row, one row per order)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for order in orders:
        row: list[Any] = [_cell(order.get(c)) for c in ORDER_COLUMNS]
        for kind in ("shipping_address", "billing_address"):
            address = order.get(kind) or {}
            row.extend(_cell(address.get(c)) for c in ADDRESS_COLUMNS)
        writer.writerow(row)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("orders.csv", text.getvalue())
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(slots=True)
class ExportJob:
    """One export: its resource fields, when it completes, and its zip once completed."""

    id: str
    created_at: int
    ready_at: float
    filters: list[Filter]
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    zip_bytes: bytes | None = None
    completed_at: int | None = None

    def in_process(self, now: float) -> bool:
        """Still running at ``now`` (wall clock)?"""
        return now < self.ready_at

    def resource(self, root_url: str) -> dict[str, Any]:
        """The Export resource as Chargebee answers it (``download`` only when completed)."""
        done = self.completed_at is not None
        body: dict[str, Any] = {
            "id": self.id,
            "operation_type": "order_export",
            "mime_type": "zip",
            "status": "completed" if done else "in_process",
            "created_at": self.created_at,
            "object": "export",
        }
        if done and self.completed_at is not None:
            body["download"] = {
                "download_url": f"{root_url}/__sandbox/downloads/{self.token}.zip",
                "valid_till": self.completed_at + EXPORT_VALID_S,
                "mime_type": "application/zip",
                "object": "download",
            }
        return body


class Exports:
    """All export jobs of one sandbox."""

    def __init__(self) -> None:
        self.jobs: dict[str, ExportJob] = {}
        self._next = 0

    def running(self) -> int:
        """How many jobs are ``in_process`` now."""
        now = time.time()
        return sum(
            1 for job in self.jobs.values() if job.completed_at is None and job.in_process(now)
        )

    def next_completion(self) -> float:
        """Wall-clock time the earliest running job completes (now if none runs)."""
        now = time.time()
        pending = [
            j.ready_at for j in self.jobs.values() if j.completed_at is None and j.in_process(now)
        ]
        return min(pending, default=now)

    def start(self, filters: list[Filter], delay_s: float) -> ExportJob:
        """Create a job that completes ``delay_s`` seconds from now."""
        self._next += 1
        now = time.time()
        job = ExportJob(
            f"Export_{self._next:06d}_{secrets.token_hex(4)}", int(now), now + delay_s, filters
        )
        self.jobs[job.id] = job
        return job

    def refresh(self, job: ExportJob, orders: list[dict[str, Any]]) -> None:
        """Complete ``job`` (build its zip from ``orders``) once its delay has passed."""
        if job.completed_at is None and not job.in_process(time.time()):
            matching = [o for o in orders if all(f.matches(o) for f in job.filters)]
            job.zip_bytes = orders_zip(matching)
            job.completed_at = int(time.time())

    def by_token(self, token: str) -> ExportJob | None:
        """The completed job whose download token this is."""
        for job in self.jobs.values():
            if job.token == token and job.zip_bytes is not None:
                return job
        return None

    def clear(self) -> None:
        """Forget every job."""
        self.jobs.clear()
