"""Pre-flight off the send path's critical path: the look-ups of a page run at once, the next
page is checked while this one is sent, request accounting stays exact per kind, and a list
page is scrubbed of the key without walking every string of a clean page.

Unit tests run ``Preflight``/``Lister`` with the real client over an in-memory site (httpx
``MockTransport``, an async handler that counts requests in flight); the end-to-end test runs
the real CLI against the sandbox and reads the order of requests in its log.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import anyio
import httpx
import pytest

from pipeline.api import client as client_module
from pipeline.api.client import ChargebeeClient
from pipeline.api.listing import Lister
from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import RetryPolicy
from pipeline.config import load_settings
from pipeline.errors import AuthError, TransientApiError
from pipeline.models import Outcome, WorkItem
from pipeline.preflight.check import Preflight
from pipeline.send.verification import verified_outcome
from tests import support
from tests.orders_factory import write_orders

KEY = 'test_Over\\lap"Key42'
"""A key JSON escapes (a backslash and a quote): the page search must look for its escaped form."""


class SlowSite:
    """``GET /invoices`` and ``GET /orders`` like the list API, each answer after a short
    sleep; counts requests by kind and the most in flight at once. ``fail`` maps a kind to the
    statuses its next answers take (then 200)."""

    def __init__(self, invoices: list[dict[str, Any]], orders: list[dict[str, Any]]) -> None:
        self.invoices = invoices
        self.orders = orders
        self.seen: Counter[str] = Counter()
        self.in_flight = 0
        self.peak = 0
        self.fail: dict[str, list[int]] = {}

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        query = dict(parse_qsl(request.url.query.decode()))
        resource = request.url.path.rsplit("/", 1)[-1]
        kind = f"{resource} " + next((k for k in query if k.endswith("[in]")), "scan")
        self.seen[kind] += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await anyio.sleep(0.02)
        finally:
            self.in_flight -= 1
        if self.fail.get(kind):
            status = self.fail[kind].pop(0)
            return httpx.Response(status, json={"message": "no", "api_error_code": "x"})
        items = self.invoices if resource == "invoices" else self.orders
        if not kind.endswith("scan"):
            field = kind.split(" ")[1].removesuffix("[in]")
            wanted = set(json.loads(query[field + "[in]"]))
            items = [i for i in items if str(i.get(field)) in wanted]
        start = int(query.get("offset", "0"))
        body: dict[str, Any] = {"list": [{resource[:-1]: i} for i in items[start : start + 100]]}
        if start + 100 < len(items):
            body["next_offset"] = str(start + 100)
        return httpx.Response(200, json=body)


def _item(i: int) -> WorkItem:
    params = {"id": f"O-{i}", "invoice_id": f"I-{i}", "document_number": f"D-{i}"}
    return WorkItem("b", f"k{i}", i + 2, params["id"], params, "h", "pending", 0)


def _verify(item: WorkItem, order: Mapping[str, Any]) -> Outcome:
    return verified_outcome("b", 1, item, order, "already_present")


def _settings(**flags: Any) -> Any:
    return load_settings(
        {"max_attempts": 1, **flags},
        environ={"CHARGEBEE_API_KEY": KEY, "CHARGEBEE_BASE_URL": "http://127.0.0.1:9/api/v2"},
    )


async def _check(
    site: SlowSite, items: list[WorkItem], *, parallel: int, attempts: int = 1
) -> tuple[list[WorkItem], list[Outcome], Preflight]:
    transport = httpx.MockTransport(site)  # an async handler: httpx awaits its answer
    async with ChargebeeClient(_settings(), transport=transport) as client:
        limiter = RateLimiter(100_000, burst=1000, concurrency=64)
        policy = RetryPolicy(max_attempts=attempts, base_delay=0.0, jitter=0.0)
        checker = Preflight(
            Lister(client, limiter, policy),
            batch="b",
            run_id=1,
            verify=_verify,
            expected_rows=len(items),
            parallel=parallel,
        )
        send, held = await checker.check(items)
    return send, held, checker


@pytest.mark.anyio
async def test_lookups_of_a_page_run_at_once_and_each_kind_is_counted_exactly() -> None:
    """500 rows, parallel 32: the 5 parts' look-ups overlap (bounded), and every kind is
    counted exactly as the site saw it, a retried request and a look-up spanning two pages
    included (deltas of one shared counter would mix the kinds up)."""
    invoices = [{"id": f"I-{i}"} for i in range(500)]
    # 150 other orders on invoices I-0..I-149 (a part's invoice_id[in] spans 2 pages), and rows
    # 0..149 are then held back as invoice_has_order.
    others = [{"id": f"X-{i}-{j}", "invoice_id": f"I-{i}"} for i in range(150) for j in (0, 1)]
    site = SlowSite(invoices, others)
    site.fail["invoices id[in]"] = [503]
    send, held, checker = await _check(
        site, [_item(i) for i in range(500)], parallel=32, attempts=2
    )
    assert site.seen == Counter(
        {
            "orders id[in]": 5,
            "invoices id[in]": 6,  # 5 look-ups, one of them retried after a 503
            "orders invoice_id[in]": 6,  # part 0's invoices hold 200 orders: 2 pages
            "orders scan": 3,
        }
    )
    assert checker.stats.by_kind == Counter(
        {"order_ids": 5, "invoices": 6, "invoice_orders": 6, "scan": 3}
    )
    assert checker.stats.requests == sum(site.seen.values())
    assert 3 < site.peak <= 32 + 1
    assert [i.row_key for i in send] == [f"k{i}" for i in range(150, 500)]  # order kept
    assert {o.error_code for o in held} == {"invoice_has_order"}
    assert checker.stats.checked == 500
    assert checker.stats.blocked == Counter({"invoice_has_order": 150})


@pytest.mark.anyio
async def test_parallel_bounds_the_parts_checked_at_once() -> None:
    """parallel 3: one part at a time, its three kinds at once (plus the scan)."""
    site = SlowSite([{"id": f"I-{i}"} for i in range(300)], [])
    send, _, _ = await _check(site, [_item(i) for i in range(300)], parallel=3)
    assert len(send) == 300
    assert 1 < site.peak <= 4


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fail", "raised"),
    [
        ({"invoices id[in]": [401]}, AuthError),
        ({"orders invoice_id[in]": [500]}, TransientApiError),
        ({"orders invoice_id[in]": [500], "invoices id[in]": [401]}, AuthError),
    ],
)
async def test_a_failed_lookup_raises_its_own_error_not_a_group(
    fail: dict[str, list[int]], raised: type[Exception]
) -> None:
    """A look-up failing inside the task groups raises the ``ApiError`` itself (a refused key
    first, whatever else failed), so the sender stops as it did; nothing is counted as
    checked."""
    site = SlowSite([{"id": f"I-{i}"} for i in range(300)], [])
    site.fail = {kind: list(statuses) for kind, statuses in fail.items()}
    transport = httpx.MockTransport(site)
    async with ChargebeeClient(_settings(), transport=transport) as client:
        lister = Lister(client, RateLimiter(100_000, burst=1000), RetryPolicy(max_attempts=1))
        checker = Preflight(lister, batch="b", run_id=1, verify=_verify, parallel=32)
        with pytest.raises(raised):
            await checker.check([_item(i) for i in range(300)])
    assert checker.stats.checked == 0
    assert sum(checker.stats.blocked.values()) == 0


# -- a list page and the key ------------------------------------------------------------------


async def _page(body: dict[str, Any]) -> list[dict[str, Any]]:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body)

    async with ChargebeeClient(_settings(), transport=httpx.MockTransport(answer)) as client:
        found, _ = await client.list_page("order", {})
    return found


@pytest.mark.anyio
@pytest.mark.parametrize(
    "form",
    [
        KEY,
        quote(KEY, safe=""),
        base64.b64encode(f"{KEY}:".encode()).decode(),
        json.dumps(KEY)[1:-1],
    ],
    ids=["raw", "url-encoded", "basic-token", "json-escaped"],
)
async def test_a_key_form_anywhere_in_a_list_page_is_scrubbed(form: str) -> None:
    """The key in any form, in a nested value, a list item or an object's key, is ``***`` in
    what ``list_page`` returns; the rest of the page is kept as it came."""
    orders = [{"id": f"O-{i}", "total": i, "deleted": False} for i in range(100)]
    orders[57]["order_line_items"] = [{"id": "li", "description": f"x{form}y"}]
    orders[90]["shipping_address"] = {f"k{form}": {"city": form}}
    found = await _page({"list": [{"order": o} for o in orders]})
    text = json.dumps(found)
    assert KEY not in text
    assert json.dumps(KEY)[1:-1] not in text
    assert form not in json.dumps(found, ensure_ascii=False)
    assert found[57]["order_line_items"] == [{"id": "li", "description": "x***y"}]
    assert found[90]["shipping_address"] == {"k***": {"city": "***"}}
    assert found[:57] == orders[:57]


@pytest.mark.anyio
async def test_a_clean_list_page_is_returned_without_walking_its_strings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No key form in the page: the records come back as parsed, and the per-string scrub (the
    CPU cost of a page) is not run."""
    walked: list[object] = []
    real = client_module._scrub_all

    def spy(data: Any, secrets: Any) -> Any:
        walked.append(data)
        return real(data, secrets)

    monkeypatch.setattr(client_module, "_scrub_all", spy)
    orders = [{"id": f"O-{i}", "note": 'Zoë \\ "quoted"', "n": 1.5} for i in range(100)]
    found = await _page({"list": [{"order": o} for o in orders], "next_offset": None})
    assert found == orders
    assert walked == []


# -- end to end: the next page is checked while this one is sent --------------------------------


@pytest.mark.slow
def test_the_next_page_is_checked_while_this_one_is_sent(make_sandbox: Any, tmp_path: Path) -> None:
    """600 rows (pages of 500 and 100) at 50 ms latency, 4 in flight: every pre-flight look-up,
    the second page's included, reaches the sandbox before half of the first page's imports
    (checking a page only once the page before was fed would come after ~430 of them); every
    row is posted once, and the run counts the look-ups the sandbox saw."""
    server = make_sandbox(latency_ms=50)
    source = write_orders(tmp_path / "orders.csv", 600, prefix="OV")
    result = support.run_cli(
        server,
        server.api_key,
        "run", str(source), "--batch", "ov", "--concurrency", "4", "--rate", "1000000",
        cwd=tmp_path,
    )  # fmt: skip
    support.assert_clean_exit(result)
    log = support.request_log(server)
    support.assert_each_row_posted_once(log, support.expected_ids("OV", 600))
    lists = [
        n
        for n, e in enumerate(log)
        if e["method"] == "GET" and e["path"] in ("/api/v2/orders", "/api/v2/invoices")
    ]
    posts = [n for n, e in enumerate(log) if support.is_import(e)]
    # Page 1: 5 look-ups per kind + the scan (an empty site: 1 page); page 2: 1 per kind.
    assert len(lists) == 3 * 5 + 1 + 3
    assert lists[-1] < posts[250], (lists[-1], posts[:3], posts[250])
    assert "pre-flight: 19 request(s), 600 row(s) checked, 0 row(s) blocked" in result.stdout


def test_a_refused_key_wins_over_other_failures_in_the_group() -> None:
    """Several look-ups failed at once: the refused key is what is raised (the run must stop
    as for a 401), then any pipeline error before anything else."""
    from pipeline.preflight.check import _first_error

    auth = AuthError("refused", status_code=401)
    down = TransientApiError("down", status_code=500)
    nested = BaseExceptionGroup("parts", [down, BaseExceptionGroup("kinds", [ValueError(), auth])])
    assert _first_error(nested) is auth
    assert _first_error(BaseExceptionGroup("kinds", [ValueError(), down])) is down
