"""The mechanism, watched at the server: the real CLI (a subprocess) against the real sandbox,
asserting on what reached the sandbox's request log, not only on the orders it ends with.

- ``--rate`` is honoured: lower bounds on the spacing of arrivals (a slow machine only spaces
  them more), never more than the limit in any 60 s window.
- A canary run followed at once by the rest on the same ledger does not burst on top of the
  canary's minute (the restart budget).
- A 429 with ``Retry-After`` is waited out.
- Rows left in doubt by a kill -9 are looked up (``GET /orders/{id}``) before any POST and never
  POSTed twice (needs the ``in_flight`` mark before the POST and the look-up on resume).
- A server that echoes the request headers (the key too) into its errors: the key still never
  reaches the ledger, the reports or the output.
- Markup and formulas in failing rows: escaped in report.html, neutralised in CSV/XLSX.
- Every ledger commit of a real run is ``synchronous=FULL`` in WAL mode (read from the pragma).

Every test is bounded in time and uses a handful of rows; timings are relative, never absolute.
"""

from __future__ import annotations

import base64
import csv
import json
import sqlite3
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from openpyxl import load_workbook

from pipeline.cli import main
from pipeline.config import DEFAULT_BURST
from tests.orders_factory import write_orders
from tests.support import (
    assert_clean_exit,
    assert_each_row_posted_once,
    assert_one_key_per_row,
    cli,
    cli_env,
    duplicate_answers,
    expected_ids,
    imported_ids,
    is_import,
    kill9,
    max_in_window,
    posted_before_lookup,
    request_log,
    run_cli,
    wait_for_requests,
)

KEY = "mech_e2e_key"
RATE = 60.0
"""Requests per minute for the rate tests: one send per 61/60 s once the burst is spent."""
SPACING_S = 61.0 / RATE
"""The limiter's spacing at RATE (its window is 61 s: 60 s plus 1 s of delivery slack)."""
DELIVERY_SLACK_S = 0.5
"""Seconds a request may take from the limiter's admission to the server's arrival stamp (a
loaded 2-core machine); lower bounds subtract it once, so slowness can only help them pass."""


def run_args(source: Path, work: Path, *more: str) -> list[str]:
    """A quiet run of batch ``m`` with its ledger and reports in ``work``."""
    return [
        "run", str(source), "--batch", "m", "--quiet", "--ledger", str(work / "l.sqlite"),
        "--report-dir", str(work / "reports"), *more,
    ]  # fmt: skip


def post_times(log: list[dict[str, object]]) -> list[float]:
    """Arrival times of the import POSTs, sorted."""
    return sorted(float(r["t"]) for r in log if is_import(r))  # type: ignore[arg-type]


def test_rate_flag_is_honoured_at_the_server(make_sandbox, tmp_path):
    """``--rate 60`` with 10 rows: after the burst, arrivals are spaced ~1 s apart, so the k-th
    arrival is at least (k - burst + 1) spacings after the first; no 60 s window holds more
    than 60. Ignoring --rate (default 150/min or no limit) arrives far sooner."""
    server = make_sandbox(api_key=KEY)
    source = write_orders(tmp_path / "orders.csv", 10, prefix="RT")
    result = run_cli(server, KEY, *run_args(source, tmp_path, "--rate", str(RATE)), timeout=90)
    assert_clean_exit(result)
    log = request_log(server)
    assert_each_row_posted_once(log, expected_ids("RT", 10))
    times = post_times(log)
    for k in range(DEFAULT_BURST, len(times)):
        least = (k - DEFAULT_BURST + 1) * SPACING_S - DELIVERY_SLACK_S
        assert times[k] - times[0] >= least, (k, times[k] - times[0], least)
    assert max_in_window(times, 60.0) <= RATE


def test_canary_then_the_rest_at_once_does_not_burst_over_the_canarys_minute(
    make_sandbox, tmp_path
):
    """A canary spends the burst; the run right after it on the same ledger starts from the
    ledger's record of the last minute, so its own sends are spaced from the first one (a fresh
    limiter would send another burst at once)."""
    server = make_sandbox(api_key=KEY)
    source = write_orders(tmp_path / "orders.csv", 2 * DEFAULT_BURST, prefix="CB")
    rate = ("--rate", str(RATE))
    canary = run_cli(
        server, KEY, *run_args(source, tmp_path, *rate, "--canary", str(DEFAULT_BURST)),
        timeout=90,
    )  # fmt: skip
    assert_clean_exit(canary)
    boundary = len(request_log(server))
    assert len(post_times(request_log(server))) == DEFAULT_BURST  # + the canary's pre-flight
    rest = run_cli(server, KEY, *run_args(source, tmp_path, *rate), timeout=90)
    assert_clean_exit(rest)
    log = request_log(server)
    assert_each_row_posted_once(log, expected_ids("CB", 2 * DEFAULT_BURST))
    second = post_times(log[boundary:])
    assert len(second) == DEFAULT_BURST
    for k in range(1, len(second)):
        least = k * SPACING_S - DELIVERY_SLACK_S
        assert second[k] - second[0] >= least, (k, second[k] - second[0], least)
    assert max_in_window(post_times(log), 60.0) <= RATE


def test_429_with_retry_after_is_waited_out(make_sandbox, tmp_path):
    """The site admits 3 requests per 2 s and answers 429 with ``Retry-After`` (≥ 1 s): with one
    worker, no request follows a 429 sooner than ~1 s, and every row lands once."""
    server = make_sandbox(api_key=KEY, rate_limit_per_minute=3, window_s=2.0)
    source = write_orders(tmp_path / "orders.csv", 8, prefix="TH")
    result = run_cli(
        server, KEY, *run_args(source, tmp_path, "--rate", "60000", "--concurrency", "1"),
        timeout=120,
    )  # fmt: skip
    assert_clean_exit(result)
    assert imported_ids(server) == expected_ids("TH", 8)
    log = request_log(server)
    assert_each_row_posted_once(log, expected_ids("TH", 8))
    throttled = [i for i, r in enumerate(log) if r["status"] == 429]
    assert throttled, "the site limit should have answered 429"
    for i in throttled:
        if i + 1 < len(log):
            gap = log[i + 1]["t"] - log[i]["t"]
            assert gap >= 0.9, f"request {i + 1} came {gap:.2f} s after a 429 (Retry-After ≥ 1)"


def test_rows_in_doubt_after_kill_9_are_looked_up_before_any_post(make_sandbox, tmp_path):
    """kill -9 while 3 POSTs sit in the server (1.5 s latency): the server still stores them.
    The resume looks each one up with GET before anything else and never POSTs it again; the
    3 rows never sent are POSTed once. No replay, no duplicate_entry."""
    server = make_sandbox(api_key=KEY, latency_ms=1500)
    source = write_orders(tmp_path / "orders.csv", 6, prefix="ID")
    proc = subprocess.Popen(
        # The first requests must be the 3 POSTs (pre-flight's look-ups would take 1.5 s each);
        # the resume runs with pre-flight, after the in-doubt look-ups.
        cli(*run_args(source, tmp_path, "--rate", "60000", "--concurrency", "3", "--no-preflight")),
        env=cli_env(server, KEY),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for_requests(server, 3, proc, timeout=60)
    finally:
        assert kill9(proc), "the run ended before the kill"
    end = time.monotonic() + 20
    while len(imported_ids(server)) < 3 and time.monotonic() < end:
        time.sleep(0.05)
    assert len(imported_ids(server)) == 3, "the server should have stored the 3 POSTs in flight"
    server.reconfigure(latency_ms=0)
    boundary = len(request_log(server))
    assert boundary == 3
    result = run_cli(server, KEY, *run_args(source, tmp_path, "--rate", "60000"), timeout=90)
    assert_clean_exit(result)
    assert imported_ids(server) == expected_ids("ID", 6)
    log = request_log(server)
    in_doubt = {r["order_id"] for r in log[:boundary]}
    # GET /orders/{id} look-ups (pre-flight's list requests name no order id).
    looked_up = [r["order_id"] for r in log[boundary:] if r["method"] == "GET" and r["order_id"]]
    assert set(looked_up) == in_doubt
    assert posted_before_lookup(log, boundary) == []
    assert_each_row_posted_once(log, expected_ids("ID", 6))


def _key_forms(key: str) -> list[str]:
    """The key as it could leak: raw, url-encoded, base64 of the Basic credentials."""
    basic = base64.b64encode(f"{key}:".encode()).decode()
    return [key, urllib.parse.quote(key), basic, basic.rstrip("=")]


def test_key_echoed_by_the_server_never_reaches_ledger_reports_or_output(make_sandbox, tmp_path):
    """The sandbox pastes every request header (Authorization) and the key into each error
    message: row failures (unknown invoices → 404) and 503s. The ledger file, every report
    and all output of run, status and report stay free of the key in every form."""
    secret = "sk_test_ECHOED_0f9e8d7c"
    invoices = tmp_path / "invoices.txt"
    invoices.write_text("\n".join(f"INV-{i:06d}" for i in range(6) if i not in (1, 4)))
    server = make_sandbox(
        api_key=secret,
        echo_headers_in_errors=True,
        strict_invoices_file=str(invoices),
        fault_rate=0.3,
        faults=("before_commit",),
        fault_seed=3,
    )
    source = write_orders(tmp_path / "orders.csv", 6, prefix="EK")
    # Without pre-flight, so the unknown invoices reach the import and come back as echoing
    # 404s (pre-flight's own list answers are scrubbed too: tests/test_preflight.py).
    args = run_args(source, tmp_path, "--rate", "60000", "--log-json", "--no-preflight")
    run = run_cli(server, secret, *args)
    assert_clean_exit(run, code=1)
    log = request_log(server)
    assert any(r["api_error_code"] == "resource_not_found" for r in log)
    assert any(r["status"] == 503 for r in log), "the 503s should have echoed the key too"
    ledger = ("--ledger", str(tmp_path / "l.sqlite"))
    status = run_cli(server, secret, "status", "--batch", "m", *ledger, "--json")
    report = run_cli(
        server, secret, "report", "--batch", "m", *ledger,
        "--report-dir", str(tmp_path / "reports"),
    )  # fmt: skip
    outputs = [run.stdout, run.stderr, status.stdout, status.stderr, report.stdout, report.stderr]
    assert json.loads(status.stdout)["counts"]["failed"] == 2
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix not in (".csv", ".txt")]
    files += list((tmp_path / "reports").rglob("*.csv"))
    assert any(p.name.startswith("l.sqlite") for p in files)
    assert len(files) > 3
    for form in _key_forms(secret):
        for text in outputs:
            assert form not in text
        for path in files:
            assert form.encode() not in path.read_bytes(), f"key ({form!r}) found in {path}"


HOSTILE_MARKUP = "<script>alert(1)</script>"
HOSTILE_FORMULA = '=HYPERLINK("http://evil.example","x")'
FORMULA_STATUS = '=cmd|" /C calc"!A0'


def test_hostile_cells_are_escaped_in_html_and_neutralised_in_csv_and_xlsx(make_sandbox, tmp_path):
    """Rows whose cells hold markup and spreadsheet formulas fail validation; the real run's
    report.html shows the markup as text, and failures.csv/.xlsx and validation.csv hold every
    formula behind an apostrophe (no cell a spreadsheet would run)."""
    server = make_sandbox(api_key=KEY)
    source = write_orders(
        tmp_path / "orders.csv",
        4,
        prefix="HX",
        bad={
            1: {"status": HOSTILE_MARKUP, "customer_id": HOSTILE_FORMULA},
            2: {"status": FORMULA_STATUS, "shipping_address[city]": "@SUM(A1:A9)"},
        },
    )
    result = run_cli(server, KEY, *run_args(source, tmp_path, "--rate", "60000"), timeout=90)
    assert_clean_exit(result, code=1)
    reports = tmp_path / "reports"
    html = next(reports.rglob("report.html")).read_text(encoding="utf-8")
    assert HOSTILE_MARKUP not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    cells: list[str] = []
    for name in ("failures.csv", "validation.csv"):
        with next(reports.rglob(name)).open(encoding="utf-8-sig", newline="") as handle:
            cells += [cell for row in csv.reader(handle) for cell in row]
    book = load_workbook(next(reports.rglob("failures.xlsx")))
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", cell.coordinate
                if isinstance(cell.value, str):
                    cells.append(cell.value)
    for hostile in (HOSTILE_FORMULA, FORMULA_STATUS, "@SUM(A1:A9)"):
        assert "'" + hostile in cells, f"{hostile!r} missing from the failure files"
    runnable = [
        c for c in cells if c[:1] in ("=", "+", "@") and not c[1:].replace(".", "").isdigit()
    ]
    assert runnable == [], runnable


def test_every_ledger_commit_of_a_real_run_is_fully_synced_in_wal_mode(
    make_sandbox, tmp_path, monkeypatch
):
    """The real CLI (in-process) against the sandbox, every SQLite connection watched: each
    commit reports ``synchronous=FULL`` (2) and ``journal_mode=wal``, and the send made FULL
    commits of its own (group commits: marks before the POSTs, then outcomes; that each mark is
    durable before its POST is ``test_group_commit.py``'s). Planning may run at NORMAL (1),
    never OFF (0). kill -9 cannot see this; the pragma can."""
    seen: list[tuple[int, str]] = []

    class Watched(sqlite3.Connection):
        def _note(self) -> None:
            level = super().execute("PRAGMA synchronous").fetchone()[0]
            mode = super().execute("PRAGMA journal_mode").fetchone()[0]
            seen.append((int(level), str(mode).lower()))

        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            if sql.strip().upper().startswith(("COMMIT", "END")) and self.in_transaction:
                self._note()
            return super().execute(sql, *args)

        def commit(self) -> None:
            if self.in_transaction:
                self._note()
            super().commit()

    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return real_connect(*args, factory=Watched, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    monkeypatch.chdir(tmp_path)
    server = make_sandbox(api_key=KEY)
    source = write_orders(tmp_path / "orders.csv", 10, prefix="FS")
    result = CliRunner().invoke(
        main,
        run_args(source, tmp_path, "--rate", "60000"),
        env={"CHARGEBEE_API_KEY": KEY, "CHARGEBEE_BASE_URL": server.base_url},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert imported_ids(server) == expected_ids("FS", 10)
    assert seen, "no ledger commit was observed"
    assert {mode for _, mode in seen} == {"wal"}
    assert all(level in (1, 2) for level, _ in seen), sorted({level for level, _ in seen})
    assert sum(1 for level, _ in seen if level == 2) >= 2


def test_a_row_resent_by_a_later_run_carries_the_same_idempotency_key(make_sandbox, tmp_path):
    """Every POST is stored and then answered 500, and one attempt per run is allowed: each row
    is left retryable. The next run resends it under the SAME key, so the server answers with
    the stored reply (a replay), never duplicate_entry; one order per row. Without pre-flight,
    which would find the orders first and send nothing (test_preflight.py): the resend path is
    what this proves (it is the path when pre-flight is off or the list lags)."""
    server = make_sandbox(api_key=KEY, fault_rate=1.0, faults=("after_commit",))
    config = tmp_path / "order-import.toml"
    config.write_text("max_attempts = 1\n", encoding="utf-8")
    source = write_orders(tmp_path / "orders.csv", 4, prefix="SK")
    args = run_args(source, tmp_path, "--rate", "60000", "--config", str(config), "--no-preflight")
    first = run_cli(server, KEY, *args, timeout=90)
    assert "Traceback" not in first.stdout + first.stderr
    assert first.returncode != 0, first.stdout + first.stderr
    assert imported_ids(server) == expected_ids("SK", 4)
    boundary = len(request_log(server))
    server.reconfigure(fault_rate=0.0)
    assert_clean_exit(run_cli(server, KEY, *args, timeout=90))
    log = request_log(server)
    assert_one_key_per_row(log)
    resent = [r for r in log[boundary:] if is_import(r)]
    assert len(resent) == 4
    assert all(r["replayed"] for r in resent), "a resend under a new key is not a replay"
    assert duplicate_answers(log) == []
    assert imported_ids(server) == expected_ids("SK", 4)
