"""The official chargebee-python SDK (3.x), a client nobody here wrote, driven against the sandbox.

If the SDK can import, retrieve, update, page, export, replay and raise its own error classes
against the sandbox, the sandbox speaks Chargebee's wire format (paths, form encoding, JSON shapes,
error bodies, headers) and not just our own client's idea of it.
"""

from __future__ import annotations

import io
import uuid
import zipfile
from typing import Any

import httpx
import pytest
from chargebee import Chargebee, InvalidRequestError, OperationFailedError
from chargebee.api_error import APIError


def _sdk(sb, monkeypatch, api_key: str | None = None) -> Chargebee:
    # FACTS §2.4: update_protocol("http") alone is ignored; the class attribute decides the scheme.
    monkeypatch.setattr(Chargebee, "verify_ca_certs", False)
    cb = Chargebee(
        api_key=api_key or sb.api_key,
        site="127",
        chargebee_domain=f"0.0.1:{sb.port}",
        protocol="http",
    )
    cb.update_export_retry_delay_ms(50)
    assert cb.env.api_endpoint == sb.base_url
    return cb


def _params(n: int, **extra) -> dict[str, Any]:
    return {
        "id": f"SDK-{n}",
        "invoice_id": f"INV-{n}",
        "status": "delivered",
        "created_at": 1600000000 + n,
        "order_date": 1600000000,
        "shipping_date": 1600086400,
        **extra,
    }


def test_sdk_import_retrieve_update(sandbox, monkeypatch):
    """Order.import_order, Order.retrieve and Order.update round-trip through the SDK's models."""
    cb = _sdk(sandbox, monkeypatch)
    imported = cb.Order.import_order(
        _params(1, shipping_address={"city": "Berlin", "country": "DE"}, document_number="OLD1")
    ).order
    assert (imported.id, imported.status, imported.document_number) == (
        "SDK-1",
        "delivered",
        "OLD1",
    )
    assert imported.shipping_address.city == "Berlin"
    fetched = cb.Order.retrieve("SDK-1").order
    assert fetched.invoice_id == "INV-1"
    item_id = fetched.order_line_items[0].id
    updated = cb.Order.update(
        "SDK-1",
        {
            "status": "returned",
            "tracking_id": "TRK-9",
            "order_line_items": [{"id": item_id, "status": "returned"}],
        },
    ).order
    assert (updated.status, updated.tracking_id) == ("returned", "TRK-9")
    assert updated.order_line_items[0].status == "returned"
    assert updated.status_update_at > fetched.status_update_at


def test_sdk_list_paging_and_filters(sandbox, monkeypatch):
    """Order.list pages with next_offset until it is absent; SDK filter encoding is understood."""
    cb = _sdk(sandbox, monkeypatch)
    for n in range(7):
        cb.Order.import_order(_params(n, status="shipped" if n % 2 else "queued"))
    seen, offset = [], None
    for _ in range(10):
        params = {"limit": 3, "sort_by": {"asc": "created_at"}}
        if offset:
            params["offset"] = offset
        page = cb.Order.list(params)
        seen += [entry.order.id for entry in page.list]
        offset = page.next_offset
        if not offset:
            break
    assert seen == [f"SDK-{n}" for n in range(7)]
    shipped = cb.Order.list({"status": {"is": "shipped"}, "limit": 100})
    assert [e.order.id for e in shipped.list] == ["SDK-1", "SDK-3", "SDK-5"]
    picked = cb.Order.list({"id": {"in": ["SDK-2", "SDK-4"]}, "limit": 100})
    assert sorted(e.order.id for e in picked.list) == ["SDK-2", "SDK-4"]


def test_sdk_export_and_download(make_sandbox, monkeypatch):
    """Export.orders + wait_for_export_completion give a download URL to a zip of orders.csv."""
    sb = make_sandbox(export_delay_s=0.2)
    cb = _sdk(sb, monkeypatch)
    cb.Order.import_order(_params(1))
    cb.Order.import_order(_params(2, status="queued"))
    started = cb.Export.orders({"order": {"status": {"is": "delivered"}}}).export
    assert started.status == "in_process"
    done = cb.Export.wait_for_export_completion(started).export
    assert done.status == "completed"
    response = httpx.get(done.download.download_url)
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        lines = archive.read("orders.csv").decode().splitlines()
    assert lines[0].startswith("id,document_number,invoice_id")
    assert [line.split(",")[0] for line in lines[1:]] == ["SDK-1"]


def test_sdk_idempotent_replay(sandbox, monkeypatch):
    """An explicit chargebee-idempotency-key resent gives is_idempotency_replayed True."""
    cb = _sdk(sandbox, monkeypatch)
    key = str(uuid.uuid4())
    # FACTS §2.4: the SDK mutates the headers dict, so build a fresh one per call.
    first = cb.Order.import_order(_params(1), {"chargebee-idempotency-key": key})
    second = cb.Order.import_order(_params(1), {"chargebee-idempotency-key": key})
    assert first.is_idempotency_replayed is False
    assert second.is_idempotency_replayed is True
    assert second.order.id == first.order.id
    with pytest.raises(InvalidRequestError) as excinfo:
        cb.Order.import_order(_params(2), {"chargebee-idempotency-key": key})
    assert excinfo.value.http_status_code == 422
    assert excinfo.value.api_error_code == "unable_to_process_request"


def test_sdk_error_classes(sandbox, monkeypatch):
    """The SDK maps sandbox error bodies to InvalidRequestError / APIError with code and param."""
    cb = _sdk(sandbox, monkeypatch)
    with pytest.raises(InvalidRequestError) as missing:
        cb.Order.import_order({k: v for k, v in _params(1).items() if k != "invoice_id"})
    assert (missing.value.param, missing.value.error_code) == ("invoice_id", "param_required")
    assert missing.value.http_status_code == 400
    cb.Order.import_order(_params(1))
    with pytest.raises(InvalidRequestError) as duplicate:
        cb.Order.import_order(_params(1))
    assert (duplicate.value.api_error_code, duplicate.value.param) == ("duplicate_entry", "id")
    with pytest.raises(InvalidRequestError) as not_found:
        cb.Order.retrieve("nope")
    assert not_found.value.http_status_code == 404
    bad_key = _sdk(sandbox, monkeypatch, api_key="wrong")
    with pytest.raises(APIError) as auth:
        bad_key.Order.retrieve("SDK-1")
    assert (auth.value.http_status_code, auth.value.api_error_code) == (
        401,
        "api_authentication_failed",
    )
    assert not isinstance(auth.value, InvalidRequestError | OperationFailedError)


def test_sdk_rate_limit_is_operation_failed_with_retry_after(make_sandbox, monkeypatch):
    """A 429 reaches the SDK as OperationFailedError api_request_limit_exceeded with Retry-After."""
    sb = make_sandbox(rate_limit_per_minute=2)
    cb = _sdk(sb, monkeypatch)
    cb.Order.list()
    cb.Order.list()
    with pytest.raises(OperationFailedError) as excinfo:
        cb.Order.list()
    err = excinfo.value
    assert (err.http_status_code, err.api_error_code) == (429, "api_request_limit_exceeded")
    assert int(err.http_headers["retry-after"]) >= 1


def test_sdk_deprecated_create_is_an_operation_failed_error(sandbox, monkeypatch):
    """Order.create (deprecated) is refused with OperationFailedError request_blocked (403)."""
    cb = _sdk(sandbox, monkeypatch)
    with pytest.raises(OperationFailedError) as excinfo:
        cb.Order.create({"invoice_id": "INV-1"})
    assert (excinfo.value.http_status_code, excinfo.value.api_error_code) == (
        403,
        "request_blocked",
    )


def test_sdk_invoice_list_and_retrieve(make_sandbox, monkeypatch, tmp_path):
    """Invoice.list (id[in] in the SDK's encoding, paging with next_offset, customer filter) and
    Invoice.retrieve against a seeded sandbox; an unknown invoice raises the SDK's
    InvalidRequestError with resource_not_found; the SDK's models read the invoice fields."""
    seed = tmp_path / "invoices.csv"
    seed.write_text(
        "id,customer_id,subscription_id,currency_code,total\n"
        "INV-A,CUST-1,SUB-1,EUR,1999\nINV-B,CUST-1,,GBP,500\nINV-C,CUST-2,,USD,0\n",
        encoding="utf-8",
    )
    cb = _sdk(make_sandbox(invoices_file=str(seed)), monkeypatch)
    seen, offset = [], None
    for _ in range(5):
        params: dict[str, Any] = {"id": {"in": ["INV-C", "INV-X", "INV-A", "INV-B"]}, "limit": 2}
        if offset:
            params["offset"] = offset
        page = cb.Invoice.list(params)
        seen += [entry.invoice.id for entry in page.list]
        offset = page.next_offset
        if not offset:
            break
    assert seen == ["INV-C", "INV-A", "INV-B"]
    mine = cb.Invoice.list({"customer_id": {"is": "CUST-1"}, "limit": 100})
    assert [e.invoice.id for e in mine.list] == ["INV-A", "INV-B"]
    invoice = cb.Invoice.retrieve("INV-A").invoice
    assert (invoice.currency_code, invoice.total, invoice.customer_id) == ("EUR", 1999, "CUST-1")
    with pytest.raises(InvalidRequestError) as caught:
        cb.Invoice.retrieve("INV-X")
    assert caught.value.api_error_code == "resource_not_found"
    assert caught.value.http_status_code == 404
