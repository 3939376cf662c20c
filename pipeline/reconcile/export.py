"""Read the orders CSV inside a Chargebee export zip BY HEADER NAME, into list-shaped order dicts.

Chargebee does not document the export's columns (FACTS §7.3), so headers are matched by name:
flattened snake_case (``shipping_address_city``, as the Data Catalog) and human labels
(``Order ID``, ``Shipping Address City``) both work. An unknown layout raises
``PermanentApiError`` (``export_layout_unknown``) so the caller can fall back to listing.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

from pipeline.errors import PermanentApiError
from pipeline.params import ADDRESS_KINDS

ADDRESS_FIELDS = (
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
ORDER_FIELDS = frozenset(
    {
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
        "paid_on",
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
    }
)
# Normalised header → canonical field, for labels that differ from the API name.
ALIASES: dict[str, str] = {
    "order_id": "id",
    "order_number": "document_number",
    "document_no": "document_number",
    "invoice_number": "invoice_id",
    "reason_code": "cancellation_reason",
    "cancellation_reason_code": "cancellation_reason",
    "currency": "currency_code",
    "shipped_date": "shipped_at",
    "delivered_date": "delivered_at",
    "cancelled_date": "cancelled_at",
    "cancelled_on": "cancelled_at",
    "shipping_cutoff_date": "shipping_cut_off_date",
    "created_date": "created_at",
    "created_on": "created_at",
    "updated_date": "updated_at",
    "last_updated_at": "updated_at",
    "is_deleted": "deleted",
    "carrier": "shipment_carrier",
}
FIELD_ALIASES: dict[str, str] = {
    "line_1": "line1",
    "line_2": "line2",
    "line_3": "line3",
    "address_line_1": "line1",
    "address_line_2": "line2",
    "address_line_3": "line3",
    "zip_code": "zip",
    "postal_code": "zip",
    "postcode": "zip",
    "country_code": "country",
}
_SKIP_FILES = ("line_item", "lineitem", "tax", "discount", "credit_note", "resent")
_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalise_header(name: str) -> str:
    """``Shipping Address: City`` / ``shipping_address[city]`` → ``shipping_address_city``."""
    return _NON_WORD.sub("_", name.strip().lstrip("\ufeff").lower()).strip("_")


def canonical_column(name: str) -> str | None:
    """The order field a header means (``shipping_address.city`` for addresses), or None."""
    key = normalise_header(name)
    if key in ORDER_FIELDS:
        return key
    if key in ALIASES:
        return ALIASES[key]
    for kind in ADDRESS_KINDS:
        short = kind.split("_")[0]  # "shipping" / "billing"
        for head in (f"{kind}_", f"{short}_"):
            if key.startswith(head):
                tail = key[len(head) :]
                tail = FIELD_ALIASES.get(tail, tail)
                if tail in ADDRESS_FIELDS:
                    return f"{kind}.{tail}"
    return None


def _order_files(archive: zipfile.ZipFile) -> list[str]:
    names = [n for n in archive.namelist() if n.lower().endswith(".csv")]
    main = [n for n in names if not any(s in n.lower() for s in _SKIP_FILES)]
    ordered = sorted(main, key=lambda n: (0 if "order" in n.lower() else 1, n))
    return ordered


def _typed(field: str, text: str) -> Any:
    if field == "deleted":
        return text.strip().lower() in ("true", "1", "yes", "y")
    return text


def read_export_rows(text: str) -> Iterator[dict[str, Any]]:
    """Orders from one CSV text (header row first), as nested dicts like ``GET /orders`` gives.

    Raises:
        PermanentApiError: no column could be read as the order id.
    """
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return
    columns = [canonical_column(h) for h in header]
    if "id" not in columns:
        labels = ", ".join(header[:8])
        raise PermanentApiError(
            f"export CSV has no order id column (headers start: {labels})",
            api_error_code="export_layout_unknown",
        )
    seen: set[str] = set()
    index: list[tuple[int, str]] = []
    for position, field in enumerate(columns):
        if field is not None and field not in seen:  # first column of a name wins
            seen.add(field)
            index.append((position, field))
    for record in reader:
        if not any(cell.strip() for cell in record):
            continue
        order: dict[str, Any] = {}
        for position, field in index:
            if position >= len(record) or record[position] == "":
                continue
            value = _typed(field, record[position])
            kind, dot, sub = field.partition(".")
            if dot:
                order.setdefault(kind, {})[sub] = value
            else:
                order[field] = value
        if order.get("id"):
            yield order


def read_export_zip(data: bytes) -> list[dict[str, Any]]:
    """Every order in an export zip (the first orders-like CSV that has an id column).

    Raises:
        PermanentApiError: not a zip, no CSV, or no CSV whose headers can be read.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise PermanentApiError(
            "export download is not a zip file", api_error_code="export_layout_unknown"
        ) from None
    with archive:
        files = _order_files(archive)
        if not files:
            raise PermanentApiError(
                f"export zip holds no orders CSV (files: {', '.join(archive.namelist()[:10])})",
                api_error_code="export_layout_unknown",
            )
        problems: list[str] = []
        for name in files:
            text = archive.read(name).decode("utf-8-sig", errors="replace")
            try:
                return list(read_export_rows(text))
            except PermanentApiError as err:
                problems.append(f"{name}: {err.message}")
        raise PermanentApiError("; ".join(problems), api_error_code="export_layout_unknown")
