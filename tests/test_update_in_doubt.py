"""`update` never resends a row left in doubt blindly: it looks the order up first.

Issue 12: resuming an old update batch resent its in-doubt rows without a look-up and overwrote
a newer correction (reconcile then said clean). Now the order is fetched and what the row sent
is compared with what Chargebee holds and with what the ledger knew before the row was sent.

A crash is reproduced the way it leaves the ledger: the row planned (``--dry-run``) and marked
``in_flight`` through the ledger's own API, as the sender does just before its POST. Everything
else is the real CLI against the real sandbox; the sandbox's request log counts what was sent.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.ledger.ledger import Ledger
from pipeline.update.in_doubt import decide
from tests import support
from tests.orders_factory import write_orders

KEY = "in_doubt_key"
ORDER = "T-000001"


@pytest.fixture
def server(make_sandbox, tmp_path, monkeypatch):
    """A sandbox holding batch b1 (3 orders) imported by the real CLI."""
    monkeypatch.chdir(tmp_path)
    sandbox = make_sandbox(api_key=KEY)
    source = write_orders(tmp_path / "orders.csv", 3)
    ran = invoke(sandbox, "run", str(source), "--batch", "b1", "--quiet")
    assert ran.exit_code == 0, ran.output
    return sandbox


def invoke(server, *args: str):
    """The CLI in-process against the sandbox."""
    return support.invoke(server, KEY, *args)


def corrections(name: str, tracking: str) -> Path:
    """A one-row corrections file setting the order's tracking id."""
    path = Path(name)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "tracking_id"])
        writer.writerow([ORDER, tracking])
    return path


def crash_after_mark(server, file: Path, batch: str) -> None:
    """Plan the update batch, then leave its row in_flight as a crash after the mark would."""
    planned = invoke(server, "update", str(file), "--batch", batch, "--dry-run", "-q")
    assert planned.exit_code == 0, planned.output
    with Ledger("order-import.sqlite") as ledger:
        (row,) = ledger.rows(batch, states=("pending",))
        run_id = ledger.start_run(batch, command="update", settings_summary={})
        ledger.mark_in_flight(batch, row.row_key, run_id=run_id, idempotency_key="k-crash")


def update_posts(server) -> int:
    """POST /orders/T-000001 requests the sandbox received."""
    log = support.request_log(server)
    return sum(1 for r in log if r["method"] == "POST" and r["path"].endswith(f"/orders/{ORDER}"))


def tracking(server) -> str | None:
    """The tracking id Chargebee holds for the order."""
    with httpx.Client(base_url=server.base_url, auth=(KEY, ""), timeout=10) as client:
        held: dict[str, Any] = client.get(f"/orders/{ORDER}").json()["order"]
        return held.get("tracking_id")


def state_of(batch: str) -> tuple[str, str | None]:
    """The update row's state and message."""
    with Ledger("order-import.sqlite") as ledger:
        (row,) = ledger.rows(batch)
        return row.state, row.message


def test_resuming_an_old_update_never_overwrites_a_newer_correction(server):
    """fixA crashes in doubt, fixB sets NEW, resuming fixA sends nothing and says why."""
    crash_after_mark(server, corrections("a.csv", "OLD"), "fixA")
    newer = invoke(server, "update", str(corrections("b.csv", "NEW")), "--batch", "fixB", "-q")
    assert newer.exit_code == 0, newer.output
    assert update_posts(server) == 1
    resumed = invoke(server, "update", "a.csv", "--batch", "fixA", "-q")
    assert update_posts(server) == 1  # nothing resent
    assert tracking(server) == "NEW"
    state, message = state_of("fixA")
    assert state == "conflict"
    assert "tracking_id: ours 'OLD', theirs 'NEW'" in (message or "")
    assert "None" not in (message or "")
    assert resumed.exit_code != 0
    assert "Traceback" not in resumed.output


def test_an_in_doubt_update_that_never_arrived_is_sent_once(server):
    """Chargebee still holds the old value: the row is resent, exactly once."""
    crash_after_mark(server, corrections("a.csv", "LATE-1"), "fixA")
    resumed = invoke(server, "update", "a.csv", "--batch", "fixA", "-q")
    assert resumed.exit_code == 0, resumed.output
    assert update_posts(server) == 1
    assert tracking(server) == "LATE-1"
    assert state_of("fixA")[0] == "succeeded"


def test_an_in_doubt_update_that_arrived_is_not_sent_again(server):
    """Chargebee holds what the row sent: succeeded (reconciled) with no second POST."""
    crash_after_mark(server, corrections("a.csv", "LATE-2"), "fixA")
    with httpx.Client(base_url=server.base_url, auth=(KEY, ""), timeout=10) as client:
        client.post(f"/orders/{ORDER}", data={"tracking_id": "LATE-2"}).raise_for_status()
    resumed = invoke(server, "update", "a.csv", "--batch", "fixA", "-q")
    assert resumed.exit_code == 0, resumed.output
    assert update_posts(server) == 1  # the one that "arrived before the crash"
    assert state_of("fixA")[0] == "succeeded"


def test_retry_of_an_update_batch_leaves_an_unconfirmed_row_in_doubt(server):
    """`retry` (no file, no baseline) settles only a row Chargebee holds as sent; never resends."""
    crash_after_mark(server, corrections("a.csv", "OLD"), "fixA")
    retried = invoke(server, "retry", "--batch", "fixA", "-q")
    assert "Traceback" not in retried.output
    assert update_posts(server) == 0
    assert state_of("fixA")[0] == "in_flight"


def test_decide_compares_typed_values_with_ours_before_and_theirs():
    """Applied, never arrived, changed since: by value kind, line items by id."""
    sent = {"id": "A", "shipping_address": {"zip": "02108"}, "order_date": 1700000000}
    held = {"id": "A", "shipping_address": {"zip": "02108"}, "order_date": "2023-11-14T22:13:20Z"}
    assert decide(sent, held, None).decision == "applied"
    before = {"shipping_address": {"zip": "99999"}, "order_date": 1}
    old = {"id": "A", "shipping_address": {"zip": "99999"}, "order_date": 1}
    assert decide(sent, old, before).decision == "not_applied"
    assert decide(sent, old, None).decision == "changed"
    assert decide(sent, old, before, frozenset({"order_date"})).decision == "changed"
    other = {"id": "A", "shipping_address": {"zip": "2108"}, "order_date": 1700000000}
    verdict = decide(sent, other, before)
    assert verdict.decision == "changed"
    assert verdict.detail == "shipping_address.zip: ours '02108', theirs '2108'"
    lines = {"id": "A", "order_line_items": [{"id": "li1", "status": "shipped"}]}
    holds = {"id": "A", "order_line_items": [{"id": "li1", "status": "queued"}]}
    assert decide(lines, holds, {"order_line_items": [{"id": "li1", "status": "queued"}]}) == (
        decide(lines, holds, holds)
    )
    assert decide(lines, holds, holds).decision == "not_applied"
