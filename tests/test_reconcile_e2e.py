"""End-to-end: `order-import reconcile` (real CLI) against the real sandbox over HTTP."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import httpx
import pytest

from tests import support
from tests.orders_factory import order_row, write_orders

KEY = "reconcile_test_key"
CONFIG = "export_poll_seconds = 0.05\n"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run every CLI call from an empty directory holding a fast-polling config file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "order-import.toml").write_text(CONFIG, encoding="utf-8")
    return tmp_path


@pytest.fixture
def server(make_sandbox):
    """A sandbox with quick exports and no document-number uniqueness (to allow duplicates)."""
    return make_sandbox(api_key=KEY, export_delay_s=0.1, unique_document_numbers=False)


def invoke(server, *args: str):
    """Invoke the CLI in-process against the sandbox."""
    return support.invoke(server, KEY, *args)


def api(server) -> httpx.Client:
    """A direct HTTP client: changes made behind the tool's back."""
    return httpx.Client(base_url=server.base_url, auth=(KEY, ""), timeout=10)


def imported(server, workdir: Path, count: int = 8, batch: str = "b1") -> Path:
    """Import ``count`` orders with the real `run` command; returns the source file."""
    source = write_orders(workdir / "orders.csv", count)
    result = invoke(server, "run", str(source), "--batch", batch, "--quiet", "--rate", "6000")
    assert result.exit_code == 0, result.output
    return source


def reconcile(server, *more: str, batch: str = "b1"):
    """Run `reconcile` and return (result, findings rows, json document)."""
    out = Path("recon")
    result = invoke(server, "reconcile", "--batch", batch, "--out", str(out), *more)
    with (out / "reconciliation.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    document = json.loads((out / "reconciliation.json").read_text(encoding="utf-8"))
    return result, rows, document


@pytest.mark.parametrize("via", ["export", "list"])
def test_clean_batch_reconciles_clean(server, workdir, via):
    """A freshly imported batch reconciles with no finding and exit 0, via export and list."""
    imported(server, workdir)
    result, rows, document = reconcile(server, "--via", via)
    assert result.exit_code == 0, result.output
    assert rows == []
    assert document["clean"] is True
    assert document["source"] == via
    assert document["counts"]["matched"] == 8


def test_changed_deleted_and_duplicated_orders_are_each_found(server, workdir):
    """Changes behind the tool's back: a field change, a delete and a duplicate, each reported."""
    imported(server, workdir)
    with api(server) as client:
        client.post("/orders/T-000001", data={"tracking_id": "HACKED"}).raise_for_status()
        client.post("/orders/T-000002", data={"status": "returned"}).raise_for_status()
        client.post("/orders/T-000003/delete").raise_for_status()
        dup = order_row(5)
        dup["id"] = "ELSEWHERE-1"
        dup.pop("shipping_address[first_name]")
        client.post("/orders/import_order", data=dup).raise_for_status()
    result, rows, document = reconcile(server, "--via", "export")
    assert result.exit_code == 1, result.output
    found = {(r["category"], r["order_id"], r["field"], r["source_line"]) for r in rows}
    assert ("mismatch", "T-000002", "status", "4") in found
    assert ("missing", "T-000003", "", "5") in found
    assert ("duplicate", "ELSEWHERE-1", "document_number", "7") in found
    # tracking_id was never imported, so the ledger has no value to compare with: not a finding
    assert document["counts"] == {
        "expected": 8,
        "fetched": document["counts"]["fetched"],
        "matched": 6,
        "missing": 1,
        "extra": 0,
        "duplicate": 1,
        "mismatch": 1,
    }


def test_extra_order_in_the_batch_id_series_is_found(server, workdir):
    """An order with the batch's id prefix that no ledger row accounts for is an extra."""
    imported(server, workdir, count=4)
    with api(server) as client:
        extra = order_row(90)
        extra["document_number"] = "OTHER-DOC"
        client.post("/orders/import_order", data=extra).raise_for_status()
    result, rows, _ = reconcile(server, "--via", "list")
    assert result.exit_code == 1, result.output
    assert [(r["category"], r["order_id"]) for r in rows] == [("extra", "T-000090")]


def test_export_and_list_paths_agree(server, workdir):
    """The same batch with the same tampering gives the same findings through both paths."""
    imported(server, workdir)
    with api(server) as client:
        client.post(
            "/orders/T-000004", data={"shipping_address[city]": "Gdańsk"}
        ).raise_for_status()
        client.post("/orders/T-000006/delete").raise_for_status()
    _, by_export, doc_export = reconcile(server, "--via", "export")
    _, by_list, doc_list = reconcile(server, "--via", "list")
    assert doc_export["source"] == "export"
    assert doc_list["source"] == "list"
    assert by_export == by_list
    assert {(r["category"], r["order_id"], r["field"]) for r in by_list} == {
        ("mismatch", "T-000004", "shipping_address.city"),
        ("missing", "T-000006", ""),
    }


def test_unknown_batch_is_a_clear_config_error(server, workdir):
    """Reconciling a batch the ledger does not know exits 2 with one clear line."""
    imported(server, workdir, count=2)
    result = invoke(server, "reconcile", "--batch", "nope")
    assert result.exit_code == 2
    assert "no batch named 'nope'" in result.output


def test_report_html_gains_an_escaped_reconciliation_section(server, workdir):
    """reconcile re-renders report.html with its findings; data from Chargebee is escaped."""
    imported(server, workdir, count=4)
    with api(server) as client:
        client.post("/orders/T-000001", data={"status": "returned"}).raise_for_status()
        client.post(
            "/orders/T-000002", data={"shipping_address[city]": "<script>alert(1)</script>"}
        ).raise_for_status()
    result, rows, _ = reconcile(server, "--via", "list")
    assert result.exit_code == 1, result.output
    html = (Path("recon") / "report.html").read_text(encoding="utf-8")
    assert 'id="reconciliation"' in html
    assert "Reconciliation with Chargebee (findings)" in html
    assert "T-000001" in html.split('id="reconciliation"')[1]
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert any(r["order_id"] == "T-000002" for r in rows)
