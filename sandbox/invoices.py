"""Invoices the sandbox knows: seeded from a CSV file (or generated), listed and retrieved.

Seeded (a seed file, ``--strict-invoices`` or ``--generate-invoices``): only those invoices exist;
import refuses the others and orders take currency and totals from theirs. Not seeded (default):
every invoice id exists, answered as a made-up invoice (USD, total 0, no customer), so a
client's pre-flight passes as it would on a site where the invoices were imported.

Seed file: CSV, UTF-8 (BOM tolerated), a header naming ``id`` and optionally ``customer_id,
subscription_id, currency_code, total`` (integer minor units); blanks allowed except ``id``;
other columns ignored. A bad file raises ``SeedError`` naming file, line and column.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SEED_COLUMNS = ("id", "customer_id", "subscription_id", "currency_code", "total")
"""Columns a seed file may have (``id`` required); others are ignored."""
DEFAULT_CURRENCY = "USD"
"""Currency of an invoice whose seed row leaves it blank, and of made-up invoices."""
INVOICE_STATUS = "paid"
"""Status every sandbox invoice carries (imported historical invoices are usually paid)."""
GENERATED_CURRENCIES = ("USD", "EUR", "GBP")
_MAX_LENGTH = {"id": 50, "customer_id": 50, "subscription_id": 50}
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_TOTAL = re.compile(r"^\d{1,15}$")


class SeedError(ValueError):
    """A seed file the sandbox cannot use; the message names file, line and column."""


def generated_id(n: int) -> str:
    """The id of the ``n``-th generated invoice (``INV-000000``, ``INV-000001``, ...)."""
    return f"INV-{n:06d}"


def generated(count: int, date: int) -> list[dict[str, Any]]:
    """``count`` deterministic invoices: ids ``INV-000000``.., currency cycling USD/EUR/GBP,
    total ``(n * 1237) % 100000 + 100`` minor units, no customer."""
    return [
        invoice(
            generated_id(n),
            date,
            currency_code=GENERATED_CURRENCIES[n % len(GENERATED_CURRENCIES)],
            total=(n * 1237) % 100_000 + 100,
        )
        for n in range(count)
    ]


def invoice(
    invoice_id: str,
    date: int,
    *,
    customer_id: str | None = None,
    subscription_id: str | None = None,
    currency_code: str | None = None,
    total: int | None = None,
) -> dict[str, Any]:
    """An Invoice resource (absent customer/subscription left out, as Chargebee does)."""
    body: dict[str, Any] = {"id": invoice_id}
    if customer_id:
        body["customer_id"] = customer_id
    if subscription_id:
        body["subscription_id"] = subscription_id
    body.update(
        {
            "currency_code": currency_code or DEFAULT_CURRENCY,
            "total": total if total is not None else 0,
            "status": INVOICE_STATUS,
            "date": date,
            "object": "invoice",
        }
    )
    return body


def read_ids_file(path: str, date: int) -> list[dict[str, Any]]:
    """The legacy ``--strict-invoices`` file: one id a line, blanks and ``#`` comments skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except OSError as err:
        raise SeedError(f"{path}: cannot read: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise SeedError(f"{path}: not UTF-8 text ({err.reason})") from err
    ids = (s for s in (line.strip() for line in lines) if s and not s.startswith("#"))
    return [invoice(i, date) for i in dict.fromkeys(ids)]


def read_seed(path: str, date: int) -> list[dict[str, Any]]:
    """Parse a seed CSV file into invoices, in file order.

    Raises:
        SeedError: unreadable, not UTF-8, no ``id`` column, a blank or duplicate id, a total
            that is not a non-negative integer, a currency that is not 3 capital letters, a value
            over its length, or a row with more cells than the header.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise SeedError(f"{path}: cannot read: {err.strerror or err}") from err
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise SeedError(f"{path}: line {line}: not UTF-8 text (save the file as UTF-8)") from err
    return list(_rows(path, text, date))


def _rows(path: str, text: str, date: int) -> Iterable[dict[str, Any]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise SeedError(f"{path}: line 1: empty file; the header must name the id column")
        names = [cell.strip() for cell in header]
        for i, name in enumerate(names):
            if name in SEED_COLUMNS and names.index(name) != i:
                raise SeedError(f"{path}: line 1, column {name}: the column appears twice")
        if "id" not in names:
            raise SeedError(
                f"{path}: line 1: no id column (header: {','.join(SEED_COLUMNS)}; found "
                f"{','.join(names)})"
            )
        where = {name: names.index(name) for name in SEED_COLUMNS if name in names}
        seen: dict[str, int] = {}
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(names):
                raise SeedError(
                    f"{path}: line {line}: {len(cells)} cells but the header has {len(names)}"
                )
            row = {name: cells[i].strip() if i < len(cells) else "" for name, i in where.items()}
            yield _invoice(path, line, row, seen, date)
    except csv.Error as err:
        raise SeedError(f"{path}: line {reader.line_num}: not valid CSV ({err})") from err


def _invoice(
    path: str, line: int, row: dict[str, str], seen: dict[str, int], date: int
) -> dict[str, Any]:
    def bad(column: str, detail: str) -> SeedError:
        return SeedError(f"{path}: line {line}, column {column}: {detail}")

    invoice_id = row["id"]
    if not invoice_id:
        raise bad("id", "blank invoice id")
    if invoice_id in seen:
        raise bad("id", f"duplicate invoice id {invoice_id!r} (first on line {seen[invoice_id]})")
    seen[invoice_id] = line
    for column, limit in _MAX_LENGTH.items():
        if len(row.get(column, "")) > limit:
            raise bad(column, f"longer than {limit} characters")
    currency = row.get("currency_code", "")
    if currency and not _CURRENCY.match(currency):
        raise bad("currency_code", f"{currency!r} is not a 3-letter code like USD")
    total = row.get("total", "")
    if total and not _TOTAL.match(total):
        raise bad("total", f"{total!r} is not a whole number of minor units (e.g. 1999)")
    return invoice(
        invoice_id,
        date,
        customer_id=row.get("customer_id"),
        subscription_id=row.get("subscription_id"),
        currency_code=currency or None,
        total=int(total) if total else None,
    )


class Invoices:
    """The invoices of one sandbox: seeded ones by id (insertion order), or made up on demand.

    Args:
        date: ``date`` given to made-up invoices (the sandbox's start time).
    """

    def __init__(self, date: int) -> None:
        self.date = date
        self.seeded = False
        self.by_id: dict[str, dict[str, Any]] = {}
        self.ids: list[str] = []

    def seed(self, invoices: Iterable[dict[str, Any]], *, replace: bool = True) -> None:
        """Add invoices and switch to seeded mode; ``replace=False`` keeps ones already known."""
        self.seeded = True
        for inv in invoices:
            oid = inv["id"]
            old = self.by_id.get(oid)
            if old is None:
                self.ids.append(oid)
            elif not replace:
                continue
            else:
                inv = {**inv, "date": old["date"]}  # first seen: its date stays put
            self.by_id[oid] = inv

    def restore(self, invoices: Iterable[dict[str, Any]]) -> None:
        """Invoices from the state file: add the ones not seeded again, and give the ones seeded
        again the ``date`` they had first (the seed file's values win otherwise)."""
        self.seeded = True
        for inv in invoices:
            current = self.by_id.get(inv["id"])
            if current is None:
                self.ids.append(inv["id"])
                self.by_id[inv["id"]] = inv
            else:
                current["date"] = inv["date"]

    def get(self, invoice_id: str) -> dict[str, Any] | None:
        """The invoice with this id; unseeded, a made-up one for any id."""
        if self.seeded:
            return self.by_id.get(invoice_id)
        # what invoice(invoice_id, self.date) gives, keys in its order (pre-flight asks for
        # 100 a page)
        return {
            "id": invoice_id,
            "currency_code": DEFAULT_CURRENCY,
            "total": 0,
            "status": INVOICE_STATUS,
            "date": self.date,
            "object": "invoice",
        }

    def snapshot(self) -> dict[str, Any]:
        """What the state file keeps (seeded invoices survive restarts)."""
        return {
            "invoices_seeded": self.seeded,
            "invoices": [self.by_id[i] for i in self.ids],
        }
