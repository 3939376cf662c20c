"""End-to-end: the real `order-import run/retry/status` CLI against the real sandbox over HTTP."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from tests import support
from tests.orders_factory import write_orders
from tests.support import (
    assert_duplicates_looked_up,
    assert_each_row_posted_once,
    assert_one_key_per_row,
    expected_ids,
    imported_ids,
    replayed_answers,
    request_log,
)

KEY = "e2e_test_key"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run every CLI call from an empty directory (no stray order-import.toml)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(server, *args: str, key: str = KEY, extra_env: dict[str, str] | None = None):
    """Invoke the CLI in-process with the sandbox as the target."""
    return support.invoke(server, key, *args, extra_env=extra_env)


def run_args(path: Path, batch: str = "b1", *more: str) -> list[str]:
    """Arguments for a quiet, fast run."""
    return ["run", str(path), "--batch", batch, "--quiet", "--rate", "6000", *more]


def test_run_imports_every_valid_row_once_and_rerun_sends_nothing(make_sandbox, workdir):
    """A clean file lands once; the same command again sends no request at all."""
    server = make_sandbox(api_key=KEY, rate_limit_per_minute=None, concurrency_limit=None)
    source = write_orders(workdir / "orders.csv", 40)
    first = invoke(server, *run_args(source))
    assert first.exit_code == 0, first.output
    assert imported_ids(server) == expected_ids("T", 40)
    assert_each_row_posted_once(request_log(server), expected_ids("T", 40))
    requests_before = len(server.state()["requests"])
    second = invoke(server, *run_args(source))
    assert second.exit_code == 0, second.output
    assert len(server.state()["requests"]) == requests_before
    assert "succeeded 40" in second.output


def test_invalid_rows_are_reported_not_sent_and_exit_1(make_sandbox, workdir):
    """Rows failing validation stay in the ledger as invalid; the valid ones are imported."""
    server = make_sandbox(api_key=KEY, rate_limit_per_minute=None, concurrency_limit=None)
    source = write_orders(
        workdir / "orders.csv",
        10,
        bad={2: {"status": "teleported"}, 5: {"invoice_id": ""}},
    )
    result = invoke(server, *run_args(source))
    assert result.exit_code == 1, result.output
    assert set(imported_ids(server)) == {f"T-{i:06d}" for i in range(10)} - {"T-000002", "T-000005"}
    status = invoke(server, "status", "--batch", "b1", "--json")
    counts = json.loads(status.output)["counts"]
    assert counts["invalid"] == 2
    assert counts["succeeded"] == 8


def test_wrong_key_stops_the_run_with_exit_2_and_nothing_imported(make_sandbox, workdir):
    """401 stops at once with a clear message; the key never appears in the output."""
    server = make_sandbox(api_key=KEY, rate_limit_per_minute=None, concurrency_limit=None)
    source = write_orders(workdir / "orders.csv", 30)
    result = invoke(server, *run_args(source), key="wrong_key_SENTINEL")
    assert result.exit_code == 2, result.output
    assert "api_authentication_failed" in result.output or "authentic" in result.output.lower()
    assert "wrong_key_SENTINEL" not in result.output
    assert imported_ids(server) == Counter()
    refused = len(request_log(server))
    # Nothing is left in doubt: a fixed key resumes and imports everything, each row once.
    again = invoke(server, *run_args(source))
    assert again.exit_code == 0, again.output
    assert len(imported_ids(server)) == 30
    assert_each_row_posted_once(request_log(server)[refused:], expected_ids("T", 30))


def test_dry_run_sends_nothing(make_sandbox, workdir):
    """--dry-run validates and plans but makes no request."""
    server = make_sandbox(api_key=KEY, rate_limit_per_minute=None, concurrency_limit=None)
    source = write_orders(workdir / "orders.csv", 5)
    result = invoke(server, *run_args(source, "b1", "--dry-run"))
    assert result.exit_code == 0, result.output
    assert server.state()["requests"] == []
    assert "dry run" in result.output


def test_canary_sends_n_rows_then_stops_and_the_next_run_finishes(make_sandbox, workdir):
    """--canary N sends exactly N rows; running again without it imports the rest once."""
    server = make_sandbox(api_key=KEY, rate_limit_per_minute=None, concurrency_limit=None)
    source = write_orders(workdir / "orders.csv", 12)
    first = invoke(server, *run_args(source, "b1", "--canary", "3"))
    assert first.exit_code == 0, first.output
    assert len(imported_ids(server)) == 3
    second = invoke(server, *run_args(source))
    assert second.exit_code == 0, second.output
    assert imported_ids(server) == expected_ids("T", 12)
    assert_each_row_posted_once(request_log(server), expected_ids("T", 12))


def test_live_site_is_refused_without_live_flag(workdir):
    """A *.chargebee.com site without -test needs --live: exit 2 before any request."""
    source = write_orders(workdir / "orders.csv", 2)
    result = CliRunner().invoke(
        main,
        run_args(source),
        env={"CHARGEBEE_API_KEY": KEY, "CHARGEBEE_SITE": "acme", "CHARGEBEE_BASE_URL": ""},
    )
    assert result.exit_code == 2
    assert "LIVE" in result.output


def test_faults_before_and_after_commit_still_land_every_row_once(make_sandbox, workdir):
    """503-before-commit, 500-after-commit and dropped connections: every row exactly once."""
    server = make_sandbox(
        api_key=KEY,
        rate_limit_per_minute=None,
        concurrency_limit=None,
        fault_rate=0.3,
        fault_seed=7,
    )
    source = write_orders(workdir / "orders.csv", 60)
    result = invoke(server, *run_args(source, "b1", "--concurrency", "8"))
    assert result.exit_code == 0, result.output
    assert imported_ids(server) == expected_ids("T", 60)
    faults = server.state()["counts"]
    assert faults["fault_after_commit"] + faults["fault_drop_after_commit"] > 0
    # A write stored before its answer was lost is resent under the same idempotency key and
    # answered by replay; a duplicate_entry (if any) is verified with a GET before recording.
    log = request_log(server)
    assert_one_key_per_row(log)
    assert replayed_answers(log), "no lost answer was replayed: the key changed between tries?"
    assert_duplicates_looked_up(log)


def test_retry_with_a_corrected_file_imports_only_the_fixed_rows(make_sandbox, workdir):
    """retry --batch B FILE re-sends failed rows with their fixed values, nothing else."""
    server = make_sandbox(api_key=KEY, rate_limit_per_minute=None, concurrency_limit=None)
    # Row 3 collides with an order that already exists under its id but belongs elsewhere.
    source = write_orders(workdir / "orders.csv", 6, bad={3: {"status": "bogus"}})
    first = invoke(server, *run_args(source))
    assert first.exit_code == 1
    assert len(imported_ids(server)) == 5
    fixed = write_orders(workdir / "fixed.csv", 6)
    requests_before = len(server.state()["requests"])
    result = invoke(server, "retry", str(fixed), "--batch", "b1", "--quiet", "--rate", "6000")
    assert result.exit_code == 0, result.output
    assert imported_ids(server) == Counter({f"T-{i:06d}": 1 for i in range(6)})
    new_requests = server.state()["requests"][requests_before:]
    assert [r["path"] for r in new_requests if r["method"] == "POST"] == [
        "/api/v2/orders/import_order"
    ]
