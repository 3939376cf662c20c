"""The order and export endpoints (FACTS §5-§8), each a plain function over the store.

Handlers are synchronous: they run between two awaits, so every write is atomic on the loop.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from dataclasses import dataclass, field
from typing import Any

from sandbox import errors, orders, validation
from sandbox.config import SandboxConfig
from sandbox.exports import Exports, parse_export_filters
from sandbox.filters import OPS, Filter, parse_filter, parse_list
from sandbox.forms import split_key
from sandbox.store import Store

_TEXT_OPS = frozenset({"is", "is_not", "starts_with", "in", "not_in"})
_PREFIX_OPS = frozenset({"is", "is_not", "starts_with"})
_TIME_FIELDS = ("shipping_date", "shipped_at", "order_date", "paid_on", "updated_at", "created_at")
LIST_FILTERS: dict[str, tuple[str, frozenset[str]]] = {
    "id": ("text", _TEXT_OPS),
    "invoice_id": ("text", _TEXT_OPS),
    "subscription_id": ("text", _PREFIX_OPS),
    "original_order_id": ("text", _PREFIX_OPS),
    "status": ("enum", OPS["enum"]),
    "order_type": ("enum", OPS["enum"]),
    "resent_status": ("enum", OPS["enum"]),
    "is_resent": ("boolean", OPS["boolean"]),
    **{name: ("timestamp", OPS["timestamp"]) for name in _TIME_FIELDS},
}
"""``GET /orders`` filters: field → (kind, operators)."""

SORT_FIELDS = ("created_at", "updated_at")
LIST_ENUMS: dict[str, tuple[str, ...]] = {
    "status": validation.ORDER_STATUSES,
    "order_type": ("manual", "system_generated"),
    "resent_status": ("fully_resent", "partially_resent"),
}
"""Values the enum filters of ``GET /orders`` accept."""
INVOICE_FILTERS = frozenset({"id[is]", "id[in]", "customer_id[is]", "subscription_id[is]"})
"""``GET /invoices`` filters the sandbox implements (Chargebee has more; others are 400)."""


@dataclass(slots=True)
class Sandbox:
    """What handlers work on: the config in force, the store and the export jobs."""

    config: SandboxConfig
    store: Store
    exports: Exports


@dataclass(slots=True)
class ApiRequest:
    """One parsed API request as handlers see it."""

    form: dict[str, str]
    path_id: str | None = None
    business_entity_id: str | None = None
    root_url: str = ""
    suppressed_by: dict[str, str] = field(default_factory=dict)
    """channel (``email``/``webhook``) → the header that suppresses it."""


def _fire(sb: Sandbox, req: ApiRequest, order_id: str, events: list[orders.Event]) -> None:
    for channel, event_type in events:
        by = req.suppressed_by.get(channel)
        sb.store.counts[f"{channel}s_{'suppressed' if by else 'fired'}"] += 1
        sb.store.events.append(
            {
                "t": time.time(),
                "channel": channel,
                "event_type": event_type,
                "order_id": order_id,
                "suppressed": by is not None,
                "suppressed_by": by,
                "business_entity_id": req.business_entity_id,
            }
        )


def import_order(sb: Sandbox, req: ApiRequest) -> dict[str, Any]:
    """``POST /orders/import_order``: validate, check uniqueness and series, store."""
    values = validation.validate_import(
        req.form, status_rules=sb.config.status_rules, eu_vat=sb.config.eu_vat
    )
    store = sb.store
    order_id = values.get("id")
    if order_id is not None and store.live(order_id) is not None:
        raise errors.duplicate("id", order_id)
    number = values.get("document_number")
    if number is not None:
        _check_series(sb.config, number)
        if sb.config.unique_document_numbers and store.document_number_taken(number):
            raise errors.duplicate("document_number", number)
    invoice = None
    if store.invoices.seeded:
        invoice = store.invoices.by_id.get(values["invoice_id"])
        if invoice is None:
            raise errors.not_found("invoice", values["invoice_id"], "invoice_id")
    fresh = order_id is not None and order_id in store.orders  # reusing a deleted order's id
    if order_id is None:
        order_id = store.next_auto_id()
    order, events = orders.build_order(
        values,
        order_id=order_id,
        line_seq=store.next_seq,
        business_entity_id=req.business_entity_id,
        invoice=invoice,
    )
    store.save(order, fresh=fresh)
    store.counts["imports_created"] += 1
    _fire(sb, req, order_id, events)
    return {"order": order}


def _check_series(config: SandboxConfig, number: str) -> None:
    """Imported numbers must stay below the series (prefix ORDER, start 1000 → up to ORDER999)."""
    prefix, start = config.doc_series_prefix, config.doc_series_start
    if prefix is None or start is None or not number.startswith(prefix):
        return
    digits = number[len(prefix) :]
    if digits.isdigit() and int(digits) >= start:
        raise errors.wrong_value(
            "document_number",
            f"cannot be greater than the order number series (next number {prefix}{start})",
        )


def _existing(sb: Sandbox, req: ApiRequest) -> dict[str, Any]:
    assert req.path_id is not None
    order = sb.store.live(req.path_id)
    if order is None:
        raise errors.not_found("order", req.path_id)
    return order


def update_order(sb: Sandbox, req: ApiRequest) -> dict[str, Any]:
    """``POST /orders/{id}``: apply the update; a status change sets ``status_update_at``."""
    order = _existing(sb, req)
    values = validation.validate_update(req.form, eu_vat=sb.config.eu_vat)
    new, events = orders.apply_update(order, values)
    sb.store.save(new)
    sb.store.counts["orders_updated"] += 1
    _fire(sb, req, new["id"], events)
    return {"order": new}


def delete_order(sb: Sandbox, req: ApiRequest) -> dict[str, Any]:
    """``POST /orders/{id}/delete``: mark an imported order deleted (every sandbox order is)."""
    order = _existing(sb, req)
    if req.form:
        raise errors.unknown_param(next(iter(req.form)))
    new, events = orders.delete_order(order)
    sb.store.save(new)
    sb.store.counts["orders_deleted"] += 1
    _fire(sb, req, new["id"], events)
    return {"order": new}


def create_order(sb: Sandbox, req: ApiRequest) -> dict[str, Any]:
    """``POST /orders`` is deprecated: 403 ``request_blocked`` with a message that says why."""
    raise errors.SandboxError(
        403,
        "request_blocked",
        "Creating orders with POST /orders is deprecated and blocked; "
        "import historical orders with POST /api/v2/orders/import_order.",
        error_type="operation_failed",
        error_code="operation_deprecated",
    )


def retrieve_order(sb: Sandbox, req: ApiRequest) -> dict[str, Any]:
    """``GET /orders/{id}`` (deleted orders are not found)."""
    return {"order": _existing(sb, req)}


def list_orders(sb: Sandbox, req: ApiRequest) -> dict[str, Any]:
    """``GET /orders``: filters, ``sort_by``, ``include_deleted``, opaque ``next_offset`` paging."""
    query = req.form
    limit, offset = 10, None
    sort_field, descending, include_deleted = "created_at", False, False
    filters: list[Filter] = []
    for key, value in query.items():
        parsed = split_key(key)
        if parsed is None:
            raise errors.unknown_param(key)
        name, parts = parsed
        if name == "limit" and not parts:
            limit = _limit(value)
        elif name == "offset" and not parts:
            offset = _offset(value)
        elif name in ("include_deleted", "exclude_deleted_credit_notes") and not parts:
            if value not in ("true", "false"):
                raise errors.wrong_value(name, "must be true or false")
            include_deleted = include_deleted or (name == "include_deleted" and value == "true")
        elif name == "sort_by" and len(parts) == 1 and parts[0] in ("asc", "desc"):
            if value not in SORT_FIELDS:
                raise errors.wrong_value(key, f"must be one of {', '.join(SORT_FIELDS)}")
            sort_field, descending = value, parts[0] == "desc"
        elif name in LIST_FILTERS and len(parts) == 1:
            kind, ops = LIST_FILTERS[name]
            if parts[0] not in ops:
                raise errors.unknown_param(key)
            filters.append(parse_filter(key, name, kind, parts[0], value, LIST_ENUMS.get(name)))
        else:
            raise errors.unknown_param(key)
    cursor = _decode_offset(offset, sort_field, descending) if offset else None
    found, next_cursor = sb.store.page(
        filters,
        sort_field=sort_field,
        descending=descending,
        include_deleted=include_deleted,
        cursor=cursor,
        limit=limit,
    )
    body: dict[str, Any] = {"list": [{"order": order} for order in found]}
    if next_cursor is not None:
        body["next_offset"] = _encode_offset(next_cursor, sort_field, descending)
    return body


def _encode_offset(cursor: tuple[int, int], sort_field: str, descending: bool) -> str:
    raw = f"{sort_field}:{int(descending)}:{cursor[0]}:{cursor[1]}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_offset(offset: str, sort_field: str, descending: bool) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(offset + "=" * (-len(offset) % 4)).decode()
        field_name, desc, value, seq = raw.split(":")
        if field_name != sort_field or desc != str(int(descending)):
            raise ValueError("offset belongs to another sort order")
        return int(value), int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise errors.wrong_value(
            "offset", "invalid offset; pass back next_offset as given"
        ) from exc


def export_orders(sb: Sandbox, req: ApiRequest) -> dict[str, Any]:
    """``POST /exports/orders``: start a job (at most ``max_exports_in_process`` running)."""
    filters = parse_export_filters(req.form)
    if sb.exports.running() >= sb.config.max_exports_in_process:
        wait = sb.exports.next_completion() - time.time()
        raise errors.SandboxError(
            429,
            "api_request_limit_exceeded",
            f"At most {sb.config.max_exports_in_process} export jobs can be processed at a time; "
            "the API request limit has been reached. Retry after a running export completes.",
            error_type="operation_failed",
            headers={"retry-after": str(max(1, math.ceil(wait)))},
        )
    job = sb.exports.start(filters, sb.config.export_delay_s)
    sb.store.counts["exports_created"] += 1
    return {"export": job.resource(req.root_url)}


def retrieve_export(sb: Sandbox, req: ApiRequest) -> dict[str, Any]:
    """``GET /exports/{id}``: ``in_process`` until the delay passes, then ``completed``."""
    assert req.path_id is not None
    job = sb.exports.jobs.get(req.path_id)
    if job is None:
        raise errors.not_found("export", req.path_id)
    if job.completed_at is None and not job.in_process(time.time()):
        live = [o for o in sb.store.orders.values() if not o.get("deleted")]
        sb.exports.refresh(job, live)
    return {"export": job.resource(req.root_url)}


def _limit(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 100:
        raise errors.wrong_value("limit", "must be an integer between 1 and 100")
    return int(value)


def _offset(value: str) -> str:
    if len(value) > 1000:
        raise errors.wrong_value("offset", "cannot be more than 1000 characters")
    return value


def list_invoices(sb: Sandbox, req: ApiRequest) -> dict[str, Any]:
    """``GET /invoices``: ``limit``, opaque ``offset``, ``id[is|in]``, ``customer_id[is]``,
    ``subscription_id[is]``. Seeded: the seeded invoices in seed order. Not seeded: every id an
    ``id`` filter names (made up), else the invoices stored orders name."""
    invoices = sb.store.invoices
    limit, offset = 10, ""
    wanted: list[str] | None = None
    conditions: list[tuple[str, str]] = []
    for key, value in req.form.items():
        if key == "limit":
            limit = _limit(value)
        elif key == "offset":
            offset = _offset(value)
        elif key == "id[in]":
            items = parse_list(key, value)
            wanted = [i for i in dict.fromkeys(items) if wanted is None or i in wanted]
        elif key == "id[is]":
            wanted = [value] if wanted is None or value in wanted else []
        elif key in INVOICE_FILTERS:
            conditions.append((key[: -len("[is]")], value))
        else:
            raise errors.unknown_param(key)
    if wanted is not None:
        candidates = wanted
    elif invoices.seeded:
        candidates = invoices.ids
    else:
        candidates = list(sb.store.referenced)
    start = _invoice_offset(offset) if offset else 0
    found: list[dict[str, Any]] = []
    for position in range(start, len(candidates)):
        invoice = invoices.get(candidates[position])
        if invoice is None or any(invoice.get(f) != v for f, v in conditions):
            continue
        if len(found) == limit:
            raw = f"inv:{position}".encode()
            next_offset = base64.urlsafe_b64encode(raw).decode().rstrip("=")
            return {"list": [{"invoice": i} for i in found], "next_offset": next_offset}
        found.append(invoice)
    return {"list": [{"invoice": i} for i in found]}


def _invoice_offset(offset: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(offset + "=" * (-len(offset) % 4)).decode()
        tag, _, position = raw.partition(":")
        if tag != "inv" or not position.isdigit():
            raise ValueError(raw)
        return int(position)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise errors.wrong_value(
            "offset", "invalid offset; pass back next_offset as given"
        ) from exc


def retrieve_invoice(sb: Sandbox, req: ApiRequest) -> dict[str, Any]:
    """``GET /invoices/{id}``: the invoice (not seeded: a made-up one); unknown → 404."""
    assert req.path_id is not None
    invoice = sb.store.invoices.get(req.path_id)
    if invoice is None:
        raise errors.not_found("invoice", req.path_id)
    if req.form:
        raise errors.unknown_param(next(iter(req.form)))
    return {"invoice": invoice}
