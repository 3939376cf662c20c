"""Fidelity points of the sandbox against Chargebee's published contract (issue 15), over real
HTTP: enum values and 10-digit timestamps in list and export filters, the export's filter
allow-list, the untyped 401, and ``XI`` only on a site with EU VAT. Expected values come from
``tests/data/orders_contract.json``, never from the sandbox's own constants."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from sandbox.server import SandboxServer
from tests.support import contract

IMPORT = "/orders/import_order"
OPS: dict[str, Any] = contract()["operations"]
LIST_FILTERS: dict[str, Any] = OPS["list_orders"]["filters"]
EXPORT_FILTERS: dict[str, Any] = OPS["export_orders"]["params"]
MakeSandbox = Callable[..., SandboxServer]


def _enum_filters(filters: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    return [(name, tuple(spec["enum"])) for name, spec in filters.items() if "enum" in spec
            and spec.get("format") != "boolean"]  # fmt: skip


def _time_filters(filters: dict[str, Any]) -> list[str]:
    return [name for name, spec in filters.items() if "\\d{10}" in spec.get("pattern", "")]


def _list_value(name: str, values: tuple[str, ...]) -> str:
    """A value for ``name``: a bracketed list for in/not_in, else the single value."""
    if name.endswith(("[in]", "[not_in]")):
        return "[" + ",".join(values) + "]"
    return values[0]


@pytest.fixture
def client(make_sandbox: MakeSandbox) -> Iterator[httpx.Client]:
    """A client on a fresh sandbox whose exports complete at once and are not capped."""
    server = make_sandbox(export_delay_s=0, max_exports_in_process=100_000)
    with httpx.Client(base_url=server.base_url, auth=(server.api_key, ""), timeout=10) as http:
        yield http


def _refused(response: httpx.Response, param: str, code: str = "param_wrong_value") -> None:
    assert response.status_code == 400, (param, response.text)
    body = response.json()
    assert body["api_error_code"] == code, body
    assert body["param"] == param, body
    assert body["type"] == "invalid_request", body


@pytest.mark.parametrize(
    ("path", "filters", "method"),
    [("/orders", LIST_FILTERS, "GET"), ("/exports/orders", EXPORT_FILTERS, "POST")],
    ids=["list", "export"],
)
def test_enum_filters_take_exactly_the_contracts_values(
    client: httpx.Client, path: str, filters: dict[str, Any], method: str
) -> None:
    """Every value the contract lists for an enum filter is accepted (alone, and all together
    in an in/not_in list); a value it does not list is 400 param_wrong_value naming the filter,
    alone or inside a list."""
    found = _enum_filters(filters)
    assert len(found) >= 12  # status, order_type/price_type, resent_status × 4 operators

    def send(params: dict[str, str]) -> httpx.Response:
        if method == "GET":
            return client.get(path, params=params)
        return client.post(path, data=params)

    for name, values in found:
        for value in values:
            single = f"[{value}]" if name.endswith(("[in]", "[not_in]")) else value
            assert send({name: single}).status_code == 200, (name, value)
        assert send({name: _list_value(name, values)}).status_code == 200, name
        _refused(send({name: _list_value(name, ("not_a_listed_value",))}), name)
        if name.endswith(("[in]", "[not_in]")):
            _refused(send({name: f'["{values[0]}","nope"]'}), name)


@pytest.mark.parametrize(
    ("path", "filters", "method"),
    [("/orders", LIST_FILTERS, "GET"), ("/exports/orders", EXPORT_FILTERS, "POST")],
    ids=["list", "export"],
)
def test_timestamp_filters_take_ten_digit_unix_seconds(
    client: httpx.Client, path: str, filters: dict[str, Any], method: str
) -> None:
    """after/before/on take exactly 10 digits and between exactly [t1,t2] of 10 digits each (the
    contract's patterns); anything else is 400 param_wrong_value naming the filter."""
    names = _time_filters(filters)
    assert len(names) >= 24

    def send(params: dict[str, str]) -> httpx.Response:
        if method == "GET":
            return client.get(path, params=params)
        return client.post(path, data=params)

    for name in names:
        pattern = filters[name]["pattern"]
        between = name.endswith("[between]")
        good = "[1600000000,1600086400]" if between else "1600000000"
        assert re.fullmatch(pattern, good)
        assert send({name: good}).status_code == 200, name
        if between:
            bad_values = ["[160000000,1600086400]", "[1600000000]", "[1600000000,x]", "1600000000"]
        else:
            bad_values = ["160000000", "16000000000", "1600000000000", "yesterday", ""]
        for bad in bad_values:
            assert not re.fullmatch(pattern, bad)
            _refused(send({name: bad}), name)


def test_sdk_style_between_with_a_space_is_accepted(client):
    """The Python SDK sends lists as repr (``[1600000000, 1600086400]``): accepted (the
    sandbox reads the list, then checks each value against the 10-digit pattern)."""
    params = {"created_at[between]": "[1600000000, 1600086400]"}
    assert client.get("/orders", params=params).status_code == 200


def test_export_accepts_only_the_documented_filters(client):
    """FACTS 7.1: the orders export has no created_at, invoice_id or document_number filter
    (the list has them); every order field the contract's export does not list is refused as
    an unknown param (invalid_request), naming it."""
    listed = {
        name.split("[")[1].rstrip("]") for name in EXPORT_FILTERS if name.startswith("order[")
    }
    assert {"created_at", "invoice_id", "document_number"}.isdisjoint(listed)
    for field in ("created_at", "invoice_id", "document_number"):
        for op in ("is", "after", "in"):
            name = f"order[{field}][{op}]"
            value = "[a]" if op == "in" else "1600000000"
            _refused(client.post("/exports/orders", data={name: value}), name, "invalid_request")
    schema_fields = set(contract()["order_schema"]["properties"])
    for field in sorted(schema_fields - listed - {"total"}):
        name = f"order[{field}][is]"
        _refused(client.post("/exports/orders", data={name: "x"}), name, "invalid_request")
    _refused(
        client.post("/exports/orders", data={"order[total][is]": "1"}),
        "order[total][is]",
        "invalid_request",
    )  # fmt: skip  (total is top-level: total[is])
    assert client.post("/exports/orders", data={"total[is]": "1"}).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/orders"),
        ("GET", "/orders/x"),
        ("POST", IMPORT),
        ("POST", "/exports/orders"),
        ("GET", "/invoices"),
        ("GET", "/invoices/INV-1"),
    ],
)
@pytest.mark.parametrize("auth", [("wrong", ""), None], ids=["wrong-key", "no-key"])
def test_401_is_untyped_everywhere(make_sandbox: MakeSandbox, method, path, auth):
    """A wrong or missing key is 401 api_authentication_failed with no ``type`` field (FACTS
    2.2: untyped), the legacy fields, and nothing stored or counted as admitted."""
    server = make_sandbox()
    with httpx.Client(base_url=server.base_url, auth=auth, timeout=10) as http:
        response = http.request(method, path)
    assert response.status_code == 401
    body = response.json()
    assert "type" not in body
    assert body["api_error_code"] == "api_authentication_failed"
    assert body["api_error_code"] in contract()["error_schemas"]["401"]["properties"][
        "api_error_code"]["enum"]  # fmt: skip
    assert body["http_status_code"] == 401
    assert body["message"]
    state = server.state()
    assert state["orders"] == []
    assert state["counts"]["status_4xx"] == 1


def _order(**extra: str) -> dict[str, str]:
    return {
        "id": "NI-1",
        "invoice_id": "INV-NI",
        "status": "queued",
        "created_at": "1600000000",
        "order_date": "1600000000",
        "shipping_date": "1600000000",
        **extra,
    }


@pytest.mark.parametrize("kind", ["shipping_address", "billing_address"])
def test_xi_needs_eu_vat(make_sandbox: MakeSandbox, kind):
    """XI (Northern Ireland) is refused like any invalid country (400 param_wrong_value naming
    the country param) unless the sandbox stands for a site with EU VAT (eu_vat=True)."""
    param = f"{kind}[country]"
    plain, vat = make_sandbox(), make_sandbox(eu_vat=True)
    with httpx.Client(base_url=plain.base_url, auth=(plain.api_key, ""), timeout=10) as http:
        _refused(http.post(IMPORT, data=_order(**{param: "XI"})), param)
        _refused(http.post(IMPORT, data=_order(**{param: "ZZ"})), param)
        assert http.post(IMPORT, data=_order(**{param: "GB"})).status_code == 200
    assert [o["id"] for o in plain.state()["orders"]] == ["NI-1"]
    with httpx.Client(base_url=vat.base_url, auth=(vat.api_key, ""), timeout=10) as http:
        accepted = http.post(IMPORT, data=_order(**{param: "XI"}))
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["order"][kind]["country"] == "XI"
        _refused(http.post(IMPORT, data=_order(id="NI-2", **{param: "ZZ"})), param)


def test_xi_on_update_needs_eu_vat(make_sandbox: MakeSandbox):
    """Update's shipping_address[country] follows the same rule."""
    plain, vat = make_sandbox(), make_sandbox(eu_vat=True)
    for server, ok in ((plain, False), (vat, True)):
        with httpx.Client(base_url=server.base_url, auth=(server.api_key, ""), timeout=10) as http:
            assert http.post(IMPORT, data=_order()).status_code == 200
            response = http.post("/orders/NI-1", data={"shipping_address[country]": "XI"})
        if ok:
            assert response.status_code == 200, response.text
        else:
            _refused(response, "shipping_address[country]")
