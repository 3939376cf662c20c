"""Exit codes mean what DESIGN.md says after sending too: a report that cannot be written once
rows were sent is a note, never exit 2 ("unusable input, nothing sent")."""

from __future__ import annotations

from pathlib import Path

from tests import support
from tests.orders_factory import write_orders


def test_unwritable_reports_after_sending_are_a_note_not_exit_2(make_sandbox, tmp_path: Path):
    """Every row is imported; the report directory cannot be made: exit 0 with a note saying
    how to rebuild the reports, and the orders are in Chargebee exactly once."""
    server = make_sandbox()
    source = write_orders(tmp_path / "orders.csv", 4, prefix="RPT")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the report directory should go", encoding="utf-8")
    result = support.run_cli(
        server,
        server.api_key,
        "run", str(source), "--batch", "b", "--ledger", str(tmp_path / "l.sqlite"),
        "--report-dir", str(blocker / "reports"), "--quiet", "--rate", "6000",
    )  # fmt: skip
    support.assert_clean_exit(result, 0)
    assert "the reports could not be written" in result.stdout
    assert "order-import report --batch b --out DIR" in result.stdout
    assert support.imported_ids(server) == support.expected_ids("RPT", 4)
