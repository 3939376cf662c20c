"""End-to-end: `order-import update` (real CLI) against the real sandbox over HTTP."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from pipeline.config import load_settings
from pipeline.update.update import update_batch
from tests import support
from tests.orders_factory import write_orders

KEY = "update_test_key"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run every CLI call from an empty directory with a fast-polling config."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "order-import.toml").write_text("export_poll_seconds = 0.05\n", encoding="utf-8")
    return tmp_path


@pytest.fixture
def server(make_sandbox):
    """A sandbox with quick exports."""
    return make_sandbox(api_key=KEY, export_delay_s=0.1)


def invoke(server, *args: str):
    """Invoke the CLI in-process against the sandbox."""
    return support.invoke(server, KEY, *args)


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    """A CSV with the union of the rows' columns."""
    header = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def import_batch(server, workdir: Path, count: int = 6) -> None:
    """Import ``count`` orders as batch b1 through the real `run` command."""
    source = write_orders(workdir / "orders.csv", count)
    result = invoke(server, "run", str(source), "--batch", "b1", "--quiet", "--rate", "6000")
    assert result.exit_code == 0, result.output


def orders(server) -> dict[str, dict[str, Any]]:
    """The sandbox's orders by id."""
    return {o["id"]: o for o in server.state()["orders"]}


def update_posts(server) -> list[dict[str, Any]]:
    """Update requests (POST /orders/{id}) the sandbox received."""
    return [
        r
        for r in server.state()["requests"]
        if r["method"] == "POST" and r["path"].count("/") == 4 and "import_order" not in r["path"]
    ]


def test_update_applies_once_and_a_second_run_sends_nothing(server, workdir):
    """Corrections land with one request per order; re-running the same file sends nothing."""
    import_batch(server, workdir)
    fixes = write_csv(
        workdir / "fixes.csv",
        [
            {"id": "T-000000", "status": "complete", "tracking_id": "TRK-0", "shipped_at": ""},
            {
                "id": "T-000001",
                "status": "",
                "tracking_id": "",
                "shipped_at": "2023-02-01T10:00:00Z",
            },
        ],
    )
    first = invoke(server, "update", str(fixes), "--batch", "fix1", "--quiet", "--rate", "6000")
    assert first.exit_code == 0, first.output
    held = orders(server)
    assert held["T-000000"]["status"] == "complete"
    assert held["T-000000"]["tracking_id"] == "TRK-0"
    assert held["T-000001"]["shipped_at"] == 1675245600
    assert len(update_posts(server)) == 2
    before = len(server.state()["requests"])
    second = invoke(server, "update", str(fixes), "--batch", "fix1", "--quiet", "--rate", "6000")
    assert second.exit_code == 0, second.output
    assert len(server.state()["requests"]) == before
    recon = invoke(server, "reconcile", "--batch", "b1", "--out", "recon")
    assert recon.exit_code == 0, recon.output


def test_only_changed_fields_are_sent(server, workdir):
    """A field equal to what the ledger knows is not sent, even if Chargebee now differs."""
    import_batch(server, workdir)
    with httpx.Client(base_url=server.base_url, auth=(KEY, ""), timeout=10) as client:
        client.post("/orders/T-000000", data={"status": "returned"}).raise_for_status()
    # T-000000 was imported "delivered": the file's status is no change, tracking_id is new.
    fixes = write_csv(
        workdir / "fixes.csv", [{"id": "T-000000", "status": "delivered", "tracking_id": "NEW-1"}]
    )
    result = invoke(server, "update", str(fixes), "--batch", "fix1", "--quiet")
    assert result.exit_code == 0, result.output
    held = orders(server)["T-000000"]
    assert held["tracking_id"] == "NEW-1"
    assert held["status"] == "returned"  # status was not sent
    status = json.loads(invoke(server, "status", "--batch", "fix1", "--json").output)
    assert status["counts"]["succeeded"] == 1


def test_row_with_nothing_to_change_is_recorded_without_a_request(server, workdir):
    """A correction equal to the ledger's values is succeeded/unchanged and costs no request."""
    import_batch(server, workdir)
    before = len(server.state()["requests"])
    fixes = write_csv(
        workdir / "fixes.csv",
        [{"id": "T-000002", "status": "queued", "shipping_address[city]": "Kraków"}],
    )
    result = invoke(server, "update", str(fixes), "--batch", "fix1", "--quiet")
    assert result.exit_code == 0, result.output
    assert len(server.state()["requests"]) == before
    assert "nothing sent" in result.output


def test_billing_address_is_rejected_before_sending(server, workdir):
    """A billing_address correction makes the row invalid with a clear message; nothing sent."""
    import_batch(server, workdir)
    before = len(server.state()["requests"])
    fixes = write_csv(
        workdir / "fixes.csv",
        [{"id": "T-000003", "tracking_id": "X-1", "billing_address[city]": "Berlin"}],
    )
    result = invoke(server, "update", str(fixes), "--batch", "fix1", "--quiet")
    assert result.exit_code == 1, result.output
    assert len(server.state()["requests"]) == before
    assert orders(server)["T-000003"].get("tracking_id") is None
    status = json.loads(invoke(server, "status", "--batch", "fix1", "--json").output)
    assert status["counts"]["invalid"] == 1


def test_line_item_status_and_legacy_status_are_sent(server, workdir):
    """order_line_items[status][0] and a legacy status (voided) reach Chargebee."""
    import_batch(server, workdir)
    line_id = orders(server)["T-000004"]["order_line_items"][0]["id"]
    fixes = write_csv(
        workdir / "fixes.csv",
        [
            {
                "id": "T-000004",
                "status": "voided",
                "order_line_items[id][0]": line_id,
                "order_line_items[status][0]": "returned",
            }
        ],
    )
    result = invoke(server, "update", str(fixes), "--batch", "fix1", "--quiet")
    assert result.exit_code == 0, result.output
    held = orders(server)["T-000004"]
    assert held["status"] == "voided"
    assert held["order_line_items"][0]["status"] == "returned"


def test_an_import_file_is_refused_pointing_to_import_order(server, workdir):
    """Orders cannot be created through update: import columns are 'not updatable', exit 2,
    the hint names `order-import run`; nothing is sent."""
    fixes = write_csv(
        workdir / "fixes.csv", [{"id": "NEW-1", "invoice_id": "INV-9", "status": "shipped"}]
    )
    result = invoke(server, "update", str(fixes), "--batch", "f")
    assert result.exit_code == 2
    assert "not updatable: 'invoice_id'" in result.output
    assert "order-import run" in result.output
    assert "deprecated" in result.output
    assert server.state()["counts"]["requests"] == 0


class RecordingTransport(httpx.AsyncBaseTransport):
    """Real HTTP to the sandbox, keeping every request's method, path and form body."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.seen: list[tuple[str, str, dict[str, list[str]]]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Record the request, then send it for real."""
        body = parse_qs((await request.aread()).decode("utf-8"))
        self.seen.append((request.method, request.url.path, body))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the real transport."""
        await self.inner.aclose()


def test_request_bodies_carry_only_the_changed_fields(server, workdir):
    """On the wire, an update POST holds exactly the fields that differ from the ledger."""
    import_batch(server, workdir)
    fixes = write_csv(
        workdir / "fixes.csv",
        [
            {
                "id": "T-000001",
                "status": "shipped",  # imported as shipped: unchanged
                "shipment_carrier": "DHL",
                "shipping_address.city": "Kraków",  # unchanged
                "shipping_address.zip": "00-001",
            }
        ],
    )
    settings = load_settings(
        {"quiet": True, "rate_per_minute": 6000.0},
        environ={"CHARGEBEE_API_KEY": KEY, "CHARGEBEE_BASE_URL": server.base_url},
    )
    transport = RecordingTransport()
    summary = update_batch(settings, fixes, "fix1", transport=transport)
    assert summary.exit_code == 0
    posts = [(path, body) for method, path, body in transport.seen if method == "POST"]
    assert posts == [
        (
            "/api/v2/orders/T-000001",
            {"shipment_carrier": ["DHL"], "shipping_address[zip]": ["00-001"]},
        )
    ]


def test_reconcile_expects_applied_updates_and_flags_later_tampering(server, workdir):
    """After an update, reconcile expects the corrected values; a change behind our back shows."""
    import_batch(server, workdir)
    fixes = write_csv(workdir / "fixes.csv", [{"id": "T-000002", "status": "shipped"}])
    assert invoke(server, "update", str(fixes), "--batch", "fix1", "--quiet").exit_code == 0
    for batch in ("b1", "fix1"):
        clean = invoke(
            server, "reconcile", "--batch", batch, "--out", f"r-{batch}", "--via", "list"
        )
        assert clean.exit_code == 0, clean.output
    with httpx.Client(base_url=server.base_url, auth=(KEY, ""), timeout=10) as client:
        client.post("/orders/T-000002", data={"status": "on_hold"}).raise_for_status()
    for batch in ("b1", "fix1"):
        found = invoke(
            server, "reconcile", "--batch", batch, "--out", f"s-{batch}", "--via", "list"
        )
        assert found.exit_code == 1, found.output
        with (workdir / f"s-{batch}" / "reconciliation.csv").open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        assert [
            (r["category"], r["order_id"], r["field"], r["expected"], r["actual"]) for r in rows
        ] == [("mismatch", "T-000002", "status", "shipped", "on_hold")]
        assert "later update" in rows[0]["message"]


def test_dry_run_sends_nothing_then_the_real_run_applies(server, workdir):
    """--dry-run plans the corrections (pending) without a request; the real run sends them."""
    import_batch(server, workdir)
    fixes = write_csv(
        workdir / "fixes.csv",
        [{"id": "T-000003", "tracking_id": "D-1"}, {"id": "T-000005", "status": "shipped"}],
    )
    before = len(server.state()["requests"])
    dry = invoke(server, "update", str(fixes), "--batch", "fix1", "--quiet", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert len(server.state()["requests"]) == before
    status = json.loads(invoke(server, "status", "--batch", "fix1", "--json").output)
    assert status["counts"]["pending"] == 2
    real = invoke(server, "update", str(fixes), "--batch", "fix1", "--quiet")
    assert real.exit_code == 0, real.output
    # T-000005 was imported "shipped": unchanged, so only T-000003 costs a request
    assert [p["path"] for p in update_posts(server)] == ["/api/v2/orders/T-000003"]
    status = json.loads(invoke(server, "status", "--batch", "fix1", "--json").output)
    assert status["counts"]["succeeded"] == 2


def test_retry_of_an_update_batch_resends_updates_not_imports(server, workdir):
    """retry --batch U continues U's own operation: POST /orders/{id}, never import_order."""
    import_batch(server, workdir, count=3)
    fixes = write_csv(
        workdir / "fixes.csv",
        [{"id": "T-000001", "tracking_id": "TRK-RETRY"}, {"id": "NOPE-1", "tracking_id": "X"}],
    )
    first = invoke(server, "update", str(fixes), "--batch", "u1", "--quiet", "--rate", "6000")
    assert first.exit_code == 1, first.output  # NOPE-1 does not exist: 404, failed
    before = len(server.state()["requests"])
    again = invoke(server, "retry", "--batch", "u1", "--quiet", "--rate", "6000")
    assert again.exit_code == 1, again.output
    posted = [r["path"] for r in server.state()["requests"][before:] if r["method"] == "POST"]
    assert posted == ["/api/v2/orders/NOPE-1"]
    assert orders(server)["T-000001"]["tracking_id"] == "TRK-RETRY"
    refused = invoke(server, "retry", str(fixes), "--batch", "u1", "--quiet")
    assert refused.exit_code == 2
    assert "update batch" in refused.output
