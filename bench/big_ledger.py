"""A big ledger made by SQL alone (for status/report timing): ``n`` rows and one attempt per
sent row, in a few statements, bounded in time by ``n``.

``python -m bench.big_ledger PATH [N]`` makes one (default 10M rows) to reuse for several
benchmark runs (``BENCH_BIG_LEDGER=PATH``, bench/bench_ledger.py).

Rows are compact but shaped like real ones (raw, params and issues JSON, resolutions, API
error codes, currencies); 1 in 100 invalid with a finding, 1 in 200 failed, 1 in 500 retryable.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from pipeline.ledger.ledger import Ledger
from pipeline.ledger.schema import money_amount, money_currency

BATCH = "big"

_ROWS = """
WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < ? - 1)
INSERT INTO rows (batch, row_key, operation, source_file, sheet, source_line, raw, params,
    content_hash, order_id, state, resolution, attempts, http_status, api_error_code,
    error_code, param, message, latency_ms, issues, idempotency_key, updated_at, last_run_id,
    raw_hash, control, currency, amount)
SELECT *, __CURRENCY__, __AMOUNT__ FROM (
SELECT ? AS batch, printf('B-%08d', i), 'import', 'big.csv', NULL, i + 2,
    printf('{"id":"B-%08d","total":"%d","currency_code":"%s"}', i, i % 1000,
           CASE i % 3 WHEN 0 THEN 'EUR' WHEN 1 THEN 'USD' ELSE 'PLN' END),
    printf('{"currency_code":"%s","customer_id":"C-%d","id":"B-%08d","invoice_id":"I-%08d",' ||
           '"status":"delivered","total":%d}',
           CASE i % 3 WHEN 0 THEN 'EUR' WHEN 1 THEN 'USD' ELSE 'PLN' END, i % 97, i, i, i % 1000)
        AS params,
    printf('%064d', i), printf('B-%08d', i),
    CASE WHEN i % 100 = 0 THEN 'invalid' WHEN i % 200 = 1 THEN 'failed'
         WHEN i % 500 = 3 THEN 'retryable' ELSE 'succeeded' END,
    CASE WHEN i % 100 = 0 OR i % 200 = 1 OR i % 500 = 3 THEN NULL
         WHEN i % 50 = 7 THEN 'already_present' ELSE 'imported' END,
    CASE WHEN i % 100 = 0 THEN 0 ELSE 1 END,
    CASE WHEN i % 100 = 0 THEN NULL WHEN i % 200 = 1 THEN 400 WHEN i % 500 = 3 THEN 503
         ELSE 200 END,
    CASE WHEN i % 200 = 1 THEN 'param_wrong_value' WHEN i % 500 = 3 THEN 'site_not_ready'
         ELSE NULL END,
    NULL, CASE WHEN i % 200 = 1 THEN 'status' ELSE NULL END,
    CASE WHEN i % 200 = 1 THEN 'status : invalid value' ELSE NULL END,
    CASE WHEN i % 100 = 0 THEN NULL ELSE 80 + i % 40 END,
    CASE WHEN i % 100 = 0 THEN printf('[{"source_line":%d,"column":"status","param":"status",' ||
        '"value":"teleported","rule":"enum","message":"status: not a status",' ||
        '"severity":"error","stage":"rule"}]', i + 2)
        WHEN i % 1000 = 5 THEN printf('[{"source_line":%d,"column":"total","param":"total",' ||
        '"value":"0","rule":"zero_total","message":"total is 0","severity":"warning",' ||
        '"stage":"rule"}]', i + 2)
        ELSE '[]' END,
    CASE WHEN i % 100 = 0 THEN NULL ELSE printf('oi-i-%d', i) END,
    ?, ?, (i * 2654435761) % 9223372036854775807, NULL AS control
FROM seq)
""".replace("__CURRENCY__", money_currency("params", "control")).replace(
    "__AMOUNT__", money_amount("params", "control")
)
"""currency and amount (schema v9) computed as planning computes them."""
_ATTEMPTS = """
INSERT INTO attempts (batch, row_key, run_id, started_at, latency_ms, http_status,
    api_error_code, kind, outcome)
SELECT batch, row_key, ?, ? + (rowid % 10000000) / 40.0, latency_ms, http_status,
    api_error_code, 'send',
    CASE state WHEN 'succeeded' THEN 'ok' WHEN 'failed' THEN 'permanent' ELSE 'transient' END
FROM rows WHERE batch = ? AND state != 'invalid'
"""


def build(path: Path, n: int) -> float:
    """Write ``n`` rows (and their attempts) into a new ledger at ``path``; returns seconds."""
    started = time.perf_counter()
    with Ledger(path) as led:
        led.open_batch(
            BATCH,
            operation="import",
            source_file="big.csv",
            input_sha256="0" * 64,
            config_fingerprint="big",
        )
        run_id = led.start_run(BATCH, command="run", settings_summary={"rate_per_minute": 6000})
        now = time.time()
        with led._db.guard("bench") as conn:
            conn.execute("PRAGMA synchronous = OFF")
        with led._db.write("bench: big ledger") as conn:
            conn.execute(_ROWS, (n, BATCH, now, run_id))
            conn.execute(_ATTEMPTS, (run_id, now - n / 40.0, BATCH))
        with led._db.guard("bench") as conn:
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        led.finish_run(run_id, status="finished", summary={})
    return time.perf_counter() - started


if __name__ == "__main__":
    print(
        f"{build(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 10_000_000):.1f} s"
    )
