"""Param helpers shared by the send path, reconciliation and update: names and typed values.

A leaf: imports nothing from the package. ``shipping_address[city]`` in the API is
``shipping_address.city`` in the ledger, reports and comparisons. Values are compared by the
field's type (``value_kind``): text stays text (``02108`` is not ``2108``), ids compare as
exact strings, timestamps as integer Unix seconds (whatever their notation), amounts as
decimals, flags as booleans.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

ADDRESS_KINDS = ("shipping_address", "billing_address")
"""The nested address objects of an order."""

ValueKind = Literal["text", "id", "timestamp", "amount", "flag"]

TIMESTAMP_FIELDS = frozenset(
    {
        "order_date",
        "shipping_date",
        "shipping_cut_off_date",
        "shipped_at",
        "delivered_at",
        "cancelled_at",
        "created_at",
        "updated_at",
        "status_update_at",
        "paid_on",
        "resent_on",
    }
)
ID_FIELDS = frozenset(
    {
        "id",
        "document_number",
        "invoice_id",
        "customer_id",
        "subscription_id",
        "business_entity_id",
        "original_order_id",
        "item_id",
        "entity_id",
    }
)
AMOUNT_FIELDS = frozenset(
    {
        "refundable_credits_issued",
        "refundable_credits",
        "total",
        "sub_total",
        "amount",
        "amount_paid",
        "amount_adjusted",
        "rounding_adjustement",
        "discount",
        "tax",
        "unit_price",
        "quantity",
        "discount_amount",
        "amount_refundable",
    }
)
FLAG_FIELDS = frozenset({"deleted", "is_resent", "is_gifted"})
_TRUE = frozenset({"true", "1", "yes", "y"})


def flatten(params: Mapping[str, Any]) -> dict[str, Any]:
    """Nested params → dotted names (``shipping_address.city``); lists are left as they are."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, Mapping):
            for sub, inner in value.items():
                out[f"{name}.{sub}"] = inner
        else:
            out[name] = value
    return out


def value_kind(name: str) -> ValueKind:
    """How a field's values compare: by the last part of its (dotted or form) name."""
    leaf = name.rstrip("]").replace("[", ".").split(".")[-1]
    if leaf in TIMESTAMP_FIELDS:
        return "timestamp"
    if leaf in AMOUNT_FIELDS:
        return "amount"
    if leaf in FLAG_FIELDS:
        return "flag"
    if leaf in ID_FIELDS:
        return "id"
    return "text"


def normal_value(name: str, value: Any) -> str | None:
    """The comparable text of ``value`` for field ``name``; None when it is empty.

    ``text``: trimmed, nothing else (leading zeros and case are kept). ``id``: the exact
    string. ``timestamp``: integer Unix seconds from seconds or ISO 8601 (no offset = UTC).
    ``amount``: a normalised decimal (``100``, ``100.0`` and ``1E2`` agree). ``flag``:
    ``true``/``false``. A value that does not parse as its kind is kept as trimmed text.
    """
    if value is None:
        return None
    kind = value_kind(name)
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else str(value)
    if kind == "id":
        return text if text != "" else None
    text = text.strip()
    if not text:
        return None
    if kind == "flag":
        return "true" if text.lower() in _TRUE else "false"
    if kind == "timestamp":
        return _seconds(text)
    if kind == "amount":
        return _decimal(text)
    return text


def same_value(name: str, ours: Any, theirs: Any) -> bool:
    """True when two values of field ``name`` mean the same (see ``normal_value``)."""
    return normal_value(name, ours) == normal_value(name, theirs)


def shown(value: Any) -> str:
    """A value as a person reads it in a message: quoted text, or ``(empty)``; never ``None``."""
    if value is None or value == "":
        return "(empty)"
    return repr(value if isinstance(value, str) else str(value))


def ours_theirs(name: str, ours: Any, theirs: Any) -> str:
    """``status: ours 'delivered', theirs 'shipped'`` for a message."""
    return f"{name}: ours {shown(ours)}, theirs {shown(theirs)}"


def _seconds(text: str) -> str:
    try:
        return str(int(Decimal(text)))
    except (InvalidOperation, ValueError):
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return str(int(when.timestamp()))


def _decimal(text: str) -> str:
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    if not number.is_finite():
        return text
    normal = number.normalize()
    return format(normal, "f") if normal != 0 else "0"


def sent_fields(params: Mapping[str, Any]) -> dict[str, Any]:
    """What a request set, by dotted name: addresses as ``shipping_address.city``, line items
    as ``order_line_items[<id>].status`` (``id`` itself left out)."""
    out: dict[str, Any] = {}
    for name, value in flatten(params).items():
        if name == "id":
            continue
        if name == "order_line_items" and isinstance(value, list):
            for item in value:
                if isinstance(item, Mapping):
                    line = item.get("id")
                    out.update(
                        (f"order_line_items[{line}].{k}", v) for k, v in item.items() if k != "id"
                    )
        else:
            out[name] = value
    return out


def held_value(order: Mapping[str, Any], name: str) -> Any:
    """The value an order holds for a ``sent_fields`` name (None when absent)."""
    if name.startswith("order_line_items["):
        line, _, field = name[len("order_line_items[") :].partition("].")
        for item in order.get("order_line_items") or []:
            if isinstance(item, Mapping) and str(item.get("id")) == line:
                return item.get(field)
        return None
    return flatten(order).get(name)


def held_differences(params: Mapping[str, Any], order: Mapping[str, Any]) -> list[str]:
    """``sent_fields`` of ``params`` whose value ``order`` does not hold (typed comparison)."""
    return [
        name
        for name, value in sent_fields(params).items()
        if not same_value(name, value, held_value(order, name))
    ]
