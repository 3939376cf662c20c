"""``Preflight`` and ``Lister`` alone: the real client over an in-memory site (httpx
``MockTransport``), checking the decisions and the request counts per check kind."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from pipeline.api.client import ChargebeeClient
from pipeline.api.listing import Lister
from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import RetryPolicy
from pipeline.config import load_settings
from pipeline.errors import PermanentApiError
from pipeline.models import Outcome, WorkItem
from pipeline.preflight.check import Preflight, scan_pages
from pipeline.send.verification import verified_outcome

pytestmark = pytest.mark.anyio

KEY = "test_PreFlightKey42"


class Site:
    """Invoices and orders answering ``GET /invoices`` and ``GET /orders`` like the list API."""

    def __init__(
        self,
        invoices: list[dict[str, Any]],
        orders: list[dict[str, Any]],
        *,
        loop_offset: bool = False,
    ) -> None:
        self.invoices = invoices
        self.orders = orders
        self.loop_offset = loop_offset
        self.seen: Counter[str] = Counter()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        query = dict(parse_qsl(request.url.query.decode()))
        resource = request.url.path.rsplit("/", 1)[-1]
        items = self.invoices if resource == "invoices" else self.orders
        kind = next((k for k in query if k.endswith("[in]")), "scan")
        self.seen[f"{resource} {kind}"] += 1
        if kind != "scan":
            field = kind.removesuffix("[in]")
            wanted = set(json.loads(query[kind]))
            assert len(wanted) <= 100
            items = [i for i in items if str(i.get(field)) in wanted]
        start = int(query.get("offset", "0")) if not self.loop_offset else 0
        page = items[start : start + 100]
        body: dict[str, Any] = {"list": [{resource[:-1]: item} for item in page]}
        if self.loop_offset:
            body["next_offset"] = "again"
        elif start + 100 < len(items):
            body["next_offset"] = str(start + 100)
        return httpx.Response(200, json=body)


def _item(i: int, **params: Any) -> WorkItem:
    base = {"id": f"O-{i}", "invoice_id": f"I-{i}", "document_number": f"D-{i}", **params}
    return WorkItem("b", f"k{i}", i + 2, base["id"], base, "h", "pending", 0)


def _verify(item: WorkItem, order: Mapping[str, Any]) -> Outcome:
    return verified_outcome("b", 1, item, order, "already_present")


async def _check(
    site: Site, items: list[WorkItem], **options: Any
) -> tuple[list[WorkItem], list[Outcome], Preflight]:
    settings = load_settings(
        {"max_attempts": 1},
        environ={"CHARGEBEE_API_KEY": KEY, "CHARGEBEE_BASE_URL": "http://127.0.0.1:9/api/v2"},
    )
    async with ChargebeeClient(settings, transport=httpx.MockTransport(site)) as client:
        lister = Lister(client, RateLimiter(100_000, burst=1000), RetryPolicy(max_attempts=1))
        checker = Preflight(lister, batch="b", run_id=1, verify=_verify, **options)
        send, held = await checker.check(items)
    return send, held, checker


async def test_cost_is_at_most_one_request_per_100_rows_per_check_kind() -> None:
    """250 rows: 3 requests per look-up kind, and a document-number scan of 3 pages that says
    it was incomplete when the site holds more orders."""
    invoices = [{"id": f"I-{i}"} for i in range(250)]
    others = [
        {"id": f"X-{i}", "invoice_id": f"J-{i}", "document_number": f"E-{i}"} for i in range(400)
    ]
    site = Site(invoices, others)
    items = [_item(i) for i in range(250)]
    send, held, checker = await _check(site, items, expected_rows=250)
    assert len(send) == 250
    assert held == []
    assert site.seen == Counter(
        {"invoices id[in]": 3, "orders id[in]": 3, "orders invoice_id[in]": 3, "orders scan": 3}
    )
    assert scan_pages(250) == 3
    assert checker.stats.requests == 12
    assert not checker.stats.scan_complete
    assert "checked only against the 300 newest orders" in checker.stats.text()


async def test_decisions_name_the_holder() -> None:
    """Each reason, with the order or invoice that holds what the row needs."""
    invoices = [
        {"id": "I-0"},
        {"id": "I-1", "customer_id": "C-other"},
        {"id": "I-2", "subscription_id": "S-other"},
        {"id": "I-3"},  # names no subscription: not a mismatch
        {"id": "I-4"},
        {"id": "I-5"},
        {"id": "I-6"},
    ]
    orders = [
        {"id": "O-0", "invoice_id": "I-0", "document_number": "D-0"},  # row 0's own order
        {"id": "Z-4", "invoice_id": "I-4", "document_number": "Q"},
        {"id": "Z-5", "invoice_id": "I-99", "document_number": "D-5"},
        {"id": "O-6", "invoice_id": "I-99", "document_number": "D-6"},  # another order on O-6
    ]
    items = [
        _item(0),
        _item(1, customer_id="C-1"),
        _item(2, subscription_id="S-2"),
        _item(3, subscription_id="S-3"),
        _item(4),
        _item(5),
        _item(6),
        _item(7),  # no invoice I-7
    ]
    send, held, _ = await _check(Site(invoices, orders), items, expected_rows=len(items))
    assert [i.row_key for i in send] == ["k3"]
    found = {o.row_key: o for o in held}
    assert (found["k0"].state, found["k0"].resolution) == ("succeeded", "already_present")
    codes = {key: (o.state, o.error_code, o.message) for key, o in found.items() if key != "k0"}
    assert codes == {
        "k1": (
            "blocked",
            "invoice_customer_mismatch",
            "invoice I-1 belongs to customer C-other in Chargebee, not C-1",
        ),
        "k2": (
            "blocked",
            "invoice_subscription_mismatch",
            "invoice I-2 belongs to subscription S-other in Chargebee, not S-2",
        ),
        "k4": (
            "blocked",
            "invoice_has_order",
            "order Z-4 already exists in Chargebee for invoice I-4: one order per invoice "
            "(set [orders] several_per_invoice = true in the mapping if several are intended)",
        ),
        "k5": (
            "blocked",
            "document_number_taken",
            "order Z-5 already holds document number D-5 in Chargebee",
        ),
        "k6": codes["k6"],
        "k7": (
            "blocked",
            "invoice_not_found",
            "invoice I-7 not found in Chargebee: import invoices first",
        ),
    }
    assert codes["k6"][:2] == ("blocked", "order_id_taken")
    assert str(codes["k6"][2]).startswith("order O-6 already exists in Chargebee")


async def test_same_identity_other_values_is_a_conflict_not_a_block() -> None:
    """The row's own order, an earlier version of it: ``conflict`` (``content_differs``), as
    the send would end; never sent."""
    orders = [{"id": "O-0", "invoice_id": "I-0", "document_number": "D-0", "status": "queued"}]
    send, held, _ = await _check(
        Site([{"id": "I-0"}], orders), [_item(0, status="delivered")], expected_rows=1
    )
    assert send == []
    assert [(o.state, o.error_code) for o in held] == [("conflict", "content_differs")]


async def test_several_per_invoice_asks_nothing_about_orders_on_the_invoice() -> None:
    """With several orders allowed per invoice, no ``invoice_id[in]`` request is made."""
    orders = [{"id": "Z-0", "invoice_id": "I-0", "document_number": "other"}]
    site = Site([{"id": "I-0"}], orders)
    send, held, _ = await _check(site, [_item(0)], several_per_invoice=True, expected_rows=1)
    assert [i.row_key for i in send] == ["k0"]
    assert held == []
    assert "orders invoice_id[in]" not in site.seen


async def test_a_repeated_next_offset_stops_the_look_up() -> None:
    """A list answer handing back the same next_offset: ``paging_loop``, nothing decided."""
    site = Site([{"id": "I-0"}], [], loop_offset=True)
    with pytest.raises(PermanentApiError, match="would never end"):
        await _check(site, [_item(0)], expected_rows=1)
