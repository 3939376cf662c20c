"""Tests of the reports: files read back against the ledger, injection safety, scale."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from pipeline.cli import main
from pipeline.config import Settings
from pipeline.keys import ROW_KEY_COLUMN
from pipeline.ledger.ledger import Ledger
from pipeline.models import Attempt, Issue, Outcome, Resolution, SourceRow
from pipeline.report.data import default_report_dir, next_steps, render_status_text, summarize
from pipeline.report.write import TABLE_CAP, write_reports
from pipeline.safety import unneutralise_cell

BATCH = "jan-orders"
HOSTILE = ["=cmd|' /C calc'!A0", "+1+1", "@SUM(A1)", "-2+3", "<script>alert(1)</script>"]


def source_row(i: int, *, bad: str | None = None, note: str = "ok") -> SourceRow:
    """Row ``r{i}`` at line i+2; ``bad`` makes its currency invalid with that value."""
    raw = {"id": f"O{i}", "currency_code": bad or "USD", "total": str(i * 100), "note": note}
    issues: tuple[Issue, ...] = ()
    if bad is not None:
        issues = (
            Issue(
                i + 2,
                "currency_code",
                "currency_code",
                bad,
                "enum",
                f"currency {bad} is not ISO 4217",
            ),
        )
    params = {"id": f"O{i}", "currency_code": "USD", "total": i * 100}
    return SourceRow(f"r{i}", "orders.csv", None, i + 2, raw, params, issues)


def build(path: Path | str, n: int = 40) -> Ledger:
    """A ledger with succeeded, failed, conflict, retryable, in-doubt and invalid rows."""
    led = Ledger(path)
    led.open_batch(
        BATCH,
        operation="import",
        source_file="orders.csv",
        input_sha256="f" * 64,
        config_fingerprint="cfg",
    )
    run = led.start_run(BATCH, command="run", settings_summary={"rate": 150})
    rows = []
    for i in range(n):
        if i % 10 == 3:
            rows.append(source_row(i, bad=HOSTILE[(i // 10 + 1) % len(HOSTILE)]))
        else:
            rows.append(source_row(i, note=HOSTILE[(i + i // 10) % len(HOSTILE)]))
    led.plan(BATCH, rows, operation="import", run_id=run)
    t0 = 1_700_000_000.0
    for k, item in enumerate(list(led.work(BATCH))):
        led.mark_in_flight(BATCH, item.row_key, run_id=run, idempotency_key=f"i{k}")
        led.log_attempt(
            Attempt(BATCH, item.row_key, run, t0 + k, 100.0 + k, 200, None, "send", "ok")
        )
        i = int(item.row_key[1:])
        if i % 10 == 5:
            led.log_attempt(
                Attempt(
                    BATCH,
                    item.row_key,
                    run,
                    t0 + k + 0.5,
                    5.0,
                    429,
                    "api_request_limit_exceeded",
                    "send",
                    "throttled",
                )
            )
            led.record(
                Outcome(
                    BATCH,
                    item.row_key,
                    run,
                    "failed",
                    http_status=400,
                    api_error_code="param_wrong_value",
                    param="note",
                    message="note : <b>bad</b> =1+1",
                    attempts=2,
                )
            )
        elif i % 10 == 7:
            led.record(
                Outcome(
                    BATCH,
                    item.row_key,
                    run,
                    "conflict",
                    http_status=400,
                    api_error_code="duplicate_entry",
                    param="id",
                    message="id already exists with other content",
                    attempts=1,
                )
            )
        elif i == 8:
            led.record(
                Outcome(
                    BATCH,
                    item.row_key,
                    run,
                    "retryable",
                    http_status=503,
                    api_error_code="internal_temporary_error",
                    attempts=6,
                )
            )
        elif i == 9:
            pass  # left in flight: in doubt
        else:
            res: Resolution = "already_present" if i % 10 == 1 else "imported"
            led.record(
                Outcome(
                    BATCH,
                    item.row_key,
                    run,
                    "succeeded",
                    resolution=res,
                    http_status=200,
                    attempts=1,
                )
            )
    led.finish_run(run, status="done", summary={"achieved_per_minute": 120.0, "throttled": 4})
    return led


@pytest.fixture
def reports(tmp_path: Path) -> Iterator[tuple[Ledger, Path]]:
    """A built ledger and its reports in tmp_path/out."""
    led = build(tmp_path / "ledger.sqlite")
    write_reports(led, BATCH, tmp_path / "out")
    yield led, tmp_path / "out"
    led.close()


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV written by the reports (UTF-8 with BOM)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_summary_counts_equal_the_ledger(reports: tuple[Ledger, Path]) -> None:
    """summary.json's counts are the ledger's counts, and the derived numbers add up."""
    led, out = reports
    data = json.loads((out / "summary.json").read_text())
    assert data["counts"] == {k: v for k, v in led.counts(BATCH).items()}
    assert data["rows_read"] == 40
    assert data["invalid"] == 4
    assert data["failed"] == 4
    assert data["conflict"] == 4
    assert data["in_doubt"] == 1
    assert data["retryable"] == 1
    assert data["already_present"] == 4
    assert data["imported"] == data["succeeded"] - 4
    assert data["throttled"] == 4
    assert data["requests"] == 36 + 4
    assert data["input_sha256"] == "f" * 64
    assert data["errors_by_api_code"][0] in (
        {"code": "param_wrong_value", "rows": 4},
        {"code": "duplicate_entry", "rows": 4},
    )
    assert data["errors_by_rule"] == [{"rule": "enum", "rows": 4}]
    assert data["latency_ms"]["max"] == 135.0
    assert data["exit_code"] == 3


def test_every_problem_row_appears_once_with_its_line(reports: tuple[Ledger, Path]) -> None:
    """failures.csv and .xlsx hold each failed/conflict/retryable/invalid row exactly once."""
    led, out = reports
    expected = {
        r.row_key: r.source_line
        for r in led.rows(BATCH, states=("failed", "conflict", "retryable", "invalid"))
    }
    rows = read_csv(out / "failures.csv")
    keys = Counter(r[ROW_KEY_COLUMN] for r in rows)
    assert set(keys) == set(expected)
    assert max(keys.values()) == 1
    assert all(int(r["oi:source_line"]) == expected[r[ROW_KEY_COLUMN]] for r in rows)
    wb = load_workbook(out / "failures.xlsx", read_only=True)
    assert wb.active is not None
    sheet = list(wb.active.iter_rows(values_only=True))
    header, body = sheet[0], sheet[1:]
    col = header.index(ROW_KEY_COLUMN)
    sheet_keys: list[Any] = [r[col] for r in body]
    assert sorted(sheet_keys) == sorted(expected)
    wb.close()


def test_failures_keep_original_columns_and_reasons(reports: tuple[Ledger, Path]) -> None:
    """failures.csv starts with the source columns and carries stage, rule and API reasons."""
    _, out = reports
    rows = read_csv(out / "failures.csv")
    assert list(rows[0])[:4] == ["id", "currency_code", "total", "note"]
    by_key = {r[ROW_KEY_COLUMN]: r for r in rows}
    assert by_key["r3"]["oi:stage"] == "schema"
    assert by_key["r3"]["oi:rule"] == "enum"
    assert by_key["r3"]["oi:column"] == "currency_code"
    assert by_key["r5"]["oi:api_error_code"] == "param_wrong_value"
    assert by_key["r5"]["oi:param"] == "note"
    assert by_key["r5"]["oi:stage"] == "api"
    assert by_key["r7"]["oi:state"] == "conflict"
    assert by_key["r8"]["oi:state"] == "retryable"
    assert "r9" not in by_key  # in doubt is not a failure to fix: it is reconciled


def test_formulas_are_neutralised_in_csv_and_xlsx(reports: tuple[Ledger, Path]) -> None:
    """No CSV/XLSX cell starts with = + - @ unless it is a plain number; values round-trip."""
    _, out = reports
    trigger = re.compile(r"^[=+\-@]")
    number = re.compile(r"^[+-]?\d+(\.\d+)?$")
    cells: list[str] = []
    for name in ("failures.csv", "validation.csv"):
        with (out / name).open(encoding="utf-8-sig", newline="") as handle:
            cells += [c for row in csv.reader(handle) for c in row]
    wb = load_workbook(out / "failures.xlsx", read_only=True)
    assert wb.active is not None
    cells += [str(c) for row in wb.active.iter_rows(values_only=True) for c in row if c]
    wb.close()
    assert not [c for c in cells if trigger.match(c) and not number.match(c)]
    assert "'=cmd|' /C calc'!A0" in cells
    assert "'-2+3" in cells
    assert {unneutralise_cell(c) for c in cells} >= set(HOSTILE)


def test_markup_is_escaped_in_html(reports: tuple[Ledger, Path]) -> None:
    """Data with <script> and <b> shows escaped in report.html; only our own script runs."""
    _, out = reports
    html = (out / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>bad</b>" not in html
    assert html.count("<script") == 1
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", html)
    assert not re.search(r"url\(\s*[\"']?(?!#)", html)  # only in-document references
    assert "@import" not in html
    assert "<metadata>" not in html


def test_html_has_cards_charts_and_table(reports: tuple[Ledger, Path]) -> None:
    """report.html carries the summary cards, inline SVG charts and one line per finding."""
    _, out = reports
    html = (out / "report.html").read_text()
    for label in (
        "rows read",
        "valid",
        "imported",
        "already present",
        "invalid",
        "in doubt",
        "duration",
        "most in any 60 s",
        "Next step",
    ):
        assert label in html
    assert html.count("<svg") == 5
    body = html.split('<table id="failures">')[1].split("</table>")[0]
    assert body.count("<tr data-state=") == 13
    assert "param_wrong_value" in body
    assert 'id="cap-note"' not in html


def test_validation_csv_lists_every_finding(reports: tuple[Ledger, Path]) -> None:
    """validation.csv has one line per finding with file, line, column, rule and message."""
    _, out = reports
    rows = read_csv(out / "validation.csv")
    assert [int(r["source_line"]) for r in rows] == [5, 15, 25, 35]
    assert all(r["rule"] == "enum" and r["severity"] == "error" for r in rows)
    assert rows[0]["source_file"] == "orders.csv"
    assert list(rows[0]) == [
        "source_file",
        "sheet",
        "source_line",
        "column",
        "param",
        "value",
        "rule",
        "severity",
        "message",
    ]


def test_summary_md_and_status_text(reports: tuple[Ledger, Path]) -> None:
    """summary.md and the status text show the same numbers as summary.json."""
    led, out = reports
    md = (out / "summary.md").read_text()
    assert "Rows read: **40**" in md
    assert f"`order-import retry --batch jan-orders {out / 'failures.csv'}`" in md
    text = render_status_text(summary := summarize(led, BATCH), next_steps(summary))
    assert "rows read 40" in text
    assert "in doubt 1" in text
    assert "exit code 3" in text


def test_report_is_rebuilt_from_the_ledger_alone(tmp_path: Path) -> None:
    """`order-import report` rebuilds identical data files from the ledger, no source file."""
    path = tmp_path / "ledger.sqlite"
    build(path).close()
    first = tmp_path / "a"
    with Ledger(path) as led:
        write_reports(led, BATCH, first)
    result = CliRunner().invoke(
        main, ["report", "--batch", BATCH, "--out", str(tmp_path / "b"), "--ledger", str(path)]
    )
    assert result.exit_code == 0, result.output
    for name in ("failures.csv", "validation.csv"):
        assert (first / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # summary.md's next steps name the files where they are (its own directory, the ledger).
    numbers = [(d / "summary.md").read_text().split("Next:")[0] for d in (first, tmp_path / "b")]
    assert numbers[0] == numbers[1]
    assert (
        f"--ledger {path} {tmp_path / 'b' / 'failures.csv'}"
        in (tmp_path / "b" / "summary.md").read_text()
    )
    assert (tmp_path / "b" / "report.html").stat().st_size > 1000


def test_report_cli_unknown_batch_exits_2(tmp_path: Path) -> None:
    """An unknown batch is one clear line and exit code 2."""
    path = tmp_path / "ledger.sqlite"
    build(path, n=5).close()
    result = CliRunner().invoke(
        main, ["report", "--batch", "nope", "--out", str(tmp_path / "o"), "--ledger", str(path)]
    )
    assert result.exit_code == 2
    assert "no batch named 'nope'" in result.output
    assert BATCH in result.output


def test_no_api_key_in_any_report(tmp_path: Path) -> None:
    """A Settings with an API key passed to write_reports leaves no trace of it in the files."""
    from pipeline.config import Secret

    sentinel = "live_SENTINEL_abcdef123456"
    settings = Settings(api_key=Secret(sentinel), site="acme-test", rate_per_minute=90)
    with build(tmp_path / "l.sqlite", n=12) as led:
        paths = write_reports(led, BATCH, tmp_path / "o", settings=settings)
    blob = b"".join(p.read_bytes() for p in paths.out_dir.iterdir())
    assert sentinel.encode() not in blob
    assert b"SENTINEL" not in blob


def test_default_report_dir() -> None:
    """reports/<batch>/ by default (path-safe), the configured dir when set."""
    assert default_report_dir(None, "jan/../x") == Path("reports/jan_.._x")
    assert default_report_dir(Settings(report_dir=Path("/r")), "b") == Path("/r")


@pytest.mark.slow
def test_large_batch_report_is_capped(tmp_path: Path) -> None:
    """A batch with more problem rows than the table cap (60,000 rows, 6,000 invalid) gets a
    capped table; failures.csv still has every problem row. The cap is a line count, so any
    batch past it proves the same; building reports for 1M rows is measured in
    bench/bench_ledger.py."""
    n = 60_000
    with Ledger(tmp_path / "big.sqlite") as led:
        led.open_batch(
            BATCH,
            operation="import",
            source_file="big.csv",
            input_sha256="s",
            config_fingerprint="c",
        )
        run = led.start_run(BATCH, command="run", settings_summary={})
        led.plan(
            BATCH,
            (source_row(i, bad="XX" if i % 10 == 0 else None) for i in range(n)),
            operation="import",
            run_id=run,
        )
        paths = write_reports(led, BATCH, tmp_path / "out")
    assert paths.table_capped
    assert paths.table_rows == TABLE_CAP
    assert n // 10 > TABLE_CAP
    assert paths.failures == n // 10
    html = paths.html.read_text()
    assert 'id="cap-note"' in html
    assert paths.html.stat().st_size < 5_000_000
    with paths.failures_csv.open(encoding="utf-8-sig") as handle:
        assert sum(1 for _ in handle) == n // 10 + 1


def test_reports_for_a_batch_with_nothing_sent(tmp_path: Path) -> None:
    """A planned-only batch (no attempts, no failures) still gets every file, with zeros."""
    with Ledger(tmp_path / "l.sqlite") as led:
        led.open_batch(
            BATCH, operation="import", source_file="o.csv", input_sha256="s", config_fingerprint="c"
        )
        run = led.start_run(BATCH, command="run", settings_summary={})
        led.plan(BATCH, [source_row(i) for i in range(3)], operation="import", run_id=run)
        paths = write_reports(led, BATCH, tmp_path / "o")
        text = render_status_text(summary := summarize(led, BATCH), next_steps(summary))
    data = json.loads(paths.summary_json.read_text())
    assert data["pending"] == 3
    assert data["requests"] == 0
    assert data["latency_ms"] == {}
    assert paths.failures == 0
    assert read_csv(paths.failures_csv) == []
    assert "row(s) are still pending: run the same command again" in text
    assert paths.html.read_text().count("<svg") == 1  # only rows by state has data
