"""A small batch with a history, for status/report old-vs-new checks: invalid rows (errors and
warnings), API failures, retryables, spreadsheet-hostile cells, currency amounts, and four runs
(the second and the last killed: no end, rows left in flight), 429s and attempts without a
latency. Written through ``Ledger`` alone, so the code of an older schema writes the same.

``python tests/status_history.py DIR`` (run by the old tree: ``PYTHONPATH=OLD``) writes
``DIR/ledger.sqlite`` and, with ``--expect``, the old code's ``status``/``report`` output next to
it: how ``tests/data/ledger_v6.sqlite`` and ``tests/data/ledger_v6_expected/`` were made.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipeline.ledger.ledger import Ledger
from pipeline.models import Attempt, Issue, Outcome, SourceRow

BATCH = "hist"
BASE = 1_700_000_000.0


def _row(i: int) -> SourceRow:
    issues: tuple[Issue, ...] = ()
    if i % 9 == 0:
        issues = (
            Issue(i + 2, "status", "status", "gone", "enum", "status: not a status", "error",
                  "rule"),
        )  # fmt: skip
        if i % 18 == 0:  # a second rule on some of them (never tied with the first)
            issues += (
                Issue(i + 2, "total", "total", "-1", "min_total", "below 0", "error", "rule"),
            )
    elif i % 13 == 0:
        issues = (Issue(i + 2, "date", "date", "x", "date", "unreadable date", "error", "parse"),)
    elif i % 7 == 0:
        issues = (
            Issue(i + 2, "total", "total", "0", "zero_total", "total is 0", "warning", "rule"),
        )
    raw = {
        "id": f"H-{i:04d}",
        "total": str(i * 10),
        "note": "=cmd|' /C calc'!A0" if i % 5 == 0 else f"note {i}",
        "city": "Zürich" if i % 2 else "Kraków",
    }
    if i % 4 == 0:
        raw["extra"] = f"x{i}"
    params = {
        "id": f"H-{i:04d}",
        "total": i * 10,
        "currency_code": ("EUR", "USD", "PLN")[i % 3],
        "status": "delivered",
    }
    return SourceRow(f"H-{i:04d}", "hist.csv", None, i + 2, raw, params, issues)


def build(path: Path, n: int = 120, seed: int = 7) -> None:
    """Write the batch and its runs into a new ledger at ``path``."""
    rng = random.Random(seed)
    rows = [_row(i) for i in range(n)]
    invalid = {r.row_key for r in rows if any(x.severity == "error" for x in r.issues)}
    sendable = [r.row_key for r in rows if r.row_key not in invalid]
    with Ledger(path) as led:
        led.open_batch(
            BATCH, operation="import", source_file="hist.csv", input_sha256="ab" * 32,
            config_fingerprint="hist",
        )  # fmt: skip
        run = led.start_run(BATCH, command="run", settings_summary={"rate_per_minute": 150})
        led.plan(BATCH, rows, operation="import", run_id=run)
        t = BASE
        plan = [
            (1, 150, sendable[: len(sendable) // 3], True),
            (2, 1000, sendable[len(sendable) // 3 : len(sendable) // 2], False),
            (3, None, sendable[len(sendable) // 2 : 4 * len(sendable) // 5], True),
            (4, 150, sendable[4 * len(sendable) // 5 :], False),
        ]
        for number, rate, keys, finishes in plan:
            if number > 1:
                run = led.start_run(
                    BATCH, command="retry" if number % 2 == 0 else "run",
                    settings_summary={} if rate is None else {"rate_per_minute": rate},
                )  # fmt: skip
            for j, key in enumerate(keys):
                led.mark_in_flight(BATCH, key, run_id=run, idempotency_key=f"k-{key}")
                tries = 1 + (j % 6 == 0)
                for attempt in range(tries):
                    t += rng.choice([0.0, 0.5, 1.0, 2.0, rng.uniform(0, 3)])
                    status: int | None = rng.choice([200, 200, 200, 400, 503])
                    if attempt + 1 < tries:
                        status = rng.choice([429, 503, None])
                    outcome = {200: "ok", 429: "throttled", 400: "permanent"}.get(
                        status or 0, "transient"
                    )
                    latency = None if j % 11 == 5 else round(rng.uniform(20, 900), 3)
                    led.log_attempt(
                        Attempt(BATCH, key, run, t, latency, status, None, "send", outcome)
                    )
                if not finishes and j >= len(keys) - 3:
                    continue  # killed: these stay in flight
                final = status
                if final == 200:
                    outcome_row = Outcome(
                        BATCH, key, run, "succeeded",
                        resolution="already_present" if j % 10 == 3 else "imported",
                        order_id=key, http_status=200, latency_ms=latency, attempts=tries,
                    )  # fmt: skip
                elif final == 400:
                    outcome_row = Outcome(
                        BATCH, key, run, "failed", http_status=400,
                        api_error_code="param_wrong_value", param="status",
                        message="status : invalid value", attempts=tries,
                    )  # fmt: skip
                else:
                    outcome_row = Outcome(
                        BATCH, key, run, "retryable", http_status=final,
                        api_error_code="site_not_ready", attempts=tries,
                    )  # fmt: skip
                led.record(outcome_row)
            led.flush_attempts()
            if finishes:
                led.finish_run(run, status="finished", summary={})
            t += 40.0 if number == 1 else 400.0


def expect(folder: Path) -> None:
    """The current tree's ``status`` (text, JSON) and ``report`` output for the ledger in
    ``folder``, written under ``folder/expected`` (cwd ``folder``: commands print as run)."""
    out = folder / "expected"
    out.mkdir(exist_ok=True)
    base = [sys.executable, "-m", "pipeline"]
    where = ["--batch", BATCH, "--ledger", "ledger.sqlite"]
    for name, extra in (("status.txt", []), ("status.json", ["--json"])):
        done = subprocess.run(
            [*base, "status", *where, *extra], cwd=folder, capture_output=True, text=True,
            check=True,
        )  # fmt: skip
        (out / name).write_text(done.stdout, "utf-8")
    subprocess.run(
        [*base, "report", *where, "--out", "report"], cwd=folder, capture_output=True,
        check=True,
    )  # fmt: skip
    report = folder / "report"
    for name in ("failures.csv", "validation.csv", "summary.md"):
        (out / name).write_bytes((report / name).read_bytes())
    (out / "summary.json").write_text(json.dumps(comparable_summary(report), indent=1), "utf-8")
    (out / "failures.xlsx.json").write_text(
        json.dumps(xlsx_cells(report / "failures.xlsx"), ensure_ascii=False, indent=0), "utf-8"
    )


def comparable_summary(report: Path) -> dict[str, Any]:
    """summary.json without the moment it was generated."""
    data: dict[str, Any] = json.loads((report / "summary.json").read_text("utf-8"))
    data.pop("generated_at")
    return data


def xlsx_cells(path: Path) -> list[list[Any]]:
    """Every cell of failures.xlsx's one sheet, as openpyxl reads it back."""
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True)
    try:
        return [list(row) for row in wb["failures"].iter_rows(values_only=True)]
    finally:
        wb.close()


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    build(target / "ledger.sqlite")
    if "--expect" in sys.argv:
        expect(target)
