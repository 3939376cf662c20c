"""Read the orders CSV inside a Chargebee export zip BY HEADER NAME, into list-shaped order dicts.

Chargebee does not document the export's columns (FACTS §7.3), so headers are matched by name:
flattened snake_case (``shipping_address_city``, as the Data Catalog) and human labels
(``Order ID``, ``Shipping Address City``) both work. An unknown layout
raises ``PermanentApiError`` (``export_layout_unknown``), any fault or cap while reading the zip
(``export_unreadable``): the caller falls back to listing either way.
"""

from __future__ import annotations

import csv
import io
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from pipeline.errors import PermanentApiError
from pipeline.params import ADDRESS_KINDS, TIMESTAMP_FIELDS

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
ORDER_FIELDS = (
    frozenset(
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
    | TIMESTAMP_FIELDS
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
MAX_MEMBERS = 1000
"""Entries a zip may announce (Chargebee's exports hold a handful of CSVs)."""
MAX_MEMBER_BYTES = 512 * 1024 * 1024
"""Decompressed bytes read from one member."""
MAX_RATIO = 100
"""Decompressed bytes per compressed byte (CSV compresses ~5-20×; zip bombs ~1000×)."""
RATIO_SLACK_BYTES = 256 * 1024
"""Bytes read from a member before the ratio applies (tiny members compress oddly)."""
MAX_CELL_CHARS = 128 * 1024
"""Characters in one export cell (csv's own default limit; an order field is far shorter)."""
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


def read_export_rows(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Orders from one CSV (header row first), as nested dicts like ``GET /orders`` gives.

    Args:
        lines: the CSV text, or an iterable of its lines (a text stream is read lazily).

    Raises:
        PermanentApiError: no column could be read as the order id (``export_layout_unknown``),
            or a cell is larger than ``MAX_CELL_CHARS`` (``export_unreadable``).
    """
    reader = csv.reader(io.StringIO(lines) if isinstance(lines, str) else lines)
    header = next(reader, None)
    if header is None:
        return
    columns = [canonical_column(h) for h in header]
    if "id" not in columns:
        labels = ", ".join(ascii(h) for h in header[:8])
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
        if any(len(cell) > MAX_CELL_CHARS for cell in record):
            raise PermanentApiError(
                f"export CSV line {reader.line_num} has a cell over {MAX_CELL_CHARS // 1024} KiB",
                api_error_code="export_unreadable",
            )
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

    The zip is read as a stream, member by member, within caps checked before decompressing:
    at most ``MAX_MEMBERS`` entries, ``MAX_MEMBER_BYTES`` per member, a compression ratio of at
    most ``MAX_RATIO``; and cells of at most ``MAX_CELL_CHARS``. One order is kept per id, so
    memory follows the distinct orders, not the file.

    Raises:
        PermanentApiError: not a zip, no CSV, no CSV whose headers can be read
            (``export_layout_unknown``), or any fault while reading it — an encrypted member,
            a bad CRC, an unsupported compression method, corrupt data, a cap exceeded
            (``export_unreadable``). Both are "use the list instead" under ``--via auto``.
    """
    entries = _entry_count(data)
    if entries > MAX_MEMBERS:
        raise _unreadable(f"export zip holds {entries} entries (at most {MAX_MEMBERS} are read)")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise PermanentApiError(
            "export download is not a zip file", api_error_code="export_layout_unknown"
        ) from None
    with archive:
        files = _order_files(archive)
        if not files:
            names = ", ".join(ascii(n) for n in archive.namelist()[:10])
            raise PermanentApiError(
                f"export zip holds no orders CSV (files: {names})",
                api_error_code="export_layout_unknown",
            )
        problems: list[str] = []
        for name in files:
            try:
                return _read_member(archive, archive.getinfo(name))
            except PermanentApiError as err:
                if err.api_error_code != "export_layout_unknown":
                    raise
                problems.append(f"{name!a}: {err.message}")
        raise PermanentApiError("; ".join(problems), api_error_code="export_layout_unknown")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> list[dict[str, Any]]:
    """One CSV member, streamed through the caps; every zip fault is a PermanentApiError."""
    where = f"export zip member {info.filename!a}"
    if info.flag_bits & 0x1:
        raise _unreadable(f"{where} is encrypted")
    if info.file_size > MAX_MEMBER_BYTES:
        raise _unreadable(f"{where} is {info.file_size} bytes (at most {MAX_MEMBER_BYTES} read)")
    if info.file_size > RATIO_SLACK_BYTES + MAX_RATIO * max(info.compress_size, 1):
        # zipfile never yields more than a member's declared size (and checks its CRC), so the
        # declared size and ratio bound what is decompressed before a byte is read.
        raise _unreadable(f"{where} expands more than {MAX_RATIO} times (a zip bomb?); not read")
    try:
        with archive.open(info) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
            found: dict[str, dict[str, Any]] = {}
            for order in read_export_rows(text):  # one order per id: a live one wins
                oid = str(order["id"])
                if oid not in found or found[oid].get("deleted") is True:
                    found[oid] = order
            return list(found.values())
    except PermanentApiError:
        raise
    except NotImplementedError:
        raise _unreadable(f"{where} uses an unsupported compression method") from None
    except RuntimeError as exc:  # zipfile: "File ... is encrypted, password required"
        raise _unreadable(f"{where} cannot be read ({exc})") from None
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise _unreadable(f"{where} has a cell over {MAX_CELL_CHARS // 1024} KiB") from None
        raise _unreadable(f"{where} is not a readable CSV ({exc})") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise _unreadable(f"{where} is damaged ({type(exc).__name__}: {exc})") from None


def _entry_count(data: bytes) -> int:
    """Entries the zip's end-of-central-directory record announces (0 when there is none).

    Read before ``zipfile`` builds its in-memory directory, so a zip announcing millions of
    entries is refused without listing them.
    """
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if end < 0 or end + 22 > len(data):
        return 0
    (total,) = struct.unpack_from("<H", data, end + 10)
    return int(total) if total != 0xFFFF else MAX_MEMBERS + 1


def _unreadable(message: str) -> PermanentApiError:
    return PermanentApiError(message, api_error_code="export_unreadable")
