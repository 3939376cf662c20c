"""The Order resource (FACTS §5.3): built from import params, changed by updates, and the
events (webhooks, emails) each change would fire.
"""

from __future__ import annotations

import time
from typing import Any

from sandbox import errors
from sandbox.validation import LINE_ITEM_STATUSES

STATUS_WEBHOOKS = {
    "cancelled": "order_cancelled",
    "delivered": "order_delivered",
    "returned": "order_returned",
}
"""Extra webhook a write fires when it moves an order into this status."""

STATUS_EMAILS = {
    "shipped": "order_shipped",
    "delivered": "order_delivered",
    "cancelled": "order_cancelled",
    "returned": "order_returned",
}
"""Customer email a write would send when an order lands in this status (a sandbox model)."""

Event = tuple[str, str]
"""(channel, event type): channel is ``webhook`` or ``email``."""


def _address(kind: str, fields: dict[str, str]) -> dict[str, Any]:
    return {**fields, "object": kind}


def _now_version(previous: int = 0) -> tuple[int, int]:
    now = time.time()
    return int(now), max(previous + 1, int(now * 1000))


def build_order(
    values: dict[str, Any],
    *,
    order_id: str,
    line_seq: int,
    business_entity_id: str | None,
    invoice: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[Event]]:
    """A new imported order from validated import params; the events it fires.

    The order gets one synthetic shippable line item (``li_<n>``) whose status follows the
    order status. With a seeded ``invoice``, currency, ``total``/``sub_total`` (and the line
    item's ``amount``) are the invoice's, and its customer/subscription fill the order's when the
    import leaves them out; without one, currency USD and zero amounts.
    """
    now, version = _now_version()
    order: dict[str, Any] = {"id": order_id, "object": "order"}
    for name, value in values.items():
        if name in ("id", "shipping_address", "billing_address"):
            continue
        order[name] = value
    status = values["status"]
    order.update(
        {
            "price_type": "tax_exclusive",
            "order_type": "manual",
            "payment_status": "not_paid",
            "currency_code": "USD",
            "status_update_at": values["created_at"],
            "updated_at": now,
            "resource_version": version,
            "deleted": False,
            "is_resent": False,
            "is_gifted": False,
            "refundable_credits_issued": values.get("refundable_credits_issued", 0),
            "refundable_credits": 0,
            "amount_paid": 0,
            "amount_adjusted": 0,
            "sub_total": 0,
            "total": 0,
            "order_line_items": [
                {
                    "id": f"li_{line_seq}",
                    "invoice_id": values["invoice_id"],
                    "invoice_line_item_id": f"ili_{line_seq}",
                    "is_shippable": True,
                    "entity_type": "adhoc",
                    "status": status if status in LINE_ITEM_STATUSES else "queued",
                    "object": "order_line_item",
                }
            ],
        }
    )
    for kind in ("shipping_address", "billing_address"):
        if kind in values:
            order[kind] = _address(kind, values[kind])
    if business_entity_id:
        order["business_entity_id"] = business_entity_id
    if invoice is not None:
        _from_invoice(order, invoice)
    events: list[Event] = [("webhook", "order_created")]
    if status in STATUS_WEBHOOKS:
        events.append(("webhook", STATUS_WEBHOOKS[status]))
    if status in STATUS_EMAILS:
        events.append(("email", STATUS_EMAILS[status]))
    return order, events


def _from_invoice(order: dict[str, Any], invoice: dict[str, Any]) -> None:
    """Currency and totals from the order's invoice; its customer/subscription when unset."""
    total = int(invoice.get("total", 0))
    order["currency_code"] = invoice.get("currency_code", order["currency_code"])
    order["total"] = order["sub_total"] = total
    order["order_line_items"][0]["amount"] = total
    for name in ("customer_id", "subscription_id"):
        if name in invoice and name not in order:
            order[name] = invoice[name]


def apply_update(
    order: dict[str, Any], values: dict[str, Any]
) -> tuple[dict[str, Any], list[Event]]:
    """The order after an update (a new dict); the events it fires.

    Raises:
        SandboxError: 404 for a line item id the order does not have.
    """
    now, version = _now_version(int(order.get("resource_version", 0)))
    new = dict(order)
    for name, value in values.items():
        if name not in ("shipping_address", "order_line_items"):
            new[name] = value
    if "shipping_address" in values:
        merged = {**order.get("shipping_address", {}), **values["shipping_address"]}
        new["shipping_address"] = _address("shipping_address", merged)
    if "order_line_items" in values:
        items = [dict(item) for item in order.get("order_line_items", [])]
        by_id = {item["id"]: item for item in items}
        for i, change in enumerate(values["order_line_items"]):
            target = by_id.get(change["id"])
            if target is None:
                raise errors.not_found(
                    "order line item", change["id"], f"order_line_items[id][{i}]"
                )
            target.update({k: v for k, v in change.items() if k != "id"})
        new["order_line_items"] = items
    events: list[Event] = [("webhook", "order_updated")]
    status = values.get("status")
    if status is not None and status != order.get("status"):
        new["status_update_at"] = now
        if status in STATUS_WEBHOOKS:
            events.append(("webhook", STATUS_WEBHOOKS[status]))
        if status in STATUS_EMAILS:
            events.append(("email", STATUS_EMAILS[status]))
    new["updated_at"] = now
    new["resource_version"] = version
    return new, events


def delete_order(order: dict[str, Any]) -> tuple[dict[str, Any], list[Event]]:
    """The order marked deleted; fires ``order_deleted``."""
    now, version = _now_version(int(order.get("resource_version", 0)))
    return {**order, "deleted": True, "updated_at": now, "resource_version": version}, [
        ("webhook", "order_deleted")
    ]
