"""Realistic exports of four systems, and the orders each must become (seeded, any size).

``python -m tests.exports DIR [--orders N]`` writes all four into DIR; tests import the writers:

* ``write_shopify`` — Shopify admin "Export orders" CSV: the 79-column header, one row per line
  item (continuation rows carry only Name, Email, Created at, Lineitem *, Vendor), dates
  ``2025-12-07 19:08:25 +0000``, zips with Shopify's leading ``'``, a note over 600 characters.
* ``write_woocommerce`` — WooCommerce order export (WebToffee layout: snake_case headers, one row
  per order, status slugs) saved as ``.xlsx``.
* ``write_magento`` — Magento 2 Sales › Orders grid CSV: one row per order, status labels,
  ``Mar 5, 2024 02:03:11 PM`` dates, each address one ``", "``-joined cell.
* ``write_german_erp`` — a German ERP export: cp1252, ``;``, German headers, ``DD.MM.YYYY``,
  decimal commas (``2.235,37``), countries written ``Deutschland``, ``D``, ``Österreich``,
  ``Schweiz``, and ``Genève`` in the addresses.

Each returns an ``Export``: the file, and per order that must be imported its id, status and
dates (Unix seconds), plus the rows the mapping must skip and why. Facts about each layout:
/work/shared/EXPORT_FORMATS.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
from dataclasses import dataclass, field
from pathlib import Path

UTC = dt.UTC

SHOPIFY_HEADER = [
    "Name", "Email", "Financial Status", "Paid at", "Fulfillment Status", "Fulfilled at",
    "Accepts Marketing", "Currency", "Subtotal", "Shipping", "Taxes", "Total", "Discount Code",
    "Discount Amount", "Shipping Method", "Created at", "Lineitem quantity", "Lineitem name",
    "Lineitem price", "Lineitem compare at price", "Lineitem sku", "Lineitem requires shipping",
    "Lineitem taxable", "Lineitem fulfillment status", "Billing Name", "Billing Street",
    "Billing Address1", "Billing Address2", "Billing Company", "Billing City", "Billing Zip",
    "Billing Province", "Billing Country", "Billing Phone", "Shipping Name", "Shipping Street",
    "Shipping Address1", "Shipping Address2", "Shipping Company", "Shipping City",
    "Shipping Zip", "Shipping Province", "Shipping Country", "Shipping Phone", "Notes",
    "Note Attributes", "Cancelled at", "Payment Method", "Payment Reference", "Refunded Amount",
    "Vendor", "Outstanding Balance", "Employee", "Location", "Device ID", "Id", "Tags",
    "Risk Level", "Source", "Lineitem discount", "Tax 1 Name", "Tax 1 Value", "Tax 2 Name",
    "Tax 2 Value", "Tax 3 Name", "Tax 3 Value", "Tax 4 Name", "Tax 4 Value", "Tax 5 Name",
    "Tax 5 Value", "Phone", "Receipt Number", "Duties", "Billing Province Name",
    "Shipping Province Name", "Payment ID", "Payment Terms Name", "Next Payment Due At",
    "Payment References",
]  # fmt: skip
SHOPIFY_LINE_ITEM_COLUMNS = frozenset(
    {"Name", "Email", "Created at", "Vendor", "Lineitem discount"}
    | {c for c in SHOPIFY_HEADER if c.startswith("Lineitem ")}
)

PEOPLE = [
    ("Anna", "Schmidt"), ("Jean-Luc", "Picard"), ("María José", "García"), ("Søren", "Kierkegaard"),
    ("Chloé", "Dubois"), ("Giovanni", "Rossi"), ("Emma", "de Vries"), ("Liam", "O'Brien"),
]  # fmt: skip
PLACES = [  # street, city, province code, province name, zip, country code
    ("Rue du Rhône 12", "Genève", "GE", "Geneva", "1204", "CH"),
    ("Keizersgracht 1", "Amsterdam", "NH", "North Holland", "1015 CJ", "NL"),
    ("Hauptstraße 5", "München", "BY", "Bavaria", "80331", "DE"),
    ("12 Main St", "Boston", "MA", "Massachusetts", "02108", "US"),
    ("Calle Mayor 3", "Madrid", "M", "Madrid", "28013", "ES"),
    ("Via Roma 9", "Milano", "MI", "Milan", "20121", "IT"),
]


@dataclass
class Expected:
    """An order the importer must create from an export."""

    id: str
    status: str
    order_date: int
    invoice_id: str
    city: str | None = None
    lines: int = 1


@dataclass
class Export:
    """A written export and what importing it must produce."""

    path: Path
    orders: list[Expected] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Group key or order number → the skip reason the mapping gives."""
    lines: int = 0
    """Data rows in the file."""


def _moment(rng: random.Random) -> dt.datetime:
    start = dt.datetime(2023, 1, 2, tzinfo=UTC)
    return start + dt.timedelta(seconds=rng.randrange(0, 600 * 86400))


def write_shopify(path: Path, orders: int = 12, seed: int = 7) -> Export:
    """Shopify "Export orders": several rows per order; see the module docstring."""
    rng = random.Random(seed)
    out = Export(path)
    rows: list[dict[str, str]] = []
    for n in range(orders):
        number = 1001 + n
        name = f"#{number}"
        first, last = PEOPLE[n % len(PEOPLE)]
        street, city, prov, prov_name, zip_code, country = PLACES[n % len(PLACES)]
        created = _moment(rng)
        financial = ["paid", "paid", "paid", "refunded", "pending", "voided"][n % 6]
        cancelled = financial == "refunded"
        fulfilled = not cancelled and financial == "paid" and n % 3 != 2
        partial = not cancelled and financial == "paid" and n % 3 == 2 and n % 2 == 0
        fmt = "%Y-%m-%d %H:%M:%S %z"
        fulfilled_at = (created + dt.timedelta(days=2)).strftime(fmt) if fulfilled else ""
        cancelled_at = (created + dt.timedelta(days=1)).strftime(fmt) if cancelled else ""
        status_text = "fulfilled" if fulfilled else ("partial" if partial else "unfulfilled")
        order: dict[str, str] = {c: "" for c in SHOPIFY_HEADER}
        note = ("Please ring twice. " * 40) if n == 3 else ("Gift wrap" if n % 4 == 0 else "")
        order.update(
            {
                "Name": name,
                "Email": f"{first.lower().replace(' ', '.')}@example.com",
                "Financial Status": financial,
                "Paid at": created.strftime(fmt) if financial in ("paid", "refunded") else "",
                "Fulfillment Status": status_text,
                "Fulfilled at": fulfilled_at,
                "Accepts Marketing": "no",
                "Currency": "EUR" if country != "US" else "USD",
                "Total": f"{10 + n * 7.25:.2f}",
                "Created at": created.strftime(fmt),
                "Billing Name": f"{first} {last}",
                "Billing Address1": street,
                "Billing City": city,
                "Billing Zip": ("'" + zip_code) if n % 2 == 0 else zip_code,
                "Billing Province": prov,
                "Billing Country": country,
                "Shipping Name": f"{first} {last}",
                "Shipping Street": street,
                "Shipping Address1": street,
                "Shipping City": city,
                "Shipping Zip": ("'" + zip_code) if n % 2 == 0 else zip_code,
                "Shipping Province": prov,
                "Shipping Country": country,
                "Notes": note,
                "Cancelled at": cancelled_at,
                "Id": str(5_600_000_000_000 + n),
                "Shipping Province Name": prov_name,
                "Billing Province Name": prov_name,
            }
        )
        items = 1 + n % 3
        for i in range(items):
            row = dict(order) if i == 0 else {c: "" for c in SHOPIFY_HEADER}
            if i:
                for col in SHOPIFY_LINE_ITEM_COLUMNS:
                    row[col] = order[col]
            row.update(
                {
                    "Lineitem quantity": str(1 + i),
                    "Lineitem name": f"Product {i}",
                    "Lineitem price": f"{5 + i}.00",
                    "Lineitem sku": f"SKU-{i}",
                    "Lineitem requires shipping": "true",
                    "Lineitem taxable": "true",
                    "Lineitem fulfillment status": "fulfilled" if fulfilled else "pending",
                    "Vendor": "Acme",
                }
            )
            rows.append(row)
        if financial in ("pending", "voided"):
            out.skipped[name] = "never paid: Shopify created no invoice"
            continue
        if cancelled:
            status = "cancelled"
        elif fulfilled:
            status = "delivered"
        elif partial:
            status = "partially_delivered"
        else:
            status = "awaiting_shipment"
        out.orders.append(
            Expected(f"SH-{number}", status, int(created.timestamp()), f"SH-{number}", city, items)
        )
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, SHOPIFY_HEADER)
        writer.writeheader()
        writer.writerows(rows)
    out.lines = len(rows)
    return out


WOO_HEADER = [
    "order_id", "order_number", "order_date", "paid_date", "status", "shipping_total",
    "order_total", "order_currency", "payment_method", "customer_email", "billing_first_name",
    "billing_last_name", "billing_company", "billing_email", "billing_phone", "billing_address_1",
    "billing_address_2", "billing_postcode", "billing_city", "billing_state", "billing_country",
    "shipping_first_name", "shipping_last_name", "shipping_company", "shipping_phone",
    "shipping_address_1", "shipping_address_2", "shipping_postcode", "shipping_city",
    "shipping_state", "shipping_country", "customer_note", "line_item_1", "line_item_2",
]  # fmt: skip
WOO_STATUSES = ["completed", "processing", "on-hold", "cancelled", "refunded", "pending", "failed"]


def write_woocommerce(path: Path, orders: int = 14, seed: int = 11) -> Export:
    """WooCommerce order export (WebToffee columns) as .xlsx; see the module docstring."""
    import openpyxl

    rng = random.Random(seed)
    out = Export(path)
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Orders"
    sheet.append(WOO_HEADER)
    status_of = {
        "completed": "delivered",
        "processing": "awaiting_shipment",
        "on-hold": "on_hold",
        "cancelled": "cancelled",
        "refunded": "returned",
    }
    for n in range(orders):
        number = 5000 + n
        first, last = PEOPLE[n % len(PEOPLE)]
        street, city, prov, _name, zip_code, country = PLACES[n % len(PLACES)]
        created = _moment(rng).replace(tzinfo=None)
        slug = WOO_STATUSES[n % len(WOO_STATUSES)]
        cells = {c: "" for c in WOO_HEADER}
        cells.update(
            {
                "order_id": str(900 + n),
                "order_number": str(number),
                "order_date": created.strftime("%Y-%m-%d %H:%M:%S"),
                "paid_date": created.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
                "status": slug,
                "order_total": f"{20 + n:.2f}",
                "order_currency": "EUR",
                "customer_email": f"{first.lower().replace(' ', '.')}@example.com",
                "billing_first_name": first,
                "billing_last_name": last,
                "billing_address_1": street,
                "billing_postcode": zip_code,
                "billing_city": city,
                "billing_country": country,
                "shipping_first_name": first,
                "shipping_last_name": last,
                "shipping_address_1": street,
                "shipping_postcode": zip_code,
                "shipping_city": city,
                "shipping_state": prov,
                "shipping_country": country,
                "line_item_1": "name:Mug|product_id:7|sku:MUG|quantity:1|total:9.00",
            }
        )
        values: list[object] = [cells[c] for c in WOO_HEADER]
        values[WOO_HEADER.index("order_date")] = created  # a real date cell, as Excel keeps it
        sheet.append(values)
        if slug in ("pending", "failed"):
            out.skipped[str(number)] = "never paid: WooCommerce created no invoice"
            continue
        out.orders.append(
            Expected(
                f"WC-{number}",
                status_of[slug],
                int(created.replace(tzinfo=UTC).timestamp()),
                f"WC-{number}",
                city,
            )
        )
    book.save(path)
    out.lines = orders
    return out


MAGENTO_HEADER = [
    "ID", "Purchase Point", "Purchase Date", "Bill-to Name", "Ship-to Name",
    "Grand Total (Base)", "Grand Total (Purchased)", "Status", "Billing Address",
    "Shipping Address", "Shipping Information", "Customer Email", "Customer Group", "Subtotal",
    "Shipping and Handling", "Customer Name", "Payment Method", "Total Refunded",
]  # fmt: skip
MAGENTO_STATUSES = [
    "Complete", "Processing", "On Hold", "Canceled", "Closed", "Pending Payment", "Suspected Fraud",
]  # fmt: skip


def write_magento(path: Path, orders: int = 14, seed: int = 13) -> Export:
    """Magento 2 Sales › Orders grid CSV; see the module docstring."""
    rng = random.Random(seed)
    out = Export(path)
    status_of = {
        "Complete": "delivered",
        "Processing": "awaiting_shipment",
        "On Hold": "on_hold",
        "Canceled": "cancelled",
        "Closed": "returned",
    }
    rows = []
    for n in range(orders):
        increment = f"{100000001 + n:09d}"
        first, last = PEOPLE[n % len(PEOPLE)]
        street, city, _prov, region, zip_code, country = PLACES[n % len(PLACES)]
        created = _moment(rng).replace(tzinfo=None)
        label = MAGENTO_STATUSES[n % len(MAGENTO_STATUSES)]
        address = ", ".join([street, city, region, zip_code])
        date_text = f"{created:%b} {created.day}, {created:%Y %I:%M:%S %p}"  # Mar 5, 2024 ...
        rows.append(
            {
                "ID": increment,
                "Purchase Point": "Main Website\nMain Website Store\nDefault Store View",
                "Purchase Date": date_text,
                "Bill-to Name": f"{first} {last}",
                "Ship-to Name": f"{first} {last}",
                "Grand Total (Base)": f"{30 + n:.4f}",
                "Grand Total (Purchased)": f"{30 + n:.4f}",
                "Status": label,
                "Billing Address": address,
                "Shipping Address": address,
                "Shipping Information": "Flat Rate - Fixed",
                "Customer Email": f"{first.lower().replace(' ', '.')}@example.com",
                "Customer Group": "General",
                "Subtotal": f"{25 + n:.4f}",
                "Shipping and Handling": "5.0000",
                "Customer Name": f"{first} {last}",
                "Payment Method": "checkmo",
                "Total Refunded": "",
            }
        )
        if label in ("Pending Payment", "Suspected Fraud"):
            out.skipped[increment] = "not invoiced in Magento"
            continue
        out.orders.append(
            Expected(
                f"MG-{increment}",
                status_of[label],
                int(created.replace(tzinfo=UTC).timestamp()),
                f"MG-{increment}",
                city,
            )
        )
        del country
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, MAGENTO_HEADER)
        writer.writeheader()
        writer.writerows(rows)
    out.lines = len(rows)
    return out


ERP_HEADER = [
    "Auftragsnummer", "Rechnungsnummer", "Kundennummer", "Auftragsstatus", "Auftragsdatum",
    "Lieferdatum", "Vorname", "Nachname", "Straße", "PLZ", "Ort", "Land", "Betrag", "Währung",
    "Bemerkung",
]  # fmt: skip
ERP_COUNTRIES = [("Deutschland", "Hamburg", "20095"), ("D", "Köln", "50667"),
                 ("Österreich", "Wien", "1010"), ("Schweiz", "Genève", "1204"),
                 ("Nederland", "Utrecht", "3511"), ("España", "Sevilla", "41001"),
                 ("Italia", "Torino", "10121"), ("UK", "London", "SW1A 1AA")]  # fmt: skip
ERP_STATUSES = ["Geliefert", "Versendet", "Storniert", "Offen", "Entwurf"]


def write_german_erp(path: Path, orders: int = 16, seed: int = 17) -> Export:
    """German ERP export (cp1252, ``;``, DD.MM.YYYY, decimal commas); see the module docstring."""
    rng = random.Random(seed)
    out = Export(path)
    status_of = {
        "Geliefert": "delivered",
        "Versendet": "shipped",
        "Storniert": "cancelled",
        "Offen": "awaiting_shipment",
    }
    rows = []
    for n in range(orders):
        number = f"A-{2018_0001 + n}"
        first, last = PEOPLE[n % len(PEOPLE)]
        country, city, zip_code = ERP_COUNTRIES[n % len(ERP_COUNTRIES)]
        day = dt.date(2018, 1, 3) + dt.timedelta(days=rng.randrange(0, 700))
        label = ERP_STATUSES[n % len(ERP_STATUSES)]
        amount = 1000 + n * 123.45 if n % 2 else 2235.37
        amount_text = f"{amount:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".")
        rows.append(
            [
                number,
                f"RE-{7000 + n}",
                f"K{300 + n}",
                label,
                day.strftime("%d.%m.%Y"),
                (day + dt.timedelta(days=2)).strftime("%d.%m.%Y"),
                first,
                last,
                f"Musterstraße {n + 1}",
                zip_code,
                city,
                country,
                amount_text,
                "EUR",
                "Lieferung an Nachbarn" if n % 3 == 0 else "",
            ]
        )
        if label == "Entwurf":
            out.skipped[number] = "draft (Entwurf): never invoiced"
            continue
        midnight = dt.datetime(day.year, day.month, day.day)
        berlin = midnight.replace(tzinfo=__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
        out.orders.append(
            Expected(
                f"ERP-{number}", status_of[label], int(berlin.timestamp()), f"RE-{7000 + n}", city
            )
        )
    with path.open("w", encoding="cp1252", newline="") as fh:
        writer = csv.writer(fh, delimiter=";")
        writer.writerow(ERP_HEADER)
        writer.writerows(rows)
    out.lines = len(rows)
    return out


WRITERS = {
    "shopify_orders.csv": write_shopify,
    "woocommerce_orders.xlsx": write_woocommerce,
    "magento_orders.csv": write_magento,
    "erp_auftraege.csv": write_german_erp,
}


def main() -> None:
    """Write the four exports into a directory (sizes for a benchmark or a demo)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--orders", type=int, default=50)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, write in WRITERS.items():
        export = write(args.out / name, args.orders)
        print(f"{export.path}: {export.lines} rows, {len(export.orders)} orders to import")


if __name__ == "__main__":
    main()
