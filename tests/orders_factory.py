"""Test data: API-column order CSVs (the no-mapping input form) with known valid and bad rows."""

from __future__ import annotations

import csv
from pathlib import Path

HEADER = [
    "id",
    "document_number",
    "invoice_id",
    "customer_id",
    "status",
    "created_at",
    "order_date",
    "shipping_date",
    "shipping_address[first_name]",
    "shipping_address[city]",
    "shipping_address[country]",
]
BASE_TS = 1_672_531_200  # 2023-01-01T00:00:00Z


def order_row(i: int, *, prefix: str = "T") -> dict[str, str]:
    """A valid order row in API-column form with a deterministic id."""
    ts = BASE_TS + i * 3600
    return {
        "id": f"{prefix}-{i:06d}",
        "document_number": f"{prefix}DOC{i:06d}",
        "invoice_id": f"INV-{i:06d}",
        "customer_id": f"CUST-{i % 97:04d}",
        "status": ("delivered", "shipped", "queued", "awaiting_shipment")[i % 4],
        "created_at": str(ts),
        "order_date": str(ts),
        "shipping_date": str(ts + 86_400),
        "shipping_address[first_name]": "Zoë",
        "shipping_address[city]": "Kraków",
        "shipping_address[country]": "PL",
    }


def write_orders(
    path: Path,
    count: int,
    *,
    prefix: str = "T",
    bad: dict[int, dict[str, str]] | None = None,
) -> Path:
    """Write ``count`` rows; ``bad`` overrides cells of chosen rows (0-based) to make them wrong."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER)
        writer.writeheader()
        for i in range(count):
            row = order_row(i, prefix=prefix)
            row.update((bad or {}).get(i, {}))
            writer.writerow(row)
    return path
