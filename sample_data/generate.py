"""Generate the sample legacy exports (seeded, reproducible): ``python -m sample_data.generate``.

Writes legacy_orders.csv (600 valid orders, human headers, Berlin local times), the same data as
legacy_orders.xlsx, legacy_orders_with_errors.csv (known injected errors, counted in
tests/test_prepare.py) and api_columns.csv (API parameter names, no mapping needed).
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
SEED = 20230405
ORDERS = 600
BERLIN = ZoneInfo("Europe/Berlin")

HEADER = [
    "Order #",
    "Invoice No",
    "Customer ID",
    "Status",
    "Order Date",
    "Ship Date",
    "Created",
    "Shipped On",
    "Delivered On",
    "Cancelled On",
    "Tracking #",
    "Carrier",
    "Notes",
    "Credits (cents)",
    "Ship To First Name",
    "Ship To Last Name",
    "Ship To Email",
    "Ship To Street",
    "Ship To City",
    "Ship To State",
    "Ship To Zip",
    "Ship To Country",
]
STATUSES = [
    ("Shipped", 30),
    ("Delivered", 35),
    ("Awaiting Shipment", 6),
    ("On Hold", 3),
    ("Queued", 5),
    ("Returned", 4),
    ("Partially Delivered", 3),
    ("Cancelled - customer request", 8),
    ("Cancelled - out of stock", 4),
    ("Cancelled - fraud", 2),
]
PEOPLE = [
    ("Zoë", "Müller"),
    ("François", "Lefèvre"),
    ("José", "Núñez"),
    ("Åsa", "Ångström"),
    ("Søren", "Kierkegård"),
    ("Mary", "O'Neil"),
    ("Chloé", "Dubois"),
    ("Jürgen", "Weiß"),
    ("Ana", "Conceição"),
    ("Liam", "Murphy"),
    ("Emily", "Smith"),
    ("Hiroshi", "Tanaka"),
]
PLACES = [
    ("Hauptstraße 12", "München", "Bayern", "80331", "DE"),
    ("Rue de la Paix 5", "Paris", "Île-de-France", "75002", "FR"),
    ("Calle Mayor 3", "Madrid", "Madrid", "28013", "ES"),
    ("Drottninggatan 7", "Göteborg", "Västra Götaland", "41103", "SE"),
    ("12 Beacon St", "Boston", "MA", "02108", "US"),
    ("1 Main Street", "Cork", "Cork", "T12 X2Y3", "IE"),
    ("5th Avenue 350", "New York", "NY", "10118", "US"),
    ("Keizersgracht 1", "Amsterdam", "Noord-Holland", "1015 CJ", "NL"),
    ("Praça do Comércio", "Lisboa", "Lisboa", "1100-148", "PT"),
    ("221B Baker Street", "London", "Greater London", "NW1 6XE", "GB"),
]
CARRIERS = ["DHL", "UPS", "FedEx", "La Poste", "Correos"]


def _local(moment: dt.datetime) -> str:
    return moment.strftime("%d/%m/%Y %H:%M")


def orders(rng: random.Random) -> list[dict[str, str]]:
    """600 valid legacy orders (wall-clock Berlin times, day-first dates)."""
    statuses = [s for s, _ in STATUSES]
    weights = [w for _, w in STATUSES]
    rows: list[dict[str, str]] = []
    start = dt.datetime(2021, 1, 4, 8, 0)
    for n in range(ORDERS):
        status = rng.choices(statuses, weights)[0]
        ordered = start + dt.timedelta(minutes=rng.randint(0, 3 * 365 * 24 * 60))
        ordered = ordered.replace(second=0)
        ship = ordered + dt.timedelta(hours=rng.randint(2, 96))
        first, last = rng.choice(PEOPLE)
        street, city, state, zip_code, country = rng.choice(PLACES)
        shipped = delivered = cancelled = ""
        tracking = carrier = ""
        if status in ("Shipped", "Delivered", "Returned", "Partially Delivered"):
            shipped_at = ship + dt.timedelta(hours=rng.randint(0, 12))
            shipped = _local(shipped_at)
            tracking = f"{rng.randint(10**11, 10**12 - 1)}"
            carrier = rng.choice(CARRIERS)
            if status != "Shipped":
                delivered = _local(shipped_at + dt.timedelta(days=rng.randint(1, 6)))
        if status.startswith("Cancelled"):
            cancelled = _local(ordered + dt.timedelta(hours=rng.randint(1, 30)))
        note = rng.choice(["", "", "Gift wrap, please", "Leave at the door — merci!", "Call first"])
        credits = str(rng.choice([0, 0, 0, 500, 1250])) if status == "Returned" else ""
        rows.append(
            {
                "Order #": str(10001 + n),
                "Invoice No": f"INV-{200000 + n:06d}",
                "Customer ID": f"CUST-{rng.randint(1, 180):05d}",
                "Status": status,
                "Order Date": _local(ordered),
                "Ship Date": _local(ship),
                "Created": _local(ordered),
                "Shipped On": shipped,
                "Delivered On": delivered,
                "Cancelled On": cancelled,
                "Tracking #": tracking,
                "Carrier": carrier,
                "Notes": note,
                "Credits (cents)": credits,
                "Ship To First Name": first,
                "Ship To Last Name": last,
                "Ship To Email": f"{first}.{last}@example.com".lower().replace("'", ""),
                "Ship To Street": street,
                "Ship To City": city,
                "Ship To State": state,
                "Ship To Zip": zip_code,
                "Ship To Country": country,
            }
        )
    return rows


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_errors(base: list[dict[str, str]], path: Path) -> None:
    """The first 100 orders with known errors injected (counts pinned in tests/test_prepare.py).

    Injected: 3 unknown statuses (enum), 2 empty invoice numbers (required), 2 impossible dates
    (date), 2 ship dates before the order date (date_order), 1 unknown country name
    (country), 2 bad emails (email), 1 repeated order number (duplicate_row_key), 1 note over
    600 characters (max_length), 1 credit with decimals (integer), 1 row with an extra cell
    (ragged_row) and 1 US zip that lost its leading zero (leading_zero, a warning): 16 invalid
    rows, 16 errors, 1 warning.
    """
    rows = [dict(r) for r in base[:100]]
    for i in (3, 17, 42):
        rows[i]["Status"] = "Lost in transit"
    for i in (5, 60):
        rows[i]["Invoice No"] = ""
    rows[8]["Order Date"] = "31/02/2023 10:00"
    rows[9]["Ship Date"] = "2023-13-45"
    for i in (11, 12):
        rows[i]["Ship Date"] = "01/01/2020 00:00"
        rows[i]["Created"] = "01/01/2020 00:00"
    rows[20]["Ship To Country"] = "Narnia"  # not a country name in any language
    rows[21]["Ship To Email"] = "not-an-email"
    rows[22]["Ship To Email"] = "anna@@example"
    rows[30]["Order #"] = rows[29]["Order #"]
    rows[33]["Notes"] = "x" * 601
    rows[34]["Status"] = "Returned"
    rows[34]["Credits (cents)"] = "12.50"
    rows[50].update({"Ship To Country": "US", "Ship To Zip": "2108", "Ship To State": "MA"})
    table = [[r[h] for h in HEADER] for r in rows]
    table[70] = [*table[70], "stray cell"]
    _write_csv(path, HEADER, table)


def write_api_columns(path: Path, rng: random.Random) -> None:
    """60 orders already in API form: bracket/dot params, Unix seconds and ISO 8601 dates."""
    header = [
        "id",
        "document_number",
        "invoice_id",
        "status",
        "created_at",
        "order_date",
        "shipping_date",
        "shipped_at",
        "delivered_at",
        "shipping_address[first_name]",
        "shipping_address[last_name]",
        "shipping_address[city]",
        "shipping_address.country",
        "shipping_address[zip]",
    ]
    rows = []
    for n in range(60):
        ordered = dt.datetime(2022, 3, 1, 9, 0, tzinfo=dt.UTC) + dt.timedelta(hours=13 * n)
        ship = ordered + dt.timedelta(days=1)
        first, last = rng.choice(PEOPLE)
        _, city, _, zip_code, country = rng.choice(PLACES)
        rows.append(
            [
                f"API-{5001 + n}",
                f"API{5001 + n}",
                f"INV-API-{5001 + n}",
                "delivered",
                str(int(ordered.timestamp())),
                ordered.isoformat(),
                ship.astimezone(BERLIN).isoformat(),
                (ship + dt.timedelta(hours=2)).isoformat(),
                (ship + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                first,
                last,
                city,
                country,
                zip_code,
            ]
        )
    _write_csv(path, header, rows)


def write_xlsx(base: list[dict[str, str]], path: Path) -> None:
    """Same orders as a workbook: ids as text, dates as real date cells, credits as numbers."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Orders"
    ws.append(HEADER)
    date_cols = {"Order Date", "Ship Date", "Created", "Shipped On", "Delivered On", "Cancelled On"}
    for row in base:
        cells: list[object] = []
        for h in HEADER:
            value = row[h]
            if h in date_cols and value:
                cells.append(dt.datetime.strptime(value, "%d/%m/%Y %H:%M"))
            elif h == "Credits (cents)" and value:
                cells.append(int(value))
            else:
                cells.append(value)
        ws.append(cells)
    for col in ws.iter_cols(min_row=2):
        for cell in col:
            if isinstance(cell.value, dt.datetime):
                cell.number_format = "dd/mm/yyyy hh:mm"
    wb.properties.created = dt.datetime(2024, 1, 1)
    wb.save(path)


def main() -> None:
    """Write every sample file into sample_data/."""
    rng = random.Random(SEED)
    base = orders(rng)
    _write_csv(HERE / "legacy_orders.csv", HEADER, [[r[h] for h in HEADER] for r in base])
    write_xlsx(base, HERE / "legacy_orders.xlsx")
    write_errors(base, HERE / "legacy_orders_with_errors.csv")
    write_api_columns(HERE / "api_columns.csv", rng)


if __name__ == "__main__":
    main()
