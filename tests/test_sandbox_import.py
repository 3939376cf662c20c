"""Contract tests of the sandbox's POST /orders/import_order over real HTTP (FACTS §5)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import contract_enum

IMPORT = "/orders/import_order"
LEGACY = ("error_code", "error_msg", "http_status_code")


def _error(response: httpx.Response, status: int, code: str, param: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["api_error_code"] == code
    assert body.get("param") == param
    assert body.get("error_param") == param
    assert body["http_status_code"] == status
    for name in ("message", *LEGACY):
        assert body[name] not in (None, "")
    return body


@pytest.mark.parametrize(
    "param", ["invoice_id", "status", "created_at", "order_date", "shipping_date"]
)
def test_missing_required_param_is_400_cannot_be_blank(sandbox_client, valid_order, param):
    """Each required import param, when absent, is 400 invalid_request "<p> : cannot be blank"."""
    response = sandbox_client.post(IMPORT, data=valid_order(**{param: None}))
    body = _error(response, 400, "invalid_request", param)
    assert body["message"] == f"{param} : cannot be blank"
    assert body["type"] == "invalid_request"
    assert body["error_code"] == "param_required"
    assert body["error_msg"] == "cannot be blank"


def test_blank_required_param_counts_as_missing(sandbox_client, valid_order):
    """A blank value is null (as_null), so a blank required param is 'cannot be blank'."""
    response = sandbox_client.post(IMPORT, data=valid_order(status=""))
    _error(response, 400, "invalid_request", "status")


def test_json_body_is_ignored_like_chargebee(sandbox_client, valid_order):
    """A JSON body is not read: the first required param is reported blank (GH-PY-54)."""
    response = sandbox_client.post(IMPORT, json=valid_order())
    _error(response, 400, "invalid_request", "invoice_id")


@pytest.mark.parametrize("status", contract_enum("import_order", "status"))
def test_every_import_status_is_accepted(sandbox_client, valid_order, status):
    """All 8 import statuses are accepted and echoed."""
    response = sandbox_client.post(IMPORT, data=valid_order(status=status))
    assert response.status_code == 200, response.text
    assert response.json()["order"]["status"] == status


@pytest.mark.parametrize("status", ["new", "processing", "complete", "voided", "Delivered", "x"])
def test_non_import_status_is_rejected(sandbox_client, valid_order, status):
    """Statuses outside the 8 import values (even legacy order statuses) are param_wrong_value."""
    response = sandbox_client.post(IMPORT, data=valid_order(status=status))
    _error(response, 400, "param_wrong_value", "status")


def test_cancellation_reason_enum(sandbox_client, valid_order):
    """All 14 cancellation reasons pass; anything else is rejected with param set."""
    for reason in contract_enum("import_order", "cancellation_reason"):
        ok = sandbox_client.post(IMPORT, data=valid_order(cancellation_reason=reason))
        assert ok.status_code == 200, ok.text
    bad = sandbox_client.post(IMPORT, data=valid_order(cancellation_reason="changed_mind"))
    _error(bad, 400, "param_wrong_value", "cancellation_reason")


def test_address_validation_status_enum(sandbox_client, valid_order):
    """validation_status accepts the contract's values and defaults to not_validated."""
    for value in contract_enum("import_order", "shipping_address[validation_status]"):
        ok = sandbox_client.post(
            IMPORT, data=valid_order(**{"shipping_address[validation_status]": value})
        )
        assert ok.status_code == 200, ok.text
    ok = sandbox_client.post(IMPORT, data=valid_order(**{"billing_address[city]": "Oslo"}))
    assert ok.json()["order"]["billing_address"]["validation_status"] == "not_validated"
    bad = sandbox_client.post(
        IMPORT, data=valid_order(**{"shipping_address[validation_status]": "maybe"})
    )
    _error(bad, 400, "param_wrong_value", "shipping_address[validation_status]")


@pytest.mark.parametrize(
    ("param", "limit"),
    [
        ("id", 40),
        ("document_number", 50),
        ("invoice_id", 50),
        ("note", 600),
        ("tracking_url", 255),
        ("reference_id", 50),
        ("shipping_address[first_name]", 150),
        ("billing_address[zip]", 20),
        ("shipping_address[company]", 250),
    ],
)
def test_max_lengths(sandbox_client, valid_order, param, limit):
    """A value at the max length passes; one character more is 400 with that param."""
    at_limit = sandbox_client.post(IMPORT, data=valid_order(**{param: "a" * limit}))
    assert at_limit.status_code == 200, at_limit.text
    over = sandbox_client.post(IMPORT, data=valid_order(**{param: "b" * (limit + 1)}))
    body = _error(over, 400, "param_wrong_value", param)
    assert str(limit) in body["message"]


@pytest.mark.parametrize("country", ["US", "DE", "GB", "IN"])
def test_valid_countries(sandbox_client, valid_order, country):
    """ISO 3166-1 alpha-2 codes are accepted (XI only with eu_vat: test_sandbox_fidelity)."""
    response = sandbox_client.post(
        IMPORT, data=valid_order(**{"shipping_address[country]": country})
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("country", ["UK", "USA", "XX", "us", "Germany"])
def test_invalid_countries(sandbox_client, valid_order, country):
    """Non-ISO codes (UK, USA, lowercase, names) are 400 param_wrong_value on the country param."""
    response = sandbox_client.post(
        IMPORT, data=valid_order(**{"billing_address[country]": country})
    )
    _error(response, 400, "param_wrong_value", "billing_address[country]")


def test_state_code_fills_state(sandbox_client, valid_order):
    """state_code for US/CA/IN/AE fills in the state name automatically."""
    params = valid_order(
        **{"shipping_address[country]": "US", "shipping_address[state_code]": "NY"}
    )
    order = sandbox_client.post(IMPORT, data=params).json()["order"]
    assert order["shipping_address"]["state"] == "New York"


def test_email_format(sandbox_client, valid_order):
    """An address email must look like an email address."""
    response = sandbox_client.post(IMPORT, data=valid_order(**{"billing_address[email]": "nope"}))
    _error(response, 400, "param_wrong_value", "billing_address[email]")


@pytest.mark.parametrize("value", ["2020-09-13", "1600000000.5", "-5", "soon", "12345678901"])
def test_timestamps_must_be_unix_seconds(sandbox_client, valid_order, value):
    """Dates are integer Unix seconds; ISO text, fractions, negatives, ms values are rejected."""
    response = sandbox_client.post(IMPORT, data=valid_order(order_date=value))
    _error(response, 400, "param_wrong_value", "order_date")


def test_refundable_credits_issued_non_negative_integer(sandbox_client, valid_order):
    """refundable_credits_issued is an integer ≥ 0 in minor units."""
    ok = sandbox_client.post(IMPORT, data=valid_order(refundable_credits_issued="1250"))
    assert ok.json()["order"]["refundable_credits_issued"] == 1250
    for bad in ("-1", "12.5"):
        response = sandbox_client.post(IMPORT, data=valid_order(refundable_credits_issued=bad))
        _error(response, 400, "param_wrong_value", "refundable_credits_issued")


@pytest.mark.parametrize(
    "param", ["colour", "order_line_items[id][0]", "shipping_address[planet]", "customer[id]"]
)
def test_unknown_params_rejected(sandbox_client, valid_order, param):
    """Parameters import_order does not define are 400 invalid_request naming them."""
    response = sandbox_client.post(IMPORT, data=valid_order(**{param: "x"}))
    _error(response, 400, "invalid_request", param)


def test_duplicate_id_is_duplicate_entry(sandbox_client, valid_order):
    """Importing an id that exists gives 400 duplicate_entry with param=id, and stores nothing."""
    first = valid_order()
    assert sandbox_client.post(IMPORT, data=first).status_code == 200
    again = valid_order(id=first["id"], note="second try")
    _error(sandbox_client.post(IMPORT, data=again), 400, "duplicate_entry", "id")
    order = sandbox_client.get(f"/orders/{first['id']}").json()["order"]
    assert "note" not in order


def test_duplicate_document_number_rejected(sandbox_client, valid_order):
    """A document_number already on a live order is 400 duplicate_entry (sandbox choice)."""
    assert sandbox_client.post(IMPORT, data=valid_order(document_number="OLD1")).status_code == 200
    response = sandbox_client.post(IMPORT, data=valid_order(document_number="OLD1"))
    _error(response, 400, "duplicate_entry", "document_number")


def test_document_number_series_rule(make_sandbox, valid_order):
    """With series ORDER/1000, ORDER999 imports but ORDER1000 and above are refused."""
    sb = make_sandbox(doc_series_prefix="ORDER", doc_series_start=1000)
    with httpx.Client(base_url=sb.base_url, auth=(sb.api_key, "")) as client:
        assert client.post(IMPORT, data=valid_order(document_number="ORDER999")).status_code == 200
        assert client.post(IMPORT, data=valid_order(document_number="OLD5000")).status_code == 200
        for number in ("ORDER1000", "ORDER123456"):
            response = client.post(IMPORT, data=valid_order(document_number=number))
            _error(response, 400, "param_wrong_value", "document_number")


def test_auto_assigned_id_is_incremental_and_skips_taken(sandbox_client, valid_order):
    """Without an id the sandbox assigns 1, 2, ... and skips ids already imported."""
    assert sandbox_client.post(IMPORT, data=valid_order(id="2")).status_code == 200
    first = sandbox_client.post(IMPORT, data=valid_order(id=None)).json()["order"]["id"]
    second = sandbox_client.post(IMPORT, data=valid_order(id=None)).json()["order"]["id"]
    assert (first, second) == ("1", "3")


def test_order_shape(sandbox_client, valid_order):
    """The answer is {"order": ...} shaped like Chargebee's Order resource."""
    params = valid_order(
        document_number="OLD7",
        customer_id="cus_1",
        shipped_at="1600050000",
        **{"shipping_address[city]": "Paris", "shipping_address[country]": "FR"},
    )
    response = sandbox_client.post(IMPORT, data=params)
    assert response.headers["content-type"].startswith("application/json")
    order = response.json()["order"]
    assert order["object"] == "order"
    assert order["id"] == params["id"]
    assert order["document_number"] == "OLD7"
    assert order["created_at"] == 1600000000
    assert order["shipped_at"] == 1600050000
    assert order["price_type"] == "tax_exclusive"
    assert order["order_type"] in ("manual", "system_generated")
    assert order["deleted"] is False
    assert order["is_resent"] is False
    assert isinstance(order["resource_version"], int)
    assert isinstance(order["updated_at"], int)
    assert order["status_update_at"] == 1600000000
    assert order["shipping_address"] == {
        "city": "Paris",
        "country": "FR",
        "validation_status": "not_validated",
        "object": "shipping_address",
    }
    (item,) = order["order_line_items"]
    assert item["invoice_id"] == params["invoice_id"]
    assert item["status"] == "delivered"


def test_strict_invoices_unknown_is_404(make_sandbox, valid_order, tmp_path):
    """Strict mode: an invoice id missing from the file is 404 resource_not_found on invoice_id."""
    invoices = tmp_path / "invoices.txt"
    invoices.write_text("# known invoices\nINV-OK\n\n", encoding="utf-8")
    sb = make_sandbox(strict_invoices_file=str(invoices))
    with httpx.Client(base_url=sb.base_url, auth=(sb.api_key, "")) as client:
        assert client.post(IMPORT, data=valid_order(invoice_id="INV-OK")).status_code == 200
        response = client.post(IMPORT, data=valid_order(invoice_id="INV-NOPE"))
        _error(response, 404, "resource_not_found", "invoice_id")


def test_lenient_invoices_by_default(sandbox_client, valid_order):
    """Without a strict-invoices file any invoice id is accepted."""
    response = sandbox_client.post(IMPORT, data=valid_order(invoice_id="anything-goes"))
    assert response.status_code == 200


def test_status_rules_off_by_default_and_switchable(sandbox_client, make_sandbox, valid_order):
    """Undocumented status rules are off by default; status_rules=True enforces them."""
    params = valid_order(status="cancelled")  # no cancelled_at, no cancellation_reason
    assert sandbox_client.post(IMPORT, data=params).status_code == 200
    sb = make_sandbox(status_rules=True)
    with httpx.Client(base_url=sb.base_url, auth=(sb.api_key, "")) as client:
        response = client.post(IMPORT, data=valid_order(status="delivered"))
        _error(response, 400, "invalid_request", "delivered_at")


@pytest.mark.parametrize(
    "auth",
    [("wrong_key", ""), None, ("", "test_sandbox_key")],
    ids=["wrong", "none", "as-password"],
)
def test_bad_api_key_is_401(sandbox, valid_order, auth):
    """A wrong or missing key is 401 api_authentication_failed (untyped), nothing stored."""
    with httpx.Client(base_url=sandbox.base_url, auth=auth) as client:
        response = client.post(IMPORT, data=valid_order())
    assert response.status_code == 401
    body = response.json()
    assert body["api_error_code"] == "api_authentication_failed"
    assert "type" not in body
    assert body["http_status_code"] == 401
    assert sandbox.state()["orders"] == []


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"status": "cancelled", "cancelled_at": "1600000000"}, "cancellation_reason"),
        ({"status": "shipped"}, "shipped_at"),
        ({"delivered_at": "1600000000", "cancellation_reason": "others"}, "cancellation_reason"),
        ({"delivered_at": "1600000000", "shipping_date": "1500000000"}, "shipping_date"),
    ],
)
def test_status_rules_when_switched_on(make_sandbox, valid_order, overrides, param):
    """status_rules=True: cancelled needs a reason, shipped needs shipped_at, a reason only with
    cancelled, shipping_date not before order_date."""
    sb = make_sandbox(status_rules=True)
    with httpx.Client(base_url=sb.base_url, auth=(sb.api_key, "")) as client:
        response = client.post(IMPORT, data=valid_order(**overrides))
    assert response.status_code == 400
    assert response.json()["param"] == param


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"a=b",
        b"a=b&c=d&&e=&f",
        b"shipping_address%5Bcity%5D=Krak%C3%B3w+a%26b%3Dc%2Bd",
        b"x=%ZZ&y=%E2%82&z=a+b+c&%2B=%2B",
        b"=v&k==v2&k2=a=b",
        b"\xff\xfe=bad&ok=1",
        b"order_line_items%5Bid%5D%5B0%5D=li%201&plus=+",
    ],
)
def test_form_bodies_parse_as_parse_qsl_does(raw):
    """The sandbox's form parser gives what ``parse_qsl(keep_blank_values=True)`` gives on the
    decoded body (escapes, ``+``, blanks, fields without ``=``, bad escapes, bad UTF-8)."""
    from urllib.parse import parse_qsl

    from sandbox.forms import parse_form

    assert parse_form(raw) == parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
