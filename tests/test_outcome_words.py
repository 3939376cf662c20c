"""One vocabulary for row outcomes (docs/ledger.md): the end-of-run lines, `status`,
summary.md and report.html name the same rows with the same words and numbers."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import main
from tests.orders_factory import write_orders

KEY = "words_test_key"


def _invoke(server, *args: str):
    env = {"CHARGEBEE_API_KEY": KEY, "CHARGEBEE_BASE_URL": server.base_url}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_imported_and_already_present_read_the_same_everywhere(
    make_sandbox, tmp_path: Path, monkeypatch
):
    """One order is already in Chargebee (imported through another ledger): every output says
    imported 2, already present 1 for the three rows."""
    monkeypatch.chdir(tmp_path)
    server = make_sandbox(api_key=KEY, rate_limit_per_minute=None, concurrency_limit=None)
    first = write_orders(tmp_path / "first.csv", 1)
    assert (
        _invoke(
            server, "run", str(first), "--batch", "b0", "-q", "--ledger", "other.sqlite"
        ).exit_code
        == 0
    )
    source = write_orders(tmp_path / "orders.csv", 3)
    run = _invoke(server, "run", str(source), "--batch", "b1", "-q", "--rate", "6000")
    assert run.exit_code == 0, run.output
    assert "imported 2, already present 1," in run.output
    assert "succeeded 1" not in run.output  # the old "succeeded 3 (already present 1)"
    status = _invoke(server, "status", "--batch", "b1")
    assert re.search(r"imported 2\s+already present 1\b", status.output), status.output
    summary_md = (tmp_path / "reports" / "b1" / "summary.md").read_text(encoding="utf-8")
    assert "Imported: **2**, already present 1" in summary_md
    html = (tmp_path / "reports" / "b1" / "report.html").read_text(encoding="utf-8")
    assert re.search(r"<b>2</b><span>imported</span>", html)
    assert re.search(r"<b>1</b><span>already present</span>", html)
    for text in (run.output, status.output, summary_md, html):
        assert "reconciled" not in text.lower().replace("reconciled: ", "")
