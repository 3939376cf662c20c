"""Control amounts are reconciled with what the site holds (a rehearsal against seeded invoices).

The sandbox seeded with invoices gives each imported order its invoice's currency and total, as
Chargebee does; ``reconcile`` compares each row's ``[control]`` amount and currency with them, so
a legacy amount that does not match its invoice shows up before the real run.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests import support
from tests.orders_factory import write_orders
from tests.sandbox_process import KEY, Running, python_sandbox, seed_invoices

pytestmark = pytest.mark.slow

ROWS = 6
WRONG = 2  # this row's legacy amount is not its invoice's total


def _with_amounts(path: Path) -> None:
    """Add ``Amount`` (major units) and ``Currency`` columns: the invoice's total, except one."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for i, row in enumerate(rows):
        row["Amount"] = "99.99" if i == WRONG else f"{(1000 + i) / 100:.2f}"
        row["Currency"] = "EUR"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_a_control_amount_that_differs_from_the_invoice_is_a_reconcile_finding(
    sandboxes: list[Running], tmp_path: Path
) -> None:
    source = write_orders(tmp_path / "orders.csv", ROWS, prefix="CA")
    _with_amounts(source)
    site = python_sandbox(sandboxes, tmp_path, seed_invoices(tmp_path / "seed.csv", range(ROWS)))
    init = support.run_cli(
        site, KEY, "mapping", "init", "orders.csv", "--out", "mapping.toml", cwd=tmp_path
    )
    support.assert_clean_exit(init)
    # mapping init recognises the amount and currency columns as control fields.
    assert "[control]" in (tmp_path / "mapping.toml").read_text(encoding="utf-8")
    run = support.run_cli(
        site, KEY, "run", "orders.csv", "--batch", "ca", "--mapping", "mapping.toml", cwd=tmp_path
    )
    support.assert_clean_exit(run)
    result = support.run_cli(site, KEY, "reconcile", "--batch", "ca", "--via", "list", cwd=tmp_path)
    support.assert_clean_exit(result, 1)
    with (tmp_path / "reports" / "ca" / "reconciliation.csv").open(encoding="utf-8-sig") as handle:
        findings = list(csv.DictReader(handle))
    control = [f for f in findings if "control" in (f.get("field") or "")]
    assert [(f["order_id"], f["field"], f["expected"], f["actual"]) for f in control] == [
        (f"CA-{WRONG:06d}", "total (control amount)", "9999", str(1000 + WRONG))
    ], findings
    assert len(findings) == 1, findings
