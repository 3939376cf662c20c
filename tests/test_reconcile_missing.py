"""`retry --batch B --missing`: orders the last reconciliation found missing are sent again.

Issue 13: an order deleted in Chargebee behind the tool's back was found missing by reconcile,
and there was no way to send it again inside the batch (`retry` said every row succeeded).
Now the reconcile output names `retry --batch B --missing`; that looks each missing order up
first and resends only what Chargebee still lacks, with an idempotency key of its own (the
original key is remembered for 30 minutes and would be answered from memory, creating
nothing). Real CLI, real sandbox; the sandbox's request log counts what reached it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import support
from tests.orders_factory import write_orders
from tests.support import request_log

KEY = "missing_test_key"
GONE = "T-000002"
IMPORT = "/api/v2/orders/import_order"


@pytest.fixture
def server(make_sandbox, tmp_path, monkeypatch):
    """Batch b1 (4 orders) imported by the real CLI; then one order deleted behind its back."""
    monkeypatch.chdir(tmp_path)
    Path("order-import.toml").write_text("export_poll_seconds = 0.05\n", encoding="utf-8")
    sandbox = make_sandbox(api_key=KEY, export_delay_s=0.05)
    ran = invoke(sandbox, "run", str(write_orders(tmp_path / "o.csv", 4)), "--batch", "b1", "-q")
    assert ran.exit_code == 0, ran.output
    with httpx.Client(base_url=sandbox.base_url, auth=(KEY, ""), timeout=10) as client:
        client.post(f"/orders/{GONE}/delete").raise_for_status()
    return sandbox


def invoke(server, *args: str):
    """The CLI in-process against the sandbox."""
    return support.invoke(server, KEY, *args)


def posts_for(entries: list[dict[str, Any]], order_id: str) -> list[dict[str, Any]]:
    """import_order requests that carried ``order_id``."""
    return [e for e in entries if e["path"] == IMPORT and e.get("order_id") == order_id]


def test_a_deleted_order_is_found_missing_sent_again_once_and_reconciles_clean(server):
    """reconcile → missing + the next step; retry --missing → GET then one POST; clean after."""
    found = invoke(server, "reconcile", "--batch", "b1", "--via", "list")
    assert found.exit_code == 1, found.output
    assert "send them again with `order-import retry --batch b1 --missing`" in found.output
    html = Path("reports/b1/report.html").read_text(encoding="utf-8")
    section = html.split('id="reconciliation"')[1].split("</section>")[0]
    assert GONE in section
    assert "None" not in section  # an absent field/value is an empty cell
    summary = json.loads(Path("reports/b1/summary.json").read_text(encoding="utf-8"))
    assert "order-import retry --batch b1 --missing" in json.dumps(summary)
    before = len(request_log(server))

    resent = invoke(server, "retry", "--batch", "b1", "--missing", "-q")
    assert resent.exit_code == 0, resent.output
    assert "1 order(s) the last reconciliation found missing" in resent.output
    new = request_log(server)[before:]
    assert [e["method"] for e in new if e.get("order_id") == GONE] == ["GET", "POST"]
    assert len([e for e in new if e["path"] == IMPORT]) == 1  # only the missing order
    first, again = posts_for(request_log(server), GONE)
    assert again["idempotency_key"] != first["idempotency_key"]
    assert again["replayed"] is False

    clean = invoke(server, "reconcile", "--batch", "b1", "--via", "list")
    assert clean.exit_code == 0, clean.output

    before = len(request_log(server))
    twice = invoke(server, "retry", "--batch", "b1", "--missing", "-q")
    assert twice.exit_code == 0, twice.output
    # looked up: present
    assert [e for e in request_log(server)[before:] if e["path"] == IMPORT] == []


def test_missing_needs_a_reconciliation_first(server):
    """retry --missing before any reconcile: exit 2 naming the command to run."""
    result = invoke(server, "retry", "--batch", "b1", "--missing")
    assert result.exit_code == 2
    assert "order-import reconcile --batch b1" in result.output
    assert "Traceback" not in result.output
