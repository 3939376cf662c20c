"""Deciding what an order Chargebee already holds means for a row: same order, or a conflict.

Used when ``import_order`` answers ``duplicate_entry`` on the id, and when a row left in doubt
by a crash is found with ``GET /orders/{id}``. Pure functions over the row and the order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.models import Outcome, Resolution, WorkItem
from pipeline.params import flatten, ours_theirs, same_value

# Fields that say *which* order this is. A difference means another order holds the id.
IDENTITY_FIELDS = ("invoice_id", "document_number", "customer_id", "subscription_id")


def identity_mismatch(params: Mapping[str, Any], order: Mapping[str, Any]) -> list[str]:
    """Identity fields where the order Chargebee holds differs from the row's params."""
    return [
        name
        for name in IDENTITY_FIELDS
        if params.get(name) not in (None, "")
        and not same_value(name, params[name], order.get(name))
    ]


def content_mismatch(params: Mapping[str, Any], order: Mapping[str, Any]) -> list[str]:
    """Other fields (form naming) whose value Chargebee holds differs from the row's params.

    Only fields Chargebee echoes back are compared; an absent field is not a difference.
    """
    held = flatten(order)
    found: list[str] = []
    for name, value in flatten(params).items():
        if name == "id" or name in IDENTITY_FIELDS:
            continue
        echoed = held.get(name)
        if (
            echoed is not None
            and not isinstance(echoed, list | dict)
            and not same_value(name, value, echoed)
        ):
            outer, _, inner = name.partition(".")
            found.append(f"{outer}[{inner}]" if inner else name)
    return found


def verified_outcome(
    batch: str, run_id: int, item: WorkItem, order: Mapping[str, Any], resolution: Resolution
) -> Outcome:
    """``succeeded`` when Chargebee holds this row's order as sent; else ``conflict``.

    An identity difference means another order holds the id (``id_conflict``). A content
    difference means an earlier version of the row was imported and the correction was not
    (``content_differs``): Chargebee keeps the old values until ``order-import update`` fixes them.
    """
    identity = identity_mismatch(item.params, order)
    content = [] if identity else content_mismatch(item.params, order)
    if not identity and not content:
        return Outcome(
            batch,
            item.row_key,
            run_id,
            "succeeded",
            resolution=resolution,
            order_id=item.order_id,
            http_status=200,
        )
    fields = identity or content
    detail = ", ".join(
        ours_theirs(name, _value(item.params, name), _value(order, name)) for name in fields[:8]
    )
    if identity:
        message = f"Chargebee holds a different order under id {item.order_id} ({detail})"
    else:
        message = (
            f"Chargebee already holds order {item.order_id} with other values ({detail}); "
            "correct it with `order-import update`"
        )
    return Outcome(
        batch,
        item.row_key,
        run_id,
        "conflict",
        order_id=item.order_id,
        api_error_code="duplicate_entry",
        error_code="id_conflict" if identity else "content_differs",
        param=fields[0],
        message=message,
    )


def _value(params: Mapping[str, Any], name: str) -> Any:
    if "[" in name:
        outer, inner = name.rstrip("]").split("[", 1)
        sub = params.get(outer)
        return sub.get(inner) if isinstance(sub, Mapping) else None
    return params.get(name)
