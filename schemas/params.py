"""What Chargebee accepts on import_order and order update (FACTS §5.1, §6): kinds, limits, enums.

Plain data, no pandas; imports nothing from ``pipeline``. Parameter names use dotted form
(``shipping_address.city``); ``form_name`` turns them into the API's ``shipping_address[city]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pycountry

ParamKind = Literal[
    "string",  # free text with a maximum length
    "enum",  # one of a closed set of values
    "timestamp",  # Unix seconds (int)
    "integer",  # int64 minor units, >= 0
]

IMPORT_STATUSES: tuple[str, ...] = (
    "cancelled",
    "queued",
    "awaiting_shipment",
    "on_hold",
    "delivered",
    "shipped",
    "partially_delivered",
    "returned",
)
"""The 8 statuses import_order accepts (no new/processing/complete/voided)."""

ORDER_STATUSES: tuple[str, ...] = ("new", "processing", "complete", "voided", *IMPORT_STATUSES)
"""The 12 statuses order update accepts."""

CANCELLATION_REASONS: tuple[str, ...] = (
    "shipping_cut_off_passed",
    "product_unsatisfactory",
    "third_party_cancellation",
    "product_not_required",
    "delivery_date_missed",
    "alternative_found",
    "invoice_written_off",
    "invoice_voided",
    "fraudulent_transaction",
    "payment_declined",
    "subscription_cancelled",
    "product_not_available",
    "others",
    "order_resent",
)

VALIDATION_STATUSES: tuple[str, ...] = ("not_validated", "valid", "partially_valid", "invalid")

STATE_CODE_COUNTRIES: frozenset[str] = frozenset({"US", "CA", "IN", "AE"})
"""Countries for which Chargebee takes an ISO 3166-2 ``state_code``."""

COUNTRY_CODES: frozenset[str] = frozenset(
    {country.alpha_2 for country in pycountry.countries} | {"XI"}
)
"""ISO 3166-1 alpha-2 codes from pycountry, plus XI (Northern Ireland, FACTS §5.1)."""

REQUIRED_IMPORT_PARAMS: tuple[str, ...] = (
    "created_at",
    "invoice_id",
    "order_date",
    "shipping_date",
    "status",
)

ADDRESS_PREFIXES: tuple[str, ...] = ("shipping_address", "billing_address")


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One API parameter: its kind and limits."""

    name: str
    """Dotted name, e.g. ``shipping_address.city``."""
    kind: ParamKind
    max_length: int | None = None
    choices: tuple[str, ...] | None = None
    required: bool = False


ADDRESS_FIELDS: dict[str, ParamSpec] = {
    spec.name: spec
    for spec in (
        ParamSpec("first_name", "string", 150),
        ParamSpec("last_name", "string", 150),
        ParamSpec("email", "string", 70),
        ParamSpec("company", "string", 250),
        ParamSpec("phone", "string", 50),
        ParamSpec("line1", "string", 150),
        ParamSpec("line2", "string", 150),
        ParamSpec("line3", "string", 150),
        ParamSpec("city", "string", 50),
        ParamSpec("state_code", "string", 50),
        ParamSpec("state", "string", 50),
        ParamSpec("zip", "string", 20),
        ParamSpec("country", "string", 50),
        ParamSpec("validation_status", "enum", choices=VALIDATION_STATUSES),
    )
}


def _address(prefix: str) -> list[ParamSpec]:
    return [
        ParamSpec(f"{prefix}.{s.name}", s.kind, s.max_length, s.choices)
        for s in ADDRESS_FIELDS.values()
    ]


def _specs(*specs: ParamSpec) -> dict[str, ParamSpec]:
    return {spec.name: spec for spec in specs}


IMPORT_ORDER_PARAMS: dict[str, ParamSpec] = _specs(
    ParamSpec("id", "string", 40),
    ParamSpec("document_number", "string", 50),
    ParamSpec("invoice_id", "string", 50, required=True),
    ParamSpec("status", "enum", choices=IMPORT_STATUSES, required=True),
    ParamSpec("subscription_id", "string", 50),
    ParamSpec("customer_id", "string", 50),
    ParamSpec("created_at", "timestamp", required=True),
    ParamSpec("order_date", "timestamp", required=True),
    ParamSpec("shipping_date", "timestamp", required=True),
    ParamSpec("reference_id", "string", 50),
    ParamSpec("fulfillment_status", "string", 50),
    ParamSpec("note", "string", 600),
    ParamSpec("tracking_id", "string", 50),
    ParamSpec("tracking_url", "string", 255),
    ParamSpec("batch_id", "string", 50),
    ParamSpec("shipment_carrier", "string", 50),
    ParamSpec("shipping_cut_off_date", "timestamp"),
    ParamSpec("delivered_at", "timestamp"),
    ParamSpec("shipped_at", "timestamp"),
    ParamSpec("cancelled_at", "timestamp"),
    ParamSpec("cancellation_reason", "enum", choices=CANCELLATION_REASONS),
    ParamSpec("refundable_credits_issued", "integer"),
    *_address("shipping_address"),
    *_address("billing_address"),
)
"""Every import_order parameter (FACTS §5.1)."""

UPDATE_ORDER_PARAMS: dict[str, ParamSpec] = _specs(
    ParamSpec("id", "string", 40, required=True),
    ParamSpec("reference_id", "string", 50),
    ParamSpec("batch_id", "string", 50),
    ParamSpec("note", "string", 600),
    ParamSpec("shipping_date", "timestamp"),
    ParamSpec("order_date", "timestamp"),
    ParamSpec("cancelled_at", "timestamp"),
    ParamSpec("shipped_at", "timestamp"),
    ParamSpec("delivered_at", "timestamp"),
    ParamSpec("cancellation_reason", "enum", choices=CANCELLATION_REASONS),
    ParamSpec("tracking_url", "string", 255),
    ParamSpec("tracking_id", "string", 50),
    ParamSpec("shipment_carrier", "string", 50),
    ParamSpec("fulfillment_status", "string", 50),
    ParamSpec("status", "enum", choices=ORDER_STATUSES),
    *_address("shipping_address"),
)
"""Order update parameters (FACTS §6): no required set, no billing_address (``id`` is the path)."""

TIMESTAMP_PARAMS: frozenset[str] = frozenset(
    name for name, spec in IMPORT_ORDER_PARAMS.items() if spec.kind == "timestamp"
)
INTEGER_PARAMS: frozenset[str] = frozenset(
    name for name, spec in IMPORT_ORDER_PARAMS.items() if spec.kind == "integer"
)


def form_name(dotted: str) -> str:
    """``shipping_address.city`` → ``shipping_address[city]`` (the API's form naming)."""
    head, sep, tail = dotted.partition(".")
    return f"{head}[{tail}]" if sep else dotted


def dotted_name(name: str) -> str:
    """``shipping_address[city]`` or ``shipping_address.city`` → ``shipping_address.city``."""
    name = name.strip()
    if name.endswith("]") and "[" in name:
        head, _, tail = name[:-1].partition("[")
        return f"{head}.{tail}"
    return name
