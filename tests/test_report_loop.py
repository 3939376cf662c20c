"""End-to-end fix-and-resubmit loop: run → edit failures.csv → retry imports only the fixes.

The real CLI against the real sandbox over HTTP; the failures file is the one the run wrote.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipeline.keys import ROW_KEY_COLUMN
from tests import support
from tests.orders_factory import write_orders

KEY = "loop_test_key"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run every CLI call from an empty directory (no stray order-import.toml)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(server: Any, *args: str) -> Any:
    """Invoke the CLI in-process with the sandbox as the target."""
    return support.invoke(server, KEY, *args)


def import_posts(server: Any) -> int:
    """import_order requests the sandbox has seen so far."""
    return sum(1 for r in server.state()["requests"] if "import_order" in str(r))


def test_fix_failures_csv_and_retry_imports_only_the_fixed_rows(
    make_sandbox: Any, workdir: Path
) -> None:
    """An invalid row and an API-rejected row, fixed in failures.csv, land once on retry."""
    server = make_sandbox(api_key=KEY)
    seed = write_orders(
        workdir / "seed.csv",
        1,
        prefix="S",
        # an invoice of its own: one ledger refuses a second order on an invoice it imported
        bad={0: {"document_number": "TDOC000003", "invoice_id": "INV-SEED"}},
    )
    assert invoke(server, "run", str(seed), "--batch", "seed", "--quiet").exit_code == 0
    source = write_orders(workdir / "orders.csv", 10, bad={2: {"status": "teleported"}})
    first = invoke(server, "run", str(source), "--batch", "b1", "--quiet", "--rate", "6000")
    assert first.exit_code == 1, first.output
    failures = workdir / "reports" / "b1" / "failures.csv"
    with failures.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    by_id = {row["id"]: row for row in rows}
    assert set(by_id) == {"T-000002", "T-000003"}
    assert by_id["T-000002"]["oi:state"] == "invalid"
    assert by_id["T-000002"]["oi:column"] == "status"
    # The seed order holds its document number: pre-flight refuses it before sending.
    assert by_id["T-000003"]["oi:state"] == "blocked"
    assert by_id["T-000003"]["oi:rule"] == "document_number_taken"
    assert (
        "order S-000000 already holds document number TDOC000003"
        in (by_id["T-000003"]["oi:message"])
    )
    assert all(row[ROW_KEY_COLUMN] for row in rows)

    by_id["T-000002"]["status"] = "delivered"
    by_id["T-000003"]["document_number"] = "TDOC900003"
    with failures.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    posts_before = import_posts(server)
    retry = invoke(server, "retry", "--batch", "b1", str(failures), "--quiet", "--rate", "6000")
    assert retry.exit_code == 0, retry.output
    assert import_posts(server) - posts_before == 2
    held = Counter(o["id"] for o in server.state()["orders"] if not o.get("deleted"))
    assert held == Counter({"S-000000": 1, **{f"T-{i:06d}": 1 for i in range(10)}})
    summary = json.loads((workdir / "reports" / "b1" / "summary.json").read_text())
    assert summary["succeeded"] == 10
    assert summary["failed"] == summary["invalid"] == summary["blocked"] == 0
    with failures.open(encoding="utf-8-sig") as handle:
        assert len(handle.read().splitlines()) == 1  # header only: nothing left to fix
    # One retry too many with that file: unusable input (nothing sent), and the hint says the
    # loop is over instead of asking for a new export.
    posts_before = import_posts(server)
    again = invoke(server, "retry", "--batch", "b1", str(failures), "--quiet")
    assert again.exit_code == 2, again.output
    assert "this failures file lists no rows: nothing in it to retry" in again.output
    assert "export the orders again" not in again.output
    assert import_posts(server) - posts_before == 0
