"""Edge cases of exactly-once found in review, each pinned against the real sandbox and CLI."""

from __future__ import annotations

import csv
import fcntl
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipeline.keys import idempotency_key
from pipeline.ledger.ledger import Ledger
from tests import support
from tests.orders_factory import write_orders

KEY = "edge_test_key"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run every CLI call from an empty directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(server, *args: str, key: str = KEY):
    """Invoke the CLI in-process against the sandbox."""
    return support.invoke(server, key, *args)


def orders(server) -> dict[str, dict[str, Any]]:
    """Live orders in the sandbox by id."""
    return {o["id"]: o for o in server.state()["orders"] if not o.get("deleted")}


def run(server, source: Path, *more: str, key: str = KEY):
    """A quiet, fast run of batch b1."""
    args = ("run", str(source), "--batch", "b1", "--quiet", "--rate", "6000", *more)
    return invoke(server, *args, key=key)


def test_row_in_doubt_and_corrected_since_is_sent_with_its_correction(make_sandbox, workdir):
    """A row left in_flight (never sent) and then corrected in the file lands with the new
    values: in-doubt rows are reconciled before the file is planned."""
    server = make_sandbox(api_key=KEY)
    source = write_orders(workdir / "orders.csv", 3)
    assert run(server, source, "--dry-run").exit_code == 0
    with Ledger("order-import.sqlite") as ledger:
        item = next(i for i in ledger.work("b1") if i.order_id == "T-000001")
        key = idempotency_key("import", "b1", item.row_key, item.content_hash)
        ledger.mark_in_flight("b1", item.row_key, run_id=1, idempotency_key=key)
    fixed = write_orders(workdir / "orders.csv", 3, bad={1: {"status": "returned"}})
    result = run(server, fixed, "--allow-drift")
    assert result.exit_code == 0, result.output
    assert orders(server)["T-000001"]["status"] == "returned"
    assert len(orders(server)) == 3
    # --allow-drift adopted the corrected file: running it again needs no flag.
    assert run(server, fixed).exit_code == 0


def test_correction_of_a_row_chargebee_already_holds_is_a_conflict_not_a_success(
    make_sandbox, workdir
):
    """The first POST was stored but answered 500 (row left retryable); the corrected row then
    meets duplicate_entry: reported as a conflict (content differs), never as succeeded."""
    server = make_sandbox(api_key=KEY, fault_rate=1.0, faults=("after_commit",))
    Path("order-import.toml").write_text("max_attempts = 1\n", encoding="utf-8")
    source = write_orders(workdir / "orders.csv", 2)
    first = run(server, source)
    assert first.exit_code == 1, first.output
    assert set(orders(server)) == {"T-000000", "T-000001"}
    server.reconfigure(fault_rate=0.0)
    fixed = write_orders(workdir / "fixed.csv", 2, bad={1: {"status": "returned"}})
    result = invoke(server, "retry", str(fixed), "--batch", "b1", "--quiet", "--rate", "6000")
    assert result.exit_code == 1, result.output
    status = json.loads(invoke(server, "status", "--batch", "b1", "--json").output)
    assert status["counts"]["conflict"] == 1
    assert status["counts"]["succeeded"] == 1
    with Ledger("order-import.sqlite") as ledger:
        conflict = next(iter(ledger.rows("b1", states=("conflict",))))
    assert conflict.error_code == "content_differs"
    assert "order-import update" in (conflict.message or "")
    assert orders(server)["T-000001"]["status"] != "returned"


def test_a_row_repeating_an_earlier_row_key_never_replaces_it(make_sandbox, workdir):
    """Duplicate ids in one file: inside a chunk every row sharing the id is invalid (the first
    too, never sent); across chunks the first row was already planned and is imported. The
    repeats are reported invalid under keys of their own, and nothing is lost."""
    server = make_sandbox(api_key=KEY)
    Path("order-import.toml").write_text("chunk_rows = 3\n", encoding="utf-8")
    source = write_orders(
        workdir / "orders.csv",
        6,
        bad={1: {"id": "T-000000", "document_number": "X1"}, 4: {"id": "T-000002"}},
    )
    result = run(server, source)
    assert result.exit_code == 1, result.output
    assert set(orders(server)) == {"T-000002", "T-000003", "T-000005"}
    status = json.loads(invoke(server, "status", "--batch", "b1", "--json").output)
    assert status["counts"]["invalid"] == 3
    assert status["counts"]["succeeded"] == 3
    with (workdir / "reports" / "b1" / "failures.csv").open(encoding="utf-8-sig") as handle:
        lines = sorted(int(row["oi:source_line"]) for row in csv.DictReader(handle))
    assert lines == [2, 3, 6]


def test_a_second_concurrent_run_on_one_ledger_is_refused(make_sandbox, workdir):
    """While another run holds the ledger, a run exits 2 with a clear message, sending nothing.
    (Through symlinks and hard links: tests/test_ledger_lock.py.)"""
    server = make_sandbox(api_key=KEY)
    source = write_orders(workdir / "orders.csv", 2)
    with open("order-import.sqlite", "a+b") as held:  # the lock is on the ledger file itself
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run(server, source)
    assert result.exit_code == 2
    assert "another order-import run" in result.output
    assert server.state()["requests"] == []
    assert run(server, source).exit_code == 0


def test_a_refused_key_still_leaves_reports(make_sandbox, workdir):
    """401 stops the run (exit 2) and the reports of what the ledger holds are still written."""
    server = make_sandbox(api_key=KEY)
    source = write_orders(workdir / "orders.csv", 4)
    result = run(server, source, key="not-the-key")
    assert result.exit_code == 2
    summary = json.loads((workdir / "reports" / "b1" / "summary.json").read_text("utf-8"))
    assert summary["counts"]["pending"] == 4
    assert Counter(orders(server)) == Counter()


def test_rows_without_id_keep_their_identity_across_corrections(make_sandbox, workdir):
    """Without an id column the document number keys the row: correcting another cell after
    the import never creates a second order."""
    server = make_sandbox(api_key=KEY)

    def write(city: str) -> Path:
        path: Path = workdir / "noid.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["document_number", "invoice_id", "status", "created_at",
                             "order_date", "shipping_date", "shipping_address[city]"])  # fmt: skip
            for i in range(3):
                ts = 1_672_531_200 + i
                writer.writerow([f"D{i}", f"INV-{i}", "delivered", ts, ts, ts + 60, city])
        return path

    assert run(server, write("Lyon")).exit_code == 0
    result = run(server, write("Lyons"), "--allow-drift")
    assert result.exit_code == 0, result.output
    docs = Counter(o["document_number"] for o in orders(server).values())
    assert docs == Counter({"D0": 1, "D1": 1, "D2": 1})


def test_rows_removed_from_a_corrected_file_are_not_sent(make_sandbox, workdir):
    """run --allow-drift with rows deleted from the file: the unsent ones leave the batch and are
    never imported; rows already imported stay recorded."""
    server = make_sandbox(api_key=KEY)
    source = write_orders(workdir / "orders.csv", 5)
    assert run(server, source, "--canary", "1").exit_code == 0
    assert set(orders(server)) == {"T-000000"}
    with source.open(encoding="utf-8") as handle:
        lines = handle.readlines()
    kept = [line for line in lines if not line.startswith(("T-000000,", "T-000003,"))]
    source.write_text("".join(kept), encoding="utf-8")
    result = run(server, source, "--allow-drift")
    assert result.exit_code == 0, result.output
    assert "2 unsent row(s)" not in result.output  # T-000000 was sent: it stays
    assert "1 unsent row(s) no longer in the input were removed" in result.output
    assert set(orders(server)) == {"T-000000", "T-000001", "T-000002", "T-000004"}
    status = json.loads(invoke(server, "status", "--batch", "b1", "--json").output)
    assert status["counts"]["succeeded"] == 4
    assert sum(status["counts"].values()) == 4
