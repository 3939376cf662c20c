"""The sender's state machine, row by row, against a fake destination that counts calls per row
(modelled on dlt's dummy destination): the library's entry point ``run_batch`` with an httpx
transport seam, a real ledger, a real client, the real limiter, no network.

- in doubt → looked up → pending (never stored) or succeeded (stored before the crash);
- ``duplicate_entry`` → verified → already present (same order) or conflict (another order);
- 401 → the run stops at once, every row unsent stays pending;
- the 429 wait budget spent → that row is retryable, the run stops, a later run finishes.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.config import load_settings
from pipeline.errors import AuthError
from pipeline.send.runner import RunRequest, run_batch
from tests.orders_factory import write_orders

BASE = "http://127.0.0.1:9/api/v2"
KEY = "fake_destination_key"
BATCH = "fsm"


class Crash(BaseException):
    """The process dies here (not an Exception: nothing in the tool may catch it)."""


class FakeChargebee:
    """Answers import_order and GET /orders/{id} from a dict, counting calls per order id.

    Attributes:
        orders: stored orders by id.
        posts, gets: calls per order id.
        crash_before / crash_after: order ids whose POST crashes the run before / after the
            order is stored.
        refuse_auth: answer 401 to everything.
        throttle: answer 429 with ``Retry-After: 1`` to everything.
    """

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}
        self.posts: Counter[str] = Counter()
        self.gets: Counter[str] = Counter()
        self.crash_before: set[str] = set()
        self.crash_after: set[str] = set()
        self.refuse_auth = False
        self.throttle = False

    def transport(self) -> httpx.MockTransport:
        """The httpx transport the client talks to."""
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """One request."""
        if self.refuse_auth:
            return _error(401, "api_authentication_failed", "authentication failed")
        if self.throttle:
            response = _error(429, "api_request_limit_exceeded", "slow down", "operation_failed")
            response.headers["Retry-After"] = "1"
            return response
        path = request.url.path.removeprefix("/api/v2")
        if request.method == "POST" and path == "/orders/import_order":
            form = dict(parse_qsl(request.content.decode()))
            order_id = form["id"]
            self.posts[order_id] += 1
            if order_id in self.crash_before:
                self.crash_before.discard(order_id)
                raise Crash(order_id)
            if order_id in self.orders:
                return _error(
                    400, "duplicate_entry", f"id : {order_id} already present", param="id"
                )
            self.orders[order_id] = {**form, "object": "order"}
            if order_id in self.crash_after:
                self.crash_after.discard(order_id)
                raise Crash(order_id)
            return httpx.Response(200, json={"order": self.orders[order_id]})
        if request.method == "GET" and path.startswith("/orders/"):
            order_id = path.removeprefix("/orders/")
            self.gets[order_id] += 1
            if order_id in self.orders:
                return httpx.Response(200, json={"order": self.orders[order_id]})
            return _error(404, "resource_not_found", "not found")
        return _error(404, "resource_not_found", f"no route {request.method} {path}")


def _error(
    status: int, code: str, message: str, kind: str = "invalid_request", param: str | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"message": message, "type": kind, "api_error_code": code}
    if param is not None:
        body["param"] = param
    return httpx.Response(status, json={**body, "http_status_code": status})


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (no stray order-import.toml)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(work: Path, fake: FakeChargebee, source: Path, **flags: Any) -> Any:
    """``run_batch`` of BATCH with one worker (deterministic order) through the fake.

    Without pre-flight: the fake has no list endpoint, and these rows must reach the POST (a
    pre-flight would settle the duplicates before sending; test_preflight*.py covers that)."""
    settings = load_settings(
        {
            "preflight": False,
            "ledger_path": str(work / "l.sqlite"),
            "report_dir": str(work / "reports"),
            "rate_per_minute": 60000.0,
            "concurrency": 1,
            "quiet": True,
            **flags,
        },
        environ={"CHARGEBEE_API_KEY": KEY, "CHARGEBEE_BASE_URL": BASE},
    )
    request = RunRequest("run", BATCH, source)
    return run_batch(settings, request, transport=fake.transport())


def counts(work: Path) -> dict[str, int]:
    """Row counts per state from ``order-import status --json``."""
    result = CliRunner().invoke(
        main, ["status", "--batch", BATCH, "--ledger", str(work / "l.sqlite"), "--json"]
    )
    assert result.exit_code == 0, result.output
    found: dict[str, int] = json.loads(result.output)["counts"]
    return {state: n for state, n in found.items() if n}


def crash(work: Path, fake: FakeChargebee, source: Path) -> None:
    """A run that dies at a Crash the fake raises."""
    with pytest.raises(BaseException) as info:
        run(work, fake, source)
    group = info.value
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    assert isinstance(group, Crash), repr(info.value)


def test_in_doubt_row_stored_before_the_crash_is_looked_up_and_succeeds(work):
    """The POST reached the destination, then the process died: the resume GETs the row,
    finds it and records it; it is never POSTed again."""
    fake = FakeChargebee()
    source = write_orders(work / "o.csv", 4)
    fake.crash_after.add("T-000001")
    crash(work, fake, source)
    assert counts(work).get("in_flight") == 1
    run(work, fake, source)
    assert counts(work) == {"succeeded": 4}
    assert fake.posts == Counter({f"T-{i:06d}": 1 for i in range(4)})
    assert fake.gets == Counter({"T-000001": 1})


def test_in_doubt_row_never_stored_is_looked_up_then_sent_once(work):
    """The process died before the destination stored the row: the resume GETs it (404), puts
    it back to pending and sends it once more; one order in the end."""
    fake = FakeChargebee()
    source = write_orders(work / "o.csv", 4)
    fake.crash_before.add("T-000002")
    crash(work, fake, source)
    assert counts(work).get("in_flight") == 1
    run(work, fake, source)
    assert counts(work) == {"succeeded": 4}
    assert fake.gets == Counter({"T-000002": 1})
    assert fake.posts["T-000002"] == 2
    assert sorted(fake.orders) == [f"T-{i:06d}" for i in range(4)]


def test_duplicate_entry_of_the_same_order_is_verified_and_already_present(work):
    """The destination already holds the rows' orders, as sent (an earlier ledger imported
    them): duplicate_entry → GET → succeeded as already present; no second order."""
    fake = FakeChargebee()
    source = write_orders(work / "o.csv", 3)
    (work / "first").mkdir()
    run(work / "first", fake, source)
    fake.posts.clear()
    (work / "second").mkdir()
    summary = run(work / "second", fake, source)
    assert counts(work / "second") == {"succeeded": 3}
    assert summary.already_present == 3
    assert fake.posts == Counter({f"T-{i:06d}": 1 for i in range(3)})
    assert fake.gets == Counter({f"T-{i:06d}": 1 for i in range(3)})
    assert len(fake.orders) == 3


def test_duplicate_entry_of_another_order_is_a_conflict(work):
    """The id is taken by an order with another invoice: duplicate_entry → GET → conflict."""
    fake = FakeChargebee()
    fake.orders["T-000001"] = {"id": "T-000001", "invoice_id": "SOMEONE-ELSE", "object": "order"}
    source = write_orders(work / "o.csv", 3)
    run(work, fake, source)
    assert counts(work) == {"succeeded": 2, "conflict": 1}
    assert fake.posts["T-000001"] == 1
    assert fake.gets == Counter({"T-000001": 1})
    assert fake.orders["T-000001"]["invoice_id"] == "SOMEONE-ELSE"


def test_401_stops_at_once_with_every_row_pending(work):
    """The key is refused: one POST, the run stops, nothing failed or in doubt."""
    fake = FakeChargebee()
    fake.refuse_auth = True
    source = write_orders(work / "o.csv", 5)
    with pytest.raises(AuthError):
        run(work, fake, source)
    assert counts(work) == {"pending": 5}
    assert sum(fake.posts.values()) <= 1
    assert fake.orders == {}


def test_throttle_budget_spent_leaves_the_row_retryable_and_a_later_run_finishes(work):
    """429 on everything with a 0.5 s wait budget: the row in hand becomes retryable, the rest
    stay pending, nothing is in doubt; without the 429s a resume sends each row once."""
    fake = FakeChargebee()
    fake.throttle = True
    source = write_orders(work / "o.csv", 4)
    run(work, fake, source, max_throttle_wait=0.5)
    assert counts(work) == {"retryable": 1, "pending": 3}
    fake.throttle = False
    run(work, fake, source)
    assert counts(work) == {"succeeded": 4}
    assert fake.posts == Counter({f"T-{i:06d}": 1 for i in range(4)})


def test_the_send_path_loads_no_report_libraries_before_it_sends() -> None:
    """``pipeline.send.runner`` (what ``run`` imports before its first request) loads neither
    matplotlib, openpyxl nor jinja2: the reports import them once the rows are sent, so the
    first request does not wait for a third of the CLI's imports (issue 16)."""
    import subprocess
    import sys

    probe = (
        "import sys, pipeline.send.runner, pipeline.cli.run\n"
        "print(sorted(m for m in ('matplotlib', 'openpyxl', 'jinja2') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"
