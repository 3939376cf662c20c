"""Contract tests of update, delete, create (deprecated), retrieve and list over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support import contract_enum

IMPORT = "/orders/import_order"


def _import(client, params) -> dict[str, Any]:
    response = client.post(IMPORT, data=params)
    assert response.status_code == 200, response.text
    order: dict[str, Any] = response.json()["order"]
    return order


@pytest.mark.parametrize("status", contract_enum("update_order", "status"))
def test_update_accepts_all_twelve_statuses(sandbox_client, valid_order, status):
    """Update takes all 12 order statuses, including legacy new/processing/complete/voided."""
    order = _import(sandbox_client, valid_order(status="queued"))
    response = sandbox_client.post(f"/orders/{order['id']}", data={"status": status})
    assert response.status_code == 200, response.text
    assert response.json()["order"]["status"] == status


def test_update_status_change_sets_status_update_at(sandbox_client, valid_order):
    """A status change sets status_update_at to now; updated_at and resource_version move too."""
    order = _import(sandbox_client, valid_order(status="queued"))
    before = int(time.time())
    new = sandbox_client.post(f"/orders/{order['id']}", data={"status": "shipped"}).json()["order"]
    assert new["status_update_at"] >= before > order["status_update_at"]
    assert new["resource_version"] > order["resource_version"]
    assert new["updated_at"] >= before


def test_update_same_status_keeps_status_update_at(sandbox_client, valid_order):
    """Updating other fields (or the same status) leaves status_update_at alone."""
    order = _import(sandbox_client, valid_order(status="queued"))
    data = {"status": "queued", "tracking_id": "TRK1"}
    new = sandbox_client.post(f"/orders/{order['id']}", data=data).json()["order"]
    assert new["status_update_at"] == order["status_update_at"]
    assert new["tracking_id"] == "TRK1"


def test_update_rejects_billing_address(sandbox_client, valid_order):
    """Update has no billing_address: it is an unknown parameter (400 naming it)."""
    order = _import(sandbox_client, valid_order())
    response = sandbox_client.post(f"/orders/{order['id']}", data={"billing_address[city]": "X"})
    assert response.status_code == 400
    assert response.json()["param"] == "billing_address[city]"


def test_update_shipping_address_merges(sandbox_client, valid_order):
    """shipping_address fields on update are validated and merged into the stored address."""
    order = _import(sandbox_client, valid_order(**{"shipping_address[city]": "Lyon"}))
    data = {"shipping_address[country]": "FR"}
    new = sandbox_client.post(f"/orders/{order['id']}", data=data).json()["order"]
    assert new["shipping_address"]["city"] == "Lyon"
    assert new["shipping_address"]["country"] == "FR"
    bad = sandbox_client.post(f"/orders/{order['id']}", data={"shipping_address[country]": "ZZ"})
    assert bad.json()["param"] == "shipping_address[country]"


def test_update_line_items_column_major(sandbox_client, valid_order):
    """order_line_items[field][i] arrays update the matching line item by id."""
    order = _import(sandbox_client, valid_order(status="queued"))
    item_id = order["order_line_items"][0]["id"]
    data = {
        "order_line_items[id][0]": item_id,
        "order_line_items[status][0]": "shipped",
        "order_line_items[sku][0]": "SKU-9",
    }
    new = sandbox_client.post(f"/orders/{order['id']}", data=data).json()["order"]
    assert new["order_line_items"][0]["status"] == "shipped"
    assert new["order_line_items"][0]["sku"] == "SKU-9"


def test_update_line_item_rules(sandbox_client, valid_order):
    """Line items need an id, a valid status, and must exist on the order."""
    order = _import(sandbox_client, valid_order())
    url = f"/orders/{order['id']}"
    no_id = sandbox_client.post(url, data={"order_line_items[status][0]": "shipped"})
    assert (no_id.status_code, no_id.json()["param"]) == (400, "order_line_items[id][0]")
    item_id = order["order_line_items"][0]["id"]
    bad_status = {"order_line_items[id][0]": item_id, "order_line_items[status][0]": "lost"}
    response = sandbox_client.post(url, data=bad_status)
    assert response.json()["param"] == "order_line_items[status][0]"
    unknown = sandbox_client.post(url, data={"order_line_items[id][0]": "li_nope"})
    assert (unknown.status_code, unknown.json()["api_error_code"]) == (404, "resource_not_found")


def test_update_unknown_order_is_404(sandbox_client):
    """Updating an id that does not exist is 404 resource_not_found."""
    response = sandbox_client.post("/orders/missing", data={"status": "shipped"})
    assert response.status_code == 404
    assert response.json()["api_error_code"] == "resource_not_found"


def test_update_rejects_import_only_params(sandbox_client, valid_order):
    """Params update does not define (e.g. invoice_id) are rejected."""
    order = _import(sandbox_client, valid_order())
    response = sandbox_client.post(f"/orders/{order['id']}", data={"invoice_id": "INV-2"})
    assert (response.status_code, response.json()["param"]) == (400, "invoice_id")


def test_deprecated_create_is_refused(sandbox_client, valid_order):
    """POST /orders (create) answers 403 request_blocked saying it is deprecated; nothing stored."""
    response = sandbox_client.post("/orders", data=valid_order())
    assert response.status_code == 403
    body = response.json()
    assert body["api_error_code"] == "request_blocked"
    assert "deprecated" in body["message"]
    assert "import_order" in body["message"]
    assert sandbox_client.get("/orders").json()["list"] == []


def test_retrieve(sandbox_client, valid_order):
    """GET /orders/{id} returns the stored order; an unknown id is 404."""
    order = _import(sandbox_client, valid_order())
    assert sandbox_client.get(f"/orders/{order['id']}").json() == {"order": order}
    missing = sandbox_client.get("/orders/nope")
    assert (missing.status_code, missing.json()["api_error_code"]) == (404, "resource_not_found")


def test_delete_hides_order_and_frees_id(sandbox_client, valid_order):
    """Deleting an imported order makes GET 404, lists skip it unless include_deleted=true."""
    order = _import(sandbox_client, valid_order())
    deleted = sandbox_client.post(f"/orders/{order['id']}/delete").json()["order"]
    assert deleted["deleted"] is True
    assert sandbox_client.get(f"/orders/{order['id']}").status_code == 404
    assert sandbox_client.get("/orders").json()["list"] == []
    listed = sandbox_client.get("/orders", params={"include_deleted": "true"}).json()["list"]
    assert [item["order"]["deleted"] for item in listed] == [True]
    again = sandbox_client.post(IMPORT, data=valid_order(id=order["id"]))
    assert again.status_code == 200
    assert sandbox_client.post("/orders/nope/delete").status_code == 404


def test_wrong_method_is_405(sandbox_client):
    """A known path with an unsupported method is 405 http_method_not_supported."""
    response = sandbox_client.get("/orders/import_order/x")
    assert response.status_code == 404
    response = sandbox_client.delete("/orders/abc")
    assert (response.status_code, response.json()["api_error_code"]) == (
        405,
        "http_method_not_supported",
    )


def _fill(client, valid_order, n: int) -> list[str]:
    ids = []
    for i in range(n):
        created = str(1_600_000_000 + (i % 5) * 100)  # ties on created_at on purpose
        ids.append(_import(client, valid_order(created_at=created))["id"])
    return ids


def test_list_paging_visits_every_order_once(sandbox_client, valid_order):
    """limit/next_offset paging returns every order exactly once; next_offset absent at the end."""
    _fill(sandbox_client, valid_order, 23)
    seen, offset, pages = [], None, 0
    while pages < 20:
        params = {"limit": 5, **({"offset": offset} if offset else {})}
        body = sandbox_client.get("/orders", params=params).json()
        seen += [item["order"] for item in body["list"]]
        pages += 1
        offset = body.get("next_offset")
        if offset is None:
            break
    assert pages == 5
    assert len({o["id"] for o in seen}) == len(seen) == 23
    keys = [(o["created_at"]) for o in seen]
    assert keys == sorted(keys)  # default sort: created_at ascending


def test_list_exact_last_page_has_no_next_offset(sandbox_client, valid_order):
    """When the last page is exactly full, next_offset is omitted (not an empty extra page)."""
    _fill(sandbox_client, valid_order, 4)
    body = sandbox_client.get("/orders", params={"limit": 4}).json()
    assert len(body["list"]) == 4
    assert "next_offset" not in body


def test_list_sort_desc_and_updated_at(sandbox_client, valid_order):
    """sort_by[desc]=created_at reverses; sort_by[asc]=updated_at puts the last update last."""
    ids = _fill(sandbox_client, valid_order, 6)
    body = sandbox_client.get("/orders", params={"sort_by[desc]": "created_at", "limit": 100})
    created = [item["order"]["created_at"] for item in body.json()["list"]]
    assert created == sorted(created, reverse=True)
    time.sleep(1.05)  # updated_at has one-second resolution
    sandbox_client.post(f"/orders/{ids[0]}", data={"note": "touched"})
    body = sandbox_client.get("/orders", params={"sort_by[asc]": "updated_at", "limit": 100})
    assert body.json()["list"][-1]["order"]["id"] == ids[0]
    bad = sandbox_client.get("/orders", params={"sort_by[asc]": "status"})
    assert bad.status_code == 400


def test_list_filters(sandbox_client, valid_order):
    """id/invoice_id/status/created_at/updated_at filters with is/in/after/before/starts_with."""
    ids = _fill(sandbox_client, valid_order, 10)
    sandbox_client.post(f"/orders/{ids[3]}", data={"status": "returned"})

    def listed(**params) -> list[str]:
        body = sandbox_client.get("/orders", params={"limit": 100, **params}).json()
        return [item["order"]["id"] for item in body["list"]]

    assert listed(**{"id[is]": ids[2]}) == [ids[2]]
    assert sorted(listed(**{"id[in]": f'["{ids[1]}","{ids[4]}"]'})) == sorted([ids[1], ids[4]])
    assert sorted(listed(**{"id[in]": f"['{ids[1]}', '{ids[4]}']"})) == sorted([ids[1], ids[4]])
    assert listed(**{"invoice_id[is]": "INV-6"}) == ["ORD-6"]
    assert listed(**{"status[is]": "returned"}) == [ids[3]]
    assert len(listed(**{"status[is_not]": "returned"})) == 9
    assert len(listed(**{"created_at[after]": "1600000200"})) == 4  # i % 5 in (3, 4)
    assert len(listed(**{"created_at[before]": "1600000100"})) == 2  # i % 5 == 0
    assert len(listed(**{"created_at[between]": "[1600000100,1600000200]"})) == 4
    assert len(listed(**{"updated_at[after]": str(int(time.time()) + 60)})) == 0
    assert len(listed(**{"id[starts_with]": "ORD-1"})) == 2  # ORD-1, ORD-10


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"offset": "garbage!"}, "offset"),
        ({"status[like]": "x"}, "status[like]"),
        ({"created_at[after]": "yesterday"}, "created_at[after]"),
        ({"customer[id]": "x"}, "customer[id]"),
        ({"id[in]": "a,b"}, "id[in]"),
    ],
)
def test_list_rejects_bad_query(sandbox_client, params, param):
    """Out-of-range limit, forged offset, unknown operators and bad values are 400 with param."""
    response = sandbox_client.get("/orders", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["param"] == param


@pytest.mark.parametrize(
    ("data", "param"),
    [
        ({"shipped_at": "2020-01-01"}, "shipped_at"),
        ({"cancellation_reason": "bored"}, "cancellation_reason"),
        ({"status": "lost"}, "status"),
        ({"note": "n" * 601}, "note"),
    ],
)
def test_update_validates_values(sandbox_client, valid_order, data, param):
    """Update checks timestamps, enums and lengths like import does (400 naming the param)."""
    order = _import(sandbox_client, valid_order())
    response = sandbox_client.post(f"/orders/{order['id']}", data=data)
    assert response.status_code == 400
    assert response.json()["param"] == param


def test_list_boolean_and_negated_filters(sandbox_client, valid_order):
    """is_resent[is] takes true/false only; id[not_in] excludes the listed ids."""
    _fill(sandbox_client, valid_order, 3)
    body = sandbox_client.get("/orders", params={"is_resent[is]": "false"}).json()
    assert len(body["list"]) == 3
    assert sandbox_client.get("/orders", params={"is_resent[is]": "maybe"}).status_code == 400
    body = sandbox_client.get("/orders", params={"id[not_in]": '["ORD-1"]'}).json()
    assert [item["order"]["id"] for item in body["list"]] == ["ORD-2", "ORD-3"]


def test_indexed_id_and_invoice_filters_page_like_a_full_scan():
    """``id``/``invoice_id`` ``is``/``in`` filters go through the store's indexes (pre-flight's
    look-ups), and give the very pages, in the very order, with the very cursors a scan of
    every order gives: with deleted orders, an order moved to another invoice, other filters
    alongside, both sort orders and small pages."""
    import random

    from sandbox.config import SandboxConfig
    from sandbox.filters import Filter
    from sandbox.store import Store

    rng = random.Random(16)
    store = Store(SandboxConfig())
    for n in range(300):
        invoice = f"inv-{rng.randrange(40)}"
        created = rng.randrange(5) + 1
        order: dict[str, Any] = {"id": f"o-{n}", "invoice_id": invoice, "created_at": created}
        order["updated_at"] = created + rng.randrange(3)
        if rng.random() < 0.1:
            order["deleted"] = True
        store.save(order)
    store.save({"id": "o-7", "invoice_id": "inv-moved", "created_at": 9, "updated_at": 9})

    def scan(filters: list[Filter], **kw: Any) -> Any:
        keys = store._sorted_keys(kw["sort_field"])
        store._indexed_keys = lambda *_: None  # type: ignore[method-assign]
        try:
            return store.page(filters, **kw)
        finally:
            del store._indexed_keys
            assert keys is store._sorted_keys(kw["sort_field"])

    ids = frozenset(f"o-{rng.randrange(320)}" for _ in range(60)) | {"o-7", "nope"}
    invoices = frozenset(f"inv-{rng.randrange(45)}" for _ in range(12)) | {"inv-moved"}
    cases = [
        [Filter("id", "in", ids)],
        [Filter("id", "is", "o-7")],
        [Filter("invoice_id", "in", invoices)],
        [Filter("invoice_id", "is", "inv-3")],
        [Filter("invoice_id", "is", "inv-moved")],
        [Filter("invoice_id", "in", invoices), Filter("id", "in", ids)],
        [Filter("created_at", "after", 2), Filter("invoice_id", "in", invoices)],
    ]
    pages = 0
    for filters in cases:
        for sort_field in ("created_at", "updated_at"):
            for descending in (False, True):
                for include_deleted in (False, True):
                    kw: dict[str, Any] = {
                        "sort_field": sort_field,
                        "descending": descending,
                        "include_deleted": include_deleted,
                        "limit": 7,
                    }
                    cursor = None
                    while True:
                        got = store.page(filters, cursor=cursor, **kw)
                        assert got == scan(filters, cursor=cursor, **kw)
                        pages += 1
                        cursor = got[1]
                        if cursor is None:
                            break
    assert pages > len(cases) * 8
    assert [key for key, held in store.by_invoice.items() if "o-7" in held] == ["inv-moved"]
