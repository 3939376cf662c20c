"""Starter mapping files: match a file's headers to import_order params (``mapping init``).

Fuzzy: case, spaces and punctuation are ignored, ``#``/``No`` read as "number", and common
legacy synonyms (``Order #``, ``Invoice No``, ``Ship To City``) are known. Pure; no I/O.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

DATE_FORMATS: tuple[str, ...] = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%d-%m-%Y %H:%M",
    "%d-%m-%Y",
)
"""Candidates for ``mapping init``; day-first wins over month-first when both fit every sample."""

SYNONYMS: dict[str, str] = {
    "ordernumber": "document_number",
    "orderserial": "document_number",
    "documentnumber": "document_number",
    "orderid": "id",
    "invoicenumber": "invoice_id",
    "invoice": "invoice_id",
    "invoiceref": "invoice_id",
    "orderstatus": "status",
    "state": "status",
    "orderdate": "order_date",
    "date": "order_date",
    "orderedon": "order_date",
    "shipdate": "shipping_date",
    "shippingdate": "shipping_date",
    "shipby": "shipping_date",
    "created": "created_at",
    "createddate": "created_at",
    "createdon": "created_at",
    "shippedon": "shipped_at",
    "shippeddate": "shipped_at",
    "deliveredon": "delivered_at",
    "deliverydate": "delivered_at",
    "delivereddate": "delivered_at",
    "cancelledon": "cancelled_at",
    "cancelleddate": "cancelled_at",
    "canceledat": "cancelled_at",
    "customer": "customer_id",
    "customernumber": "customer_id",
    "subscription": "subscription_id",
    "tracking": "tracking_id",
    "trackingnumber": "tracking_id",
    "trackinglink": "tracking_url",
    "carrier": "shipment_carrier",
    "shippingcarrier": "shipment_carrier",
    "notes": "note",
    "comment": "note",
    "comments": "note",
    "reference": "reference_id",
    "externalid": "reference_id",
    "refundablecredits": "refundable_credits_issued",
    "credits": "refundable_credits_issued",
    "creditscents": "refundable_credits_issued",
    "refundablecreditscents": "refundable_credits_issued",
    "cancelreason": "cancellation_reason",
}
ADDRESS_PREFIXES: dict[str, str] = {
    "shipto": "shipping_address",
    "shipping": "shipping_address",
    "ship": "shipping_address",
    "delivery": "shipping_address",
    "billto": "billing_address",
    "billing": "billing_address",
    "bill": "billing_address",
}
ADDRESS_SYNONYMS: dict[str, str] = {
    "firstname": "first_name",
    "lastname": "last_name",
    "email": "email",
    "emailaddress": "email",
    "company": "company",
    "phone": "phone",
    "telephone": "phone",
    "address": "line1",
    "address1": "line1",
    "addressline1": "line1",
    "street": "line1",
    "line1": "line1",
    "address2": "line2",
    "addressline2": "line2",
    "line2": "line2",
    "address3": "line3",
    "line3": "line3",
    "city": "city",
    "town": "city",
    "statecode": "state_code",
    "state": "state",
    "province": "state",
    "region": "state",
    "zip": "zip",
    "zipcode": "zip",
    "postcode": "zip",
    "postalcode": "zip",
    "country": "country",
    "countrycode": "country",
    "validationstatus": "validation_status",
}


def squash(name: str) -> str:
    """Header comparison key: lower case, ``#``/``no``/``num`` → number, punctuation dropped."""
    text = name.casefold().replace("#", " number ")
    text = re.sub(r"\b(no|nr|num)\b\.?", " number ", text)
    return re.sub(r"[^0-9a-z]", "", text)


def match_header(header: str, known_params: Collection[str]) -> str | None:
    """The param a header most likely means, or None."""
    key = squash(header)
    exact = {squash(p.replace(".", " ")): p for p in known_params}
    if key in exact:
        return exact[key]
    if key in SYNONYMS and SYNONYMS[key] in known_params:
        return SYNONYMS[key]
    if key.endswith("at") and key[:-2] in SYNONYMS:  # "Shipped At" and friends
        candidate = SYNONYMS[key[:-2]]
        return candidate if candidate in known_params else None
    for prefix, address in sorted(ADDRESS_PREFIXES.items(), key=lambda kv: -len(kv[0])):
        rest = key[len(prefix) :]
        if key.startswith(prefix) and rest.startswith("address") and rest != "address":
            rest = rest[len("address") :]
        if key.startswith(prefix) and rest in ADDRESS_SYNONYMS:
            return f"{address}.{ADDRESS_SYNONYMS[rest]}"
    if key in ADDRESS_SYNONYMS and key not in ("state", "address"):
        return f"shipping_address.{ADDRESS_SYNONYMS[key]}"
    return None


@dataclass(frozen=True, slots=True)
class StarterMapping:
    """A starter mapping's text and what it matched."""

    text: str
    matched: dict[str, str]
    unmatched: list[str]
    missing_required: list[str]


def guess_date_formats(samples: Iterable[str]) -> list[str]:
    """Formats (from DATE_FORMATS) that parse every non-empty, non-ISO, non-numeric sample.

    Returns the formats needed, most specific first, e.g. ``["%d/%m/%Y %H:%M", "%d/%m/%Y"]``;
    empty when the samples are ISO 8601, Unix seconds or Excel serials (handled without one).
    """
    values = [v.strip() for v in samples if v and v.strip()]
    values = [v for v in values if not re.fullmatch(r"[+-]?\d+(\.\d+)?|\d{4}-\d{2}-\d{2}T.*", v)]
    needed: list[str] = []
    for value in values:
        if any(_parses(value, fmt) for fmt in needed):
            continue
        for fmt in DATE_FORMATS:
            if _parses(value, fmt) and all(
                _parses(v, fmt) or any(_parses(v, f) for f in needed) or not _same_shape(v, fmt)
                for v in values
            ):
                needed.append(fmt)
                break
    return needed


def _parses(value: str, fmt: str) -> bool:
    try:
        dt.datetime.strptime(value, fmt)
    except ValueError:
        return False
    return True


def _same_shape(value: str, fmt: str) -> bool:
    """Whether a value has the separators of a format (so a format must handle it)."""
    sample = dt.datetime(2001, 2, 3, 4, 5, 6).strftime(fmt)
    return re.sub(r"\d", "9", value) == re.sub(r"\d", "9", sample)


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def starter_mapping(
    header: Iterable[str],
    known_params: Collection[str],
    required: Collection[str],
    statuses: Collection[str],
    status_samples: Iterable[str] = (),
    date_samples: Mapping[str, Sequence[str]] | None = None,
) -> StarterMapping:
    """Build a starter mapping (TOML text) for a header; see docs/mapping.md for the format."""
    matched: dict[str, str] = {}
    unmatched: list[str] = []
    for col in header:
        param = match_header(col, known_params)
        if param is None or param in matched.values() or col.startswith("oi:"):
            unmatched.append(col)
        else:
            matched[col] = param
    missing = [p for p in required if p not in matched.values()]
    out = [
        "# Starter mapping written by `order-import mapping init`; review every line.",
        "# Format: docs/mapping.md",
        "version = 1",
        "",
        "[columns]",
    ]
    out += [f"{_q(col)} = {_q(param)}" for col, param in matched.items()]
    out += [f'# {_q(col)} = ""  # unmatched: map it or list it in ignore' for col in unmatched]
    out += [
        f"# required, no column found: {p} (map one, or set it in [constants])" for p in missing
    ]
    formats: list[str] = []
    for col, values in (date_samples or {}).items():
        if col in matched:
            formats += [f for f in guess_date_formats(values) if f not in formats]
    formats = formats or ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]
    out += [
        "",
        "[dates]",
        'timezone = "UTC"  # CHECK: the IANA zone the legacy system wrote local times in',
        "formats = [" + ", ".join(_q(f) for f in formats) + "]  # guessed from the first rows",
        'ambiguous = "earlier"',
        'nonexistent = "shift_forward"',
        "",
        "[id]",
    ]
    if "id" in matched.values():
        out.append('source = "column"')
    elif "document_number" in matched.values():
        out += ['source = "document_number"', 'prefix = ""  # e.g. "OLD-"']
    else:
        out += ['source = "derived"', 'prefix = "MIG-"']
    seen: dict[str, None] = {}
    for value in status_samples:
        if value and value.strip() and value.strip() not in statuses:
            seen.setdefault(value.strip(), None)
    if seen and "status" in matched.values():
        out += ["", "# Legacy status text = one of: " + ", ".join(statuses), "[values.status]"]
        for value in list(seen)[:50]:
            guess = re.sub(r"[^a-z]+", "_", value.casefold()).strip("_")
            if guess not in statuses:
                guess = next((s for s in statuses if guess.startswith(s[:6])), "")
            out.append(f"{_q(value)} = {_q(guess)}" + ("" if guess else "  # CHECK"))
    return StarterMapping("\n".join(out) + "\n", matched, unmatched, missing)
