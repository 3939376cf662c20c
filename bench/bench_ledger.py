"""Ledger and report speed at scale: plan, resume, stream, record, and build the report.

Measured side by side in one process on one temporary ledger; every loop is bounded in count.
``python -m bench.bench_ledger [--quick]`` prints the figures.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import Figure, figure
from pipeline.ledger.ledger import Ledger
from pipeline.models import Issue, Outcome, SourceRow
from pipeline.report.write import write_reports

BATCH = "bench"
RECORDS = 2_000
"""mark_in_flight + record pairs timed (each a FULL-sync commit)."""


def source_rows(n: int, invalid_every: int = 100) -> Iterator[SourceRow]:
    """``n`` realistic rows (11 source columns, nested address); 1 in ``invalid_every`` invalid."""
    for i in range(n):
        bad = i % invalid_every == 0
        raw = {
            "id": f"T-{i:07d}",
            "document_number": f"DOC{i:07d}",
            "invoice_id": f"INV-{i:07d}",
            "customer_id": f"CUST-{i % 97:04d}",
            "status": "teleported" if bad else "delivered",
            "order_date": str(1_672_531_200 + i),
            "total": str(i * 10),
            "currency_code": "EUR",
            "shipping_address[city]": "Kraków",
            "shipping_address[country]": "PL",
            "note": "",
        }
        params = {
            "id": raw["id"],
            "document_number": raw["document_number"],
            "invoice_id": raw["invoice_id"],
            "customer_id": raw["customer_id"],
            "status": raw["status"],
            "order_date": 1_672_531_200 + i,
            "total": i * 10,
            "currency_code": "EUR",
            "shipping_address": {"city": "Kraków", "country": "PL"},
        }
        issues = (
            (Issue(i + 2, "status", "status", "teleported", "enum", "status: not a status"),)
            if bad
            else ()
        )
        yield SourceRow(f"T-{i:07d}", "bench.csv", None, i + 2, raw, params, issues)


def _timed(label: str, n: int, fn: object, *args: object, **kw: object) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kw)  # type: ignore[operator]
    return time.perf_counter() - start, result


def run(quick: bool = False) -> list[Figure]:
    """Plan, resume, stream and report on a 100k (quick) or 1M-row batch."""
    n = 100_000 if quick else 1_000_000
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        path = Path(tmp) / "ledger.sqlite"
        with Ledger(path) as led:
            led.open_batch(
                BATCH,
                operation="import",
                source_file="bench.csv",
                input_sha256="0" * 64,
                config_fingerprint="bench",
            )
            run_id = led.start_run(BATCH, command="run", settings_summary={})
            gen_s = time.perf_counter()
            rows_made = sum(1 for _ in source_rows(n))
            gen_s = time.perf_counter() - gen_s
            first_s, _ = _timed(
                "plan", n, led.plan, BATCH, source_rows(n), operation="import", run_id=run_id
            )
            again_s, stats = _timed(
                "resume", n, led.plan, BATCH, source_rows(n), operation="import", run_id=run_id
            )
            figures.append(
                figure(
                    f"plan {n:,} new rows",
                    round(n / first_s),
                    "rows/s",
                    goal=">= 100k rows/s",
                    met=n / first_s >= 100_000,
                    note=f"{first_s:.1f} s incl. {gen_s:.1f} s making the rows",
                )
            )
            figures.append(
                figure(
                    f"resume plan of {n:,} unchanged rows",
                    round(n / again_s),
                    "rows/s",
                    note=f"{again_s:.1f} s; ratio to first plan "
                    f"{first_s / again_s:.1f}x; nothing rewritten "
                    f"(still_pending={getattr(stats, 'still_pending', '?')})",
                )
            )
            count_s, _ = _timed("counts", n, led.counts, BATCH)
            figures.append(
                figure("counts() by state", round(count_s * 1000, 1), "ms", note=f"{n:,} rows")
            )
            stream_s = time.perf_counter()
            streamed = sum(1 for _ in led.work(BATCH))
            stream_s = time.perf_counter() - stream_s
            figures.append(
                figure(
                    "work() stream of sendable rows",
                    round(streamed / stream_s),
                    "rows/s",
                    note=f"{streamed:,} rows in {stream_s:.1f} s",
                )
            )
            pages_s = time.perf_counter()
            paged = sum(len(page) for page in led.work_pages(BATCH))
            pages_s = time.perf_counter() - pages_s
            figures.append(
                figure(
                    "work_pages() (what the worker pool reads, off the loop)",
                    round(paged / pages_s),
                    "rows/s",
                    note=f"{paged:,} rows in pages of 500",
                )
            )
            keys = [item.row_key for item, _ in zip(led.work(BATCH), range(RECORDS), strict=False)]
            rec_s = time.perf_counter()
            for key in keys:
                led.mark_in_flight(BATCH, key, run_id=run_id, idempotency_key=f"k-{key}")
                led.record(
                    Outcome(
                        BATCH,
                        key,
                        run_id,
                        "succeeded",
                        resolution="imported",
                        http_status=200,
                        attempts=1,
                    )
                )
            rec_s = time.perf_counter() - rec_s
            per_min = len(keys) / rec_s * 60
            figures.append(
                figure(
                    "mark_in_flight + record (2 FULL-sync commits)",
                    round(len(keys) / rec_s),
                    "rows/s",
                    note=f"{per_min / 3500:.0f}x Chargebee's 3,500/min ceiling",
                )
            )
            figures += group_commit_figures(led, run_id, round(len(keys) / rec_s))
            rep_s, paths = _timed("report", n, write_reports, led, BATCH, Path(tmp) / "out")
            html_kb = (Path(tmp) / "out" / "report.html").stat().st_size / 1024
            figures.append(
                figure(
                    f"write_reports for {n:,} rows",
                    round(rep_s, 1),
                    "s",
                    note=f"{getattr(paths, 'failures', '?'):,} failure rows; "
                    f"report.html {html_kb:,.0f} KiB (table capped)",
                )
            )
        assert rows_made == n
    return figures


GROUP = 32
"""Rows per group in the grouped figure: what 32 workers at 0 ms latency commit together."""


def group_commit_figures(led: Ledger, run_id: int, pair_rate: int) -> list[Figure]:
    """The sender's group commits: each ``commit_group`` records the previous group's outcomes
    and marks the next group ``in_flight`` in one FULL-sync transaction; rows/s next to the
    per-row ``mark_in_flight + record`` pair (``pair_rate``) measured just before."""
    keys = [item.row_key for item, _ in zip(led.work(BATCH), range(RECORDS), strict=False)]
    groups = [keys[i : i + GROUP] for i in range(0, len(keys), GROUP)]
    started = time.perf_counter()
    previous: list[Outcome] = []
    for group in groups:
        led.commit_group(BATCH, previous, [(k, f"k-{k}") for k in group], run_id=run_id)
        previous = [
            Outcome(BATCH, k, run_id, "succeeded", resolution="imported", http_status=200,
                    attempts=1)
            for k in group
        ]  # fmt: skip
    led.commit_group(BATCH, previous, [], run_id=run_id)
    rate = len(keys) / (time.perf_counter() - started)
    return [
        figure(
            f"group commits, {GROUP} rows a group (mark + record, FULL sync)",
            round(rate),
            "rows/s",
            note=f"{len(groups) + 1} transactions for {len(keys)} rows; "
            f"{rate / pair_rate:.0f}x the per-row pair above",
        )
    ]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(f"{row['name']:<50} {row['value']!s:>12} {row['unit']:<7} {row['note']}")
