"""Planning speed of one source tree: plan ``n`` new rows, then plan them again unchanged.

Run as a script by ``bench_ledger`` once with this tree's Python and once with another tree's
(``BENCH_BASELINE``, unset: no comparison), so old and new code plan the same rows side by
side in one bench run: ``python bench/plan_speed.py N [LEDGER]`` prints one JSON line of
seconds (and leaves the planned ledger at LEDGER when given).
It imports only the ledger and the models (and ``prepare.fingerprints`` where the tree has it,
as prepare hands rows over), so any version of the tree can run it.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from pipeline.ledger.ledger import Ledger
from pipeline.models import Issue, SourceRow

BATCH = "bench"
CHUNK = 100_000
"""Rows per ``Ledger.plan`` call (the runner plans each prepared chunk: ``chunk_rows``)."""
_INTEGERS = ("order_date", "total")


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


def fingerprinted(chunk: list[SourceRow]) -> tuple[list[SourceRow], float]:
    """The chunk with the fingerprints prepare gives its rows (computed column-wise from the
    mapped params frame, as ``prepare._source_rows`` does), and the seconds that took; the
    chunk unchanged where the tree has no fingerprints (the old code)."""
    if "fingerprint" not in {f.name for f in fields(SourceRow)}:
        return chunk, 0.0
    import pandas as pd

    from pipeline.prepare.prepare import fingerprints  # type: ignore[attr-defined,unused-ignore]

    flat: dict[str, list[Any]] = {}
    for pos, row in enumerate(chunk):
        for name, value in row.params.items():
            pairs = value.items() if isinstance(value, dict) else [(None, value)]
            for sub, cell in pairs:
                column = name if sub is None else f"{name}.{sub}"
                if column not in flat:
                    flat[column] = [None] * len(chunk)
                flat[column][pos] = cell
    frame = pd.DataFrame(
        {c: pd.array(v, dtype="Int64" if c in _INTEGERS else "str") for c, v in flat.items()}
    )
    started = time.perf_counter()
    prints = fingerprints(frame)
    spent = time.perf_counter() - started
    if prints is None:
        return chunk, spent
    return [replace(row, fingerprint=fp) for row, fp in zip(chunk, prints, strict=True)], spent  # type: ignore[call-arg,unused-ignore]


def plan_all(led: Ledger, n: int, run_id: int) -> tuple[float, float, int, float]:
    """Plan ``n`` rows in ``CHUNK``-row calls: (seconds in ``Ledger.plan``, seconds computing
    fingerprints, rows still pending: the unchanged ones on a resume, CPU seconds of this
    process in ``Ledger.plan``: on a shared machine the wall clock also counts the time
    other processes held the cores)."""
    rows = source_rows(n)
    plan_s = print_s = cpu_s = 0.0
    still = done = 0
    while done < n:
        chunk, spent = fingerprinted([row for _, row in zip(range(CHUNK), rows, strict=False)])
        print_s += spent
        done += len(chunk)
        started, cpu = time.perf_counter(), time.process_time()
        stats = led.plan(BATCH, chunk, operation="import", run_id=run_id)
        plan_s += time.perf_counter() - started
        cpu_s += time.process_time() - cpu
        still += stats.still_pending
    return plan_s, print_s, still, cpu_s


def measure(n: int, keep: Path | None = None) -> dict[str, float]:
    """Seconds to plan ``n`` new rows and to plan them again unchanged, on a new ledger (at
    ``keep``, left there for more measurements, else in a temporary folder)."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp,
        Ledger(keep or Path(tmp) / "ledger.sqlite") as led,
    ):
        led.open_batch(
            BATCH,
            operation="import",
            source_file="bench.csv",
            input_sha256="0" * 64,
            config_fingerprint="bench",
        )
        run_id = led.start_run(BATCH, command="run", settings_summary={})
        new_s, new_print_s, _, new_cpu_s = plan_all(led, n, run_id)
        again_s, again_print_s, still, again_cpu_s = plan_all(led, n, run_id)
    return {
        "new_s": new_s,
        "resume_s": again_s,
        "new_cpu_s": new_cpu_s,
        "resume_cpu_s": again_cpu_s,
        "fingerprint_s": new_print_s + again_print_s,
        "still_pending": still,
    }


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)))
