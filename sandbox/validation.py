"""Parameter rules of import_order and update-order (FACTS §5.1, §6): required, enums, lengths.

Turns a flat form dict into typed values or raises a Chargebee-shaped ``SandboxError``.
"""

from __future__ import annotations

import re
from typing import Any

import pycountry

from sandbox import errors
from sandbox.forms import split_key

IMPORT_STATUSES = (
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

ORDER_STATUSES = ("new", "processing", "complete", "voided", *IMPORT_STATUSES)
"""All 12 order statuses (update accepts these)."""

CANCELLATION_REASONS = (
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
"""The 14 cancellation reasons."""

VALIDATION_STATUSES = ("not_validated", "valid", "partially_valid", "invalid")
"""Address ``validation_status`` values."""

LINE_ITEM_STATUSES = (
    "queued",
    "awaiting_shipment",
    "on_hold",
    "delivered",
    "shipped",
    "partially_delivered",
    "returned",
    "cancelled",
)
"""Order line item statuses (update's ``order_line_items[status][i]``)."""

ADDRESS_FIELDS: dict[str, int | tuple[str, ...]] = {
    "first_name": 150,
    "last_name": 150,
    "email": 70,
    "company": 250,
    "phone": 50,
    "line1": 150,
    "line2": 150,
    "line3": 150,
    "city": 50,
    "state_code": 50,
    "state": 50,
    "zip": 20,
    "country": 50,
    "validation_status": VALIDATION_STATUSES,
}
"""Address sub-object fields: max length, or the allowed values."""

_TEXT_COMMON = {
    "reference_id": 50,
    "fulfillment_status": 50,
    "note": 600,
    "tracking_id": 50,
    "tracking_url": 255,
    "batch_id": 50,
    "shipment_carrier": 50,
}
IMPORT_TEXT = {
    "id": 40,
    "document_number": 50,
    "invoice_id": 50,
    "subscription_id": 50,
    "customer_id": 50,
    **_TEXT_COMMON,
}
IMPORT_TIMES = (
    "created_at",
    "order_date",
    "shipping_date",
    "shipping_cut_off_date",
    "delivered_at",
    "shipped_at",
    "cancelled_at",
)
IMPORT_REQUIRED = ("invoice_id", "status", "created_at", "order_date", "shipping_date")
_IMPORT_TIME_NAMES = frozenset(IMPORT_TIMES)
_IMPORT_ALLOWED = frozenset(
    {*IMPORT_TEXT, *IMPORT_TIMES, "status", "cancellation_reason", "refundable_credits_issued"}
)
UPDATE_TIMES = ("shipping_date", "order_date", "cancelled_at", "shipped_at", "delivered_at")
LINE_ITEM_FIELDS: dict[str, int | tuple[str, ...]] = {
    "id": 40,
    "status": LINE_ITEM_STATUSES,
    "sku": 250,
}

COUNTRIES = frozenset(c.alpha_2 for c in pycountry.countries)
"""ISO 3166-1 alpha-2 codes (``XI``, Northern Ireland, only with ``eu_vat``)."""

_STATE_CODE_COUNTRIES = ("US", "CA", "IN", "AE")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_UNIX = re.compile(r"^\d{1,10}$")
_INT = re.compile(r"^\d{1,18}$")


def _text(param: str, value: str, limit: int | tuple[str, ...]) -> str:
    if isinstance(limit, tuple):
        if value not in limit:
            raise errors.wrong_value(param, f"invalid value {value!r}; allowed: {', '.join(limit)}")
    elif len(value) > limit:
        raise errors.wrong_value(param, f"cannot be more than {limit} characters")
    return value


def _unix(param: str, value: str) -> int:
    if value.isdecimal() and len(value) <= 10:
        return int(value)  # what the pattern below accepts, without the regex (the usual case)
    if not _UNIX.match(value):
        raise errors.wrong_value(param, "must be a Unix timestamp in seconds")
    return int(value)


def _address(prefix: str, fields: dict[str, str], eu_vat: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in fields.items():
        limit = ADDRESS_FIELDS.get(name)
        if limit is None:
            raise errors.unknown_param(f"{prefix}[{name}]")
        if value == "":
            continue
        if isinstance(limit, int) and len(value) <= limit:
            out[name] = value  # what _text gives, without naming the param (the usual case)
        else:
            out[name] = _text(f"{prefix}[{name}]", value, limit)
    if "email" in out and not _EMAIL.match(out["email"]):
        raise errors.wrong_value(f"{prefix}[email]", "invalid email address")
    country = out.get("country")
    if country == "XI" and not eu_vat:
        raise errors.wrong_value(
            f"{prefix}[country]",
            "invalid country code 'XI'; XI (Northern Ireland) needs EU VAT or Brexit "
            "configuration on the site",
        )
    if country is not None and country not in COUNTRIES and country != "XI":
        raise errors.wrong_value(f"{prefix}[country]", f"invalid country code {country!r}")
    if country in _STATE_CODE_COUNTRIES and "state_code" in out and "state" not in out:
        subdivision = pycountry.subdivisions.get(code=f"{country}-{out['state_code']}")  # type: ignore[no-untyped-call]
        if subdivision is not None:
            out["state"] = str(subdivision.name)
    if out:
        out.setdefault("validation_status", "not_validated")
    return out


def _line_items(columns: dict[str, dict[int, str]]) -> list[dict[str, str]]:
    indexes = sorted({i for column in columns.values() for i in column})
    items: list[dict[str, str]] = []
    for i in indexes:
        item: dict[str, str] = {}
        for name, column in columns.items():
            value = column.get(i, "")
            if value != "":
                item[name] = _text(f"order_line_items[{name}][{i}]", value, LINE_ITEM_FIELDS[name])
        if "id" not in item:
            raise errors.param_required(f"order_line_items[id][{i}]")
        items.append(item)
    return items


def _split(
    form: dict[str, str], objects: tuple[str, ...], arrays: tuple[str, ...]
) -> tuple[dict[str, str], dict[str, dict[str, str]], dict[str, dict[str, dict[int, str]]]]:
    """Separate top-level params, deepObject sub-objects and column-major arrays."""
    flat: dict[str, str] = {}
    subs: dict[str, dict[str, str]] = {}
    cols: dict[str, dict[str, dict[int, str]]] = {}
    for key, value in form.items():
        parsed = split_key(key)
        if parsed is None:
            raise errors.unknown_param(key)
        name, parts = parsed
        if not parts:
            flat[name] = value
        elif name in objects and len(parts) == 1:
            subs.setdefault(name, {})[parts[0]] = value
        elif name in arrays and len(parts) == 2 and parts[1].isdigit():
            if parts[0] not in LINE_ITEM_FIELDS:
                raise errors.unknown_param(key)
            cols.setdefault(name, {}).setdefault(parts[0], {})[int(parts[1])] = value
        else:
            raise errors.unknown_param(key)
    return flat, subs, cols


def _status_rules(values: dict[str, Any]) -> None:
    """Undocumented, switchable rules (``SandboxConfig.status_rules``)."""
    status = values.get("status")
    needs = {"delivered": "delivered_at", "shipped": "shipped_at", "cancelled": "cancelled_at"}
    if status in needs and needs[status] not in values:
        raise errors.param_required(needs[status])
    if status == "cancelled" and "cancellation_reason" not in values:
        raise errors.param_required("cancellation_reason")
    if "cancellation_reason" in values and status is not None and status != "cancelled":
        raise errors.wrong_value("cancellation_reason", "only allowed for cancelled orders")
    order_date, shipping_date = values.get("order_date"), values.get("shipping_date")
    if order_date is not None and shipping_date is not None and shipping_date < order_date:
        raise errors.wrong_value("shipping_date", "cannot be before order_date")


def validate_import(
    form: dict[str, str], *, status_rules: bool = False, eu_vat: bool = False
) -> dict[str, Any]:
    """Check an import_order body; return typed values (addresses as sub-dicts).

    Raises:
        SandboxError: the first rule broken, as Chargebee would answer it.
    """
    flat, subs, _ = _split(form, ("shipping_address", "billing_address"), ())
    for name in flat:
        if name not in _IMPORT_ALLOWED:
            raise errors.unknown_param(name)
    for name in IMPORT_REQUIRED:
        if flat.get(name, "") == "":
            raise errors.param_required(name)
    values: dict[str, Any] = {}
    for name, value in flat.items():
        if value == "":
            continue  # blank means null (x-cb-parameter-blank-option: as_null)
        limit = IMPORT_TEXT.get(name)
        if limit is not None:
            if len(value) > limit:
                raise errors.wrong_value(name, f"cannot be more than {limit} characters")
            values[name] = value
        elif name in _IMPORT_TIME_NAMES:
            values[name] = _unix(name, value)
        elif name == "status":
            values[name] = _text(name, value, IMPORT_STATUSES)
        elif name == "cancellation_reason":
            values[name] = _text(name, value, CANCELLATION_REASONS)
        else:  # refundable_credits_issued
            if not _INT.match(value):
                raise errors.wrong_value(name, "must be an integer ≥ 0 (minor units)")
            values[name] = int(value)
    for prefix, fields in subs.items():
        address = _address(prefix, fields, eu_vat)
        if address:
            values[prefix] = address
    if status_rules:
        _status_rules(values)
    return values


def validate_update(form: dict[str, str], *, eu_vat: bool = False) -> dict[str, Any]:
    """Check an update-order body (all optional; no billing_address; column-major line items).

    Raises:
        SandboxError: the first rule broken.
    """
    flat, subs, cols = _split(form, ("shipping_address",), ("order_line_items",))
    values: dict[str, Any] = {}
    for name, value in flat.items():
        if name in _TEXT_COMMON:
            if value != "":
                values[name] = _text(name, value, _TEXT_COMMON[name])
        elif name in UPDATE_TIMES:
            if value != "":
                values[name] = _unix(name, value)
        elif name == "status":
            if value != "":
                values[name] = _text(name, value, ORDER_STATUSES)
        elif name == "cancellation_reason":
            if value != "":
                values[name] = _text(name, value, CANCELLATION_REASONS)
        else:
            raise errors.unknown_param(name)
    if "shipping_address" in subs:
        address = _address("shipping_address", subs["shipping_address"], eu_vat)
        if address:
            values["shipping_address"] = address
    if "order_line_items" in cols:
        values["order_line_items"] = _line_items(cols["order_line_items"])
    return values
