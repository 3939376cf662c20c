"""What the ledger says each order holds: import params overlaid with later succeeded updates.

Shared by ``reconcile`` (expected values) and ``update`` (only changed fields are sent). Reads
the ledger through its public API only.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.ledger.ledger import Ledger, LedgerRow


@dataclass(slots=True)
class KnownOrder:
    """The ledger's view of one order."""

    order_id: str
    params: dict[str, Any] = field(default_factory=dict)
    """Effective params: the import's, then every succeeded update applied in time order."""
    import_batch: str | None = None
    row_key: str | None = None
    """The import row's key (None when only update batches know the order)."""
    source_line: int | None = None
    updated_fields: set[str] = field(default_factory=set)
    """Dotted fields (``status``, ``shipping_address.city``) set by succeeded updates."""
    updates: list[tuple[str, str]] = field(default_factory=list)
    """(update batch, row key) applied, in order."""


def overlay(base: Mapping[str, Any], change: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``change`` applied the way Chargebee applies an order update.

    Scalars replace; ``shipping_address`` merges field by field; ``order_line_items`` merge
    by line item ``id``. ``id`` is never changed.
    """
    out = dict(base)
    for name, value in change.items():
        if name == "id":
            continue
        if isinstance(value, Mapping):
            out[name] = {**dict(out.get(name) or {}), **dict(value)}
        elif name == "order_line_items" and isinstance(value, list):
            items = [dict(li) for li in (out.get(name) or [])]
            by_id = {str(li.get("id")): li for li in items}
            for li in value:
                target = by_id.get(str(li.get("id")))
                if target is None:
                    target = {"id": li.get("id")}
                    items.append(target)
                    by_id[str(li.get("id"))] = target
                target.update({k: v for k, v in li.items() if k != "id"})
            out[name] = items
        else:
            out[name] = value
    return out


def changed_fields(change: Mapping[str, Any]) -> set[str]:
    """Dotted names an update's params set (line items as ``order_line_items``)."""
    names: set[str] = set()
    for name, value in change.items():
        if name == "id":
            continue
        if isinstance(value, Mapping):
            names.update(f"{name}.{sub}" for sub in value)
        else:
            names.add(name)
    return names


def known_orders(
    ledger: Ledger,
    *,
    order_ids: Collection[str] | None = None,
    exclude_batch: str | None = None,
    as_of: float | None = None,
) -> dict[str, KnownOrder]:
    """Every order the ledger knows as succeeded (optionally only ``order_ids``).

    Args:
        ledger: an open ledger.
        order_ids: restrict to these ids (None = all).
        exclude_batch: an update batch whose own rows are NOT applied (the batch being planned).
        as_of: apply only updates recorded before this Unix time (what the ledger knew then).
    """
    wanted = set(order_ids) if order_ids is not None else None
    known: dict[str, KnownOrder] = {}
    updates: list[tuple[float, str, LedgerRow]] = []
    for info in ledger.batches():
        for row in ledger.rows(info.name, states=("succeeded",)):
            oid = row.order_id or _param_id(row.params)
            if oid is None or (wanted is not None and oid not in wanted):
                continue
            if info.operation == "import":
                entry = known.setdefault(oid, KnownOrder(oid))
                entry.params = overlay(dict(row.params), entry.params)
                entry.params["id"] = oid
                entry.import_batch = info.name
                entry.row_key = row.row_key
                entry.source_line = row.source_line
            elif info.name != exclude_batch and (as_of is None or row.updated_at < as_of):
                updates.append((row.updated_at, info.name, row))
    for _, batch, row in sorted(updates, key=lambda t: (t[0], t[1], t[2].row_key)):
        oid = row.order_id or _param_id(row.params)
        assert oid is not None
        entry = known.setdefault(oid, KnownOrder(oid))
        entry.params = overlay(entry.params, row.params)
        entry.updated_fields |= changed_fields(row.params)
        entry.updates.append((batch, row.row_key))
    return known


def _param_id(params: Mapping[str, Any]) -> str | None:
    value = params.get("id")
    return None if value in (None, "") else str(value)
