"""Reconcile compares values by field type: text stays text, ids as strings, times as seconds.

Issue 12: every all-digit value used to be compared as ``int(float(x))``, so ``02108`` matched
``2108`` and two different 20-digit ids matched. Unit tests pin each kind; two end-to-end tests
reproduce the findings with the real CLI against the real sandbox.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import httpx
import pytest

from pipeline.params import normal_value, ours_theirs, same_value, value_kind
from pipeline.reconcile.compare import Expected, compare
from tests import support
from tests.orders_factory import HEADER, order_row

KEY = "values_test_key"


def test_each_field_compares_by_its_kind():
    """Text keeps leading zeros; ids are exact strings; timestamps any notation; amounts decimal."""
    assert value_kind("shipping_address.zip") == "text"
    assert value_kind("shipping_address[zip]") == "text"
    assert value_kind("invoice_id") == "id"
    assert value_kind("order_date") == "timestamp"
    assert value_kind("refundable_credits_issued") == "amount"
    assert not same_value("shipping_address.zip", "02108", "2108")
    assert not same_value("note", "007", "7")
    assert not same_value("invoice_id", "12345678901234567890", "12345678901234567891")
    assert not same_value("document_number", "1.0", "1")
    assert same_value("order_date", 1672531200, "2023-01-01T00:00:00Z")
    assert same_value("order_date", "1672531200.0", "1672531200")
    assert not same_value("order_date", "1672531200", "1672531201")
    assert same_value("refundable_credits_issued", "100", "100.00")
    assert same_value("total", 100, "1E2")
    assert not same_value("total", "100", "100.01")
    assert same_value("deleted", True, "true")
    assert same_value("status", " shipped ", "shipped")
    assert normal_value("note", "   ") is None


def test_messages_show_ours_and_theirs_and_never_none():
    """Every mismatch message names both values; an absent value reads (empty), not None."""
    assert ours_theirs("status", "delivered", "shipped") == (
        "status: ours 'delivered', theirs 'shipped'"
    )
    item = Expected("k1", 2, "A-1", {"id": "A-1", "status": "shipped", "note": "hello"})
    result = compare([item], [{"id": "A-1", "status": "returned"}])
    messages = [f.message for f in result.findings]
    assert messages == [
        "status: ours 'shipped', theirs 'returned'",
        "note: ours 'hello', theirs (empty)",
    ]
    assert all("None" not in m for m in messages)


def test_twenty_digit_document_numbers_that_differ_are_not_duplicates():
    """Two orders whose 20-digit document numbers differ in the last digit are two orders."""
    item = Expected("k1", 2, "A-1", {"id": "A-1", "document_number": "12345678901234567890"})
    fetched = [
        {"id": "A-1", "document_number": "12345678901234567890"},
        {"id": "X-9", "document_number": "12345678901234567891"},
    ]
    result = compare([item], fetched)
    assert result.counts["duplicate"] == 0
    assert result.matched == 1
    same = compare([item], [*fetched, {"id": "X-8", "document_number": "12345678901234567890"}])
    assert [(f.category, f.order_id) for f in same.findings] == [("duplicate", "X-8")]


# -- end to end: the real CLI against the real sandbox ----------------------------------------


@pytest.fixture
def server(make_sandbox):
    """A sandbox allowing duplicate document numbers, with quick exports."""
    return make_sandbox(api_key=KEY, export_delay_s=0.05, unique_document_numbers=False)


def invoke(server, *args: str):
    """The CLI in-process against the sandbox."""
    return support.invoke(server, KEY, *args)


def write(path: Path, rows: list[dict[str, str]]) -> Path:
    """An API-column CSV with a zip column."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*HEADER, "shipping_address[zip]"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def reconcile_rows(server, via: str) -> tuple[int, list[dict[str, str]]]:
    """Run `reconcile` and read reconciliation.csv."""
    result = invoke(server, "reconcile", "--batch", "b1", "--via", via, "--out", "recon")
    with open("recon/reconciliation.csv", encoding="utf-8", newline="") as handle:
        return result.exit_code, list(csv.DictReader(handle))


@pytest.mark.parametrize("via", ["export", "list"])
def test_a_zip_code_losing_its_leading_zero_is_a_mismatch(server, tmp_path, monkeypatch, via):
    """02108 imported, changed to 2108 behind the tool's back: one mismatch, ours and theirs."""
    monkeypatch.chdir(tmp_path)
    Path("order-import.toml").write_text("export_poll_seconds = 0.05\n", encoding="utf-8")
    rows = [{**order_row(i), "shipping_address[zip]": "02108"} for i in range(2)]
    source = write(tmp_path / "orders.csv", rows)
    ran = invoke(server, "run", str(source), "--batch", "b1", "--quiet")
    assert ran.exit_code == 0, ran.output
    with httpx.Client(base_url=server.base_url, auth=(KEY, ""), timeout=10) as client:
        client.post("/orders/T-000001", data={"shipping_address[zip]": "2108"}).raise_for_status()
    code, findings = reconcile_rows(server, via)
    assert code == 1
    seen = [
        tuple(f[c] for c in ("category", "order_id", "field", "expected", "actual"))
        for f in findings
    ]
    assert seen == [("mismatch", "T-000001", "shipping_address.zip", "02108", "2108")]
    assert findings[0]["message"] == "shipping_address.zip: ours '02108', theirs '2108'"


def test_an_order_with_a_neighbouring_20_digit_document_number_is_no_duplicate(
    server, tmp_path, monkeypatch
):
    """Another order whose 20-digit document number differs in the last digit is not reported."""
    monkeypatch.chdir(tmp_path)
    row = {**order_row(1), "document_number": "12345678901234567890"}
    ran = invoke(server, "run", str(write(tmp_path / "o.csv", [row])), "--batch", "b1", "-q")
    assert ran.exit_code == 0, ran.output
    other = {**order_row(2), "id": "ELSEWHERE-1", "document_number": "12345678901234567891"}
    with httpx.Client(base_url=server.base_url, auth=(KEY, ""), timeout=10) as client:
        client.post("/orders/import_order", data=other).raise_for_status()
    code, findings = reconcile_rows(server, "list")
    assert findings == []
    assert code == 0


def test_a_conflict_shows_ours_and_theirs_per_field(server, tmp_path, monkeypatch):
    """An order already in Chargebee with other values: the conflict names both, never None."""
    monkeypatch.chdir(tmp_path)
    theirs = {**order_row(1), "shipping_address[city]": "Berlin", "shipping_address[zip]": ""}
    with httpx.Client(base_url=server.base_url, auth=(KEY, ""), timeout=10) as client:
        held = {k: v for k, v in theirs.items() if v}
        client.post("/orders/import_order", data=held).raise_for_status()
    rows = [{**order_row(1), "shipping_address[zip]": "02108"}]
    ran = invoke(server, "run", str(write(tmp_path / "o.csv", rows)), "--batch", "b1", "-q")
    assert ran.exit_code != 0
    with open("reports/b1/failures.csv", encoding="utf-8", newline="") as handle:
        (failure,) = list(csv.DictReader(handle))
    message = failure["oi:message"] if "oi:message" in failure else json.dumps(failure)
    assert "shipping_address[city]: ours 'Kraków', theirs 'Berlin'" in message
    assert "None" not in message
