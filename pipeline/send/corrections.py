"""A ready corrections file for ``order-import update``: rows already imported whose content the
input now gives differently.

An import never changes an order Chargebee already holds, so such rows are not re-sent; the
run counts them and writes, per row, the order ``id`` and every changed field that
``POST /orders/{id}`` can change, named as the update reader reads them
(``shipping_address[city]``, timestamps as Unix seconds). Fields an update cannot change are
named in the run's note instead. Cells go through ``safety.safe_cell`` (the update reader
undoes it).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.ledger.records import ChangedRow
from pipeline.params import flatten
from pipeline.safety import safe_cell
from schemas import UPDATE_ORDER_PARAMS, form_name

FILE_NAME = "corrections-for-update.csv"


@dataclass(frozen=True, slots=True)
class Corrections:
    """What ``write_corrections`` wrote."""

    path: Path | None
    """The file, or None when no changed field can be sent by an update."""
    rows: int
    """Rows written (each a changed order)."""
    not_updatable: tuple[str, ...]
    """Changed fields an update cannot change (dotted names), sorted."""


def changed_fields(sent: Mapping[str, Any], now: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted name → the new value for every field that differs (a removed value is ``""``)."""
    before, after = flatten(sent), flatten(now)
    return {
        name: after.get(name, "")
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    }


def write_corrections(changed: Iterable[ChangedRow], out_dir: Path) -> Corrections:
    """Write ``out_dir/corrections-for-update.csv`` for the rows that an update can correct.

    Raises:
        InputError: the file cannot be written (naming it).
    """
    rows: list[dict[str, Any]] = []
    columns: dict[str, None] = {"id": None}
    not_updatable: set[str] = set()
    for row in changed:
        fields = changed_fields(row.sent, row.now)
        sendable = {k: v for k, v in fields.items() if k in UPDATE_ORDER_PARAMS and k != "id"}
        not_updatable.update(k for k in fields if k not in sendable)
        if not sendable or not row.order_id:
            continue
        rows.append({"id": row.order_id, **{form_name(k): v for k, v in sendable.items()}})
        columns.update(dict.fromkeys(form_name(k) for k in sendable))
    if not rows:
        return Corrections(None, 0, tuple(sorted(not_updatable)))
    path = out_dir / FILE_NAME
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(columns), restval="")
            writer.writeheader()
            for row_values in rows:
                writer.writerow({k: safe_cell(_text(v)) for k, v in row_values.items()})
    except OSError as exc:
        raise InputError(
            f"cannot write the corrections file ({exc.strerror})", path=str(path)
        ) from None
    return Corrections(path, len(rows), tuple(sorted(not_updatable)))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
