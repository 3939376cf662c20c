"""Contract tests of order exports: lifecycle, zip of CSV download, filters, the 5-job cap."""

from __future__ import annotations

import csv
import io
import time
import zipfile
from typing import Any

import httpx
import pytest

from sandbox.exports import CSV_COLUMNS

IMPORT = "/orders/import_order"


def _client(sb) -> httpx.Client:
    return httpx.Client(base_url=sb.base_url, auth=(sb.api_key, ""), timeout=10)


def _wait_completed(client: httpx.Client, export_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        export: dict[str, Any] = client.get(f"/exports/{export_id}").json()["export"]
        if export["status"] == "completed":
            return export
        time.sleep(0.05)
    raise AssertionError(f"export {export_id} never completed")


def _rows(url: str) -> list[dict[str, str]]:
    response = httpx.get(url)  # public URL: no auth
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = archive.namelist()
        assert names == ["orders.csv"]
        text = archive.read("orders.csv").decode("utf-8")
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    return list(reader)


def test_export_lifecycle_and_download(make_sandbox, valid_order):
    """An export is in_process, then completed with a download URL valid 4 h to a zip of CSV."""
    sb = make_sandbox(export_delay_s=0.3)
    with _client(sb) as client:
        params = valid_order(
            document_number="OLD1",
            note='has "quotes", commas\nand a newline',
            **{"shipping_address[city]": "Zürich", "shipping_address[country]": "CH"},
        )
        client.post(IMPORT, data=params)
        client.post(IMPORT, data=valid_order(status="queued"))
        started = client.post("/exports/orders").json()["export"]
        assert started["status"] == "in_process"
        assert started["mime_type"] == "zip"
        assert "download" not in started
        assert client.get(f"/exports/{started['id']}").json()["export"]["status"] == "in_process"
        done = _wait_completed(client, started["id"])
        assert done["download"]["valid_till"] == pytest.approx(time.time() + 4 * 3600, abs=5)
        rows = _rows(done["download"]["download_url"])
    assert [row["id"] for row in rows] == [params["id"], "ORD-2"]
    first = rows[0]
    assert first["document_number"] == "OLD1"
    assert first["note"] == params["note"]
    assert first["shipping_address_city"] == "Zürich"
    assert first["created_at"] == "1600000000"
    assert first["deleted"] == "false"


def test_export_filters(make_sandbox, valid_order):
    """order[status][is] and order[id][in] filters select the exported orders."""
    sb = make_sandbox(export_delay_s=0)
    with _client(sb) as client:
        for status in ("queued", "shipped", "shipped", "delivered"):
            client.post(IMPORT, data=valid_order(status=status))
        shipped = client.post("/exports/orders", data={"order[status][is]": "shipped"}).json()
        export = _wait_completed(client, shipped["export"]["id"])
        assert [r["id"] for r in _rows(export["download"]["download_url"])] == ["ORD-2", "ORD-3"]
        picked = client.post("/exports/orders", data={"order[id][in]": '["ORD-1","ORD-4"]'}).json()
        export = _wait_completed(client, picked["export"]["id"])
        assert [r["id"] for r in _rows(export["download"]["download_url"])] == ["ORD-1", "ORD-4"]


@pytest.mark.parametrize(
    "param", ["order[created_at][after]", "order[invoice_id][is]", "status[is]", "order[id][gt]"]
)
def test_export_rejects_undocumented_filters(sandbox_client, param):
    """Filters the orders export does not document (created_at, invoice_id...) are 400."""
    response = sandbox_client.post("/exports/orders", data={param: "1"})
    assert response.status_code == 400
    assert response.json()["param"] == param


def test_sixth_running_export_is_429(make_sandbox):
    """Five exports may run at once; the sixth is 429 api_request_limit_exceeded + Retry-After."""
    sb = make_sandbox(export_delay_s=30)
    with _client(sb) as client:
        for _ in range(5):
            assert client.post("/exports/orders").status_code == 200
        sixth = client.post("/exports/orders")
    assert sixth.status_code == 429
    body = sixth.json()
    assert (body["type"], body["api_error_code"]) == (
        "operation_failed",
        "api_request_limit_exceeded",
    )
    assert 25 <= int(sixth.headers["retry-after"]) <= 30


def test_completed_exports_free_their_slot(make_sandbox):
    """Once running exports complete, new ones can start again."""
    sb = make_sandbox(export_delay_s=1.5, max_exports_in_process=2)  # > a loaded machine's gap
    with _client(sb) as client:
        ids = [client.post("/exports/orders").json()["export"]["id"] for _ in range(2)]
        assert client.post("/exports/orders").status_code == 429
        for export_id in ids:
            _wait_completed(client, export_id)
        assert client.post("/exports/orders").status_code == 200


def test_unknown_export_and_download_are_404(sandbox, sandbox_client):
    """Unknown export ids are 404 resource_not_found; unknown download tokens are 404."""
    response = sandbox_client.get("/exports/Export_nope")
    assert (response.status_code, response.json()["api_error_code"]) == (404, "resource_not_found")
    assert httpx.get(f"{sandbox.root_url}/__sandbox/downloads/nope.zip").status_code == 404


def test_export_excludes_deleted_orders(make_sandbox, valid_order):
    """Deleted orders are not exported (sandbox choice, documented)."""
    sb = make_sandbox(export_delay_s=0)
    with _client(sb) as client:
        client.post(IMPORT, data=valid_order())
        client.post(IMPORT, data=valid_order())
        client.post("/orders/ORD-1/delete")
        export = _wait_completed(client, client.post("/exports/orders").json()["export"]["id"])
        assert [r["id"] for r in _rows(export["download"]["download_url"])] == ["ORD-2"]


def test_export_number_presence_and_boolean_filters(make_sandbox, valid_order):
    """total/refundable_credits_issued number filters, is_present and is_resent work on exports."""
    sb = make_sandbox(export_delay_s=0)
    with _client(sb) as client:
        client.post(IMPORT, data=valid_order(refundable_credits_issued="500"))
        client.post(IMPORT, data=valid_order(subscription_id="sub_1"))

        def exported(filters: dict[str, Any]) -> list[str]:
            started = client.post("/exports/orders", data=filters)
            assert started.status_code == 200, started.text
            export = _wait_completed(client, started.json()["export"]["id"])
            return [r["id"] for r in _rows(export["download"]["download_url"])]

        assert exported({"order[refundable_credits_issued][gte]": "100"}) == ["ORD-1"]
        assert exported({"total[between]": "[0,10]"}) == ["ORD-1", "ORD-2"]
        assert exported({"order[subscription_id][is_present]": "true"}) == ["ORD-2"]
        assert exported({"order[is_resent][is]": "false"}) == ["ORD-1", "ORD-2"]
        for bad in ({"total[between]": "[1]"}, {"total[gt]": "x"}, {"order[is_resent][is]": "1"}):
            assert client.post("/exports/orders", data=bad).status_code == 400
