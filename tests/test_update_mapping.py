"""`update --mapping M`: a corrections file in the legacy layout goes through the run's mapping.

Issue 12/13: `update` read its file with its own rules (renames and dates only), so a
corrections file in the layout the orders were imported from (value maps, the `[id]` policy,
day-first Berlin dates) did not name the same orders or values. Now `update` reads it through
the same mapping as `run`. Import-only values the layout carries must equal what was imported
(else the row is "not updatable", with both values) and are never sent. Real CLI, real sandbox,
the sample legacy export and its mapping.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.ledger.ledger import Ledger
from tests import support

KEY = "update_mapping_key"
SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"
MAPPING = str(SAMPLE / "legacy_orders.mapping.toml")


def invoke(server, *args: str):
    """The CLI in-process against the sandbox."""
    return support.invoke(server, KEY, *args)


def legacy_rows(count: int) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the first ``count`` rows of the sample legacy export."""
    with (SAMPLE / "legacy_orders.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [row for _, row in zip(range(count), reader, strict=False)]
        return list(reader.fieldnames or []), rows


def write(path: Path, header: list[str], rows: list[dict[str, str]]) -> Path:
    """A CSV in the legacy layout."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def server(make_sandbox, tmp_path, monkeypatch):
    """The first 3 legacy orders imported with the sample mapping by the real CLI."""
    monkeypatch.chdir(tmp_path)
    sandbox = make_sandbox(api_key=KEY)
    header, rows = legacy_rows(3)
    source = write(tmp_path / "legacy.csv", header, rows)
    ran = invoke(sandbox, "run", str(source), "--batch", "b1", "--mapping", MAPPING, "-q")
    assert ran.exit_code == 0, ran.output
    return sandbox


def order(server, oid: str) -> dict[str, Any]:
    """The order Chargebee holds."""
    with httpx.Client(base_url=server.base_url, auth=(KEY, ""), timeout=10) as client:
        held: dict[str, Any] = client.get(f"/orders/{oid}").json()["order"]
        return held


def update_posts(server) -> list[str]:
    """Paths of the order-update POSTs the sandbox received."""
    log = support.request_log(server)
    return [r["path"] for r in log if r["method"] == "POST" and "import_order" not in r["path"]]


def test_a_corrections_file_in_the_legacy_layout_updates_the_same_orders(server, tmp_path):
    """Full legacy rows, one with a new status label and tracking number: mapped, diffed, sent."""
    header, rows = legacy_rows(3)
    fixed = dict(rows[1], **{"Status": "Returned", "Tracking #": "NEW-TRACK-1"})
    fixes = write(tmp_path / "fixes.csv", header, [rows[0], fixed])
    result = invoke(server, "update", str(fixes), "--batch", "fix1", "--mapping", MAPPING, "-q")
    assert result.exit_code == 0, result.output
    assert update_posts(server) == ["/api/v2/orders/OLD-10002"]  # row 10001 is unchanged
    held = order(server, "OLD-10002")
    assert held["status"] == "returned"  # the mapping's value map, not "Returned"
    assert held["tracking_id"] == "NEW-TRACK-1"
    with Ledger("order-import.sqlite") as ledger:
        sent = {r.order_id: dict(r.params) for r in ledger.rows("fix1")}
    assert sent["OLD-10002"] == {
        "id": "OLD-10002",
        "status": "returned",
        "tracking_id": "NEW-TRACK-1",
    }


def test_a_partial_legacy_file_with_day_first_dates_works(server, tmp_path):
    """Only 'Order #' and 'Delivered On' (Berlin, day first): the id policy and dates apply."""
    fixes = write(
        tmp_path / "late.csv",
        ["Order #", "Delivered On"],
        [{"Order #": "10002", "Delivered On": "07/02/2022 09:15"}],
    )
    result = invoke(server, "update", str(fixes), "--batch", "fix2", "--mapping", MAPPING, "-q")
    assert result.exit_code == 0, result.output
    assert order(server, "OLD-10002")["delivered_at"] == 1644221700  # 08:15Z (Berlin is UTC+1)


def test_an_import_only_value_that_differs_is_not_updatable(server, tmp_path):
    """A changed invoice number in the legacy layout: the row is invalid, nothing is sent."""
    header, rows = legacy_rows(3)
    changed = dict(rows[2], **{"Invoice No": "INV-999999", "Status": "Returned"})
    fixes = write(tmp_path / "bad.csv", header, [changed])
    result = invoke(server, "update", str(fixes), "--batch", "fix3", "--mapping", MAPPING, "-q")
    assert result.exit_code != 0
    assert update_posts(server) == []
    with Ledger("order-import.sqlite") as ledger:
        (row,) = ledger.rows("fix3")
    assert row.state == "invalid"
    (issue,) = [i for i in row.issues if i.rule == "not_updatable"]
    assert "not updatable: invoice_id" in issue.message
    assert "'INV-999999'" in issue.message
    assert "'INV-200002'" in issue.message
