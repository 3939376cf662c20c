"""status/report on big ledgers: the aggregated figures (counted and ranked by SQLite) are the
figures the per-attempt Python definitions give, on the same attempts (side by side)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from pipeline.ledger.ledger import Ledger
from pipeline.models import Attempt
from pipeline.report import data
from pipeline.report.data import summarize
from pipeline.report.rates import max_in_window, rate_figures


def _reference(ledger: Ledger, batch: str, limits: dict[int, float | None]) -> dict[str, object]:
    """The figures as ``summarize`` computed them from one record per attempt."""
    attempts = list(ledger.attempts(batch))
    starts = [a.started_at for a in attempts]
    latencies = [a.latency_ms for a in attempts if a.latency_ms is not None]
    by_run: dict[int, list[tuple[float, int | None]]] = {}
    for a in attempts:
        by_run.setdefault(a.run_id, []).append((a.started_at, a.http_status))
    kinds = [
        1
        if a.http_status == 429 or a.outcome == "throttled"
        else 0
        if a.outcome in ("ok", "replayed", "not_found")
        else 2
        for a in attempts
    ]
    first, last = min(starts), max(starts)
    span = max(last - first, 1.0)
    width = data._nice_width(span / data.MAX_TIMELINE_BINS)
    nbins = int(span // width) + 1
    bins = [[0, 0, 0, 0] for _ in range(nbins)]
    for start, kind in zip(starts, kinds, strict=True):
        i = min(int((start - first) // width), nbins - 1)
        bins[i][0] += 1
        bins[i][1 + kind] += 1
    return {
        "requests": len(attempts),
        "throttled": sum(k == 1 for k in kinds),
        "latency": data._percentiles(latencies),
        "timeline": [(first + i * width, width, *b) for i, b in enumerate(bins)],
        "runs": {r: rate_figures(a, [limits.get(r)]) for r, a in by_run.items()},
        "rate": rate_figures(
            (a for v in by_run.values() for a in v), (limits.get(r) for r in by_run)
        ),
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_aggregated_attempt_figures_equal_the_per_attempt_ones(tmp_path: Path, seed: int):
    rng = random.Random(seed)
    with Ledger(tmp_path / "l.sqlite") as led:
        led.open_batch(
            "b", operation="import", source_file="f", input_sha256="0", config_fingerprint="c"
        )
        runs = [
            led.start_run("b", command="run", settings_summary={"rate_per_minute": rate})
            for rate in (150, 1000, None)
        ]
        base = 1_700_000_000.0
        for i in range(3000):
            # whole seconds (exact 60 s boundaries and ties) and fractions, 429s, no latency
            start = base + (rng.randrange(0, 400) if i % 3 else rng.uniform(0, 400))
            status = rng.choice([200, 200, 200, 429, 400, 503, None])
            outcome = {200: "ok", 429: "throttled", 400: "permanent"}.get(status or 0, "error")
            latency = None if i % 11 == 0 else round(rng.uniform(1, 900), rng.choice([0, 1, 3]))
            led.log_attempt(
                Attempt(
                    "b", f"k{i}", rng.choice(runs), start, latency, status, None, "send", outcome
                )
            )
        led.flush_attempts()
        for run in runs:
            led.finish_run(run, status="finished", summary={})
        limits = {r.id: data._run_limit(r) for r in led.runs("b")}
        want = _reference(led, "b", limits)
        got = summarize(led, "b")
    assert got.requests == want["requests"]
    assert got.throttled == want["throttled"]
    assert dict(got.latency_ms) == want["latency"]
    assert [
        (t.start, t.width_s, t.requests, t.ok, t.throttled, t.errors) for t in got.timeline
    ] == want["timeline"]
    assert got.rate == want["rate"]
    runs_want = want["runs"]
    assert isinstance(runs_want, dict)
    for entry in got.runs:
        assert entry["rate"] == runs_want[entry["id"]].to_dict()


@pytest.mark.parametrize("seed", range(20))
def test_max_in_window_vectorised_equals_the_definition(seed: int):
    rng = random.Random(seed)
    starts = sorted(
        rng.choice([rng.randrange(0, 300) * 1.0, rng.uniform(0, 300), 0.1 * rng.randrange(3000)])
        for _ in range(rng.randrange(1, 400))
    )
    assert data._max_in_window(starts) == max_in_window(starts)
    assert math.isfinite(starts[0])


def test_a_batch_without_attempts(tmp_path: Path):
    with Ledger(tmp_path / "l.sqlite") as led:
        led.open_batch(
            "b", operation="import", source_file="f", input_sha256="0", config_fingerprint="c"
        )
        got = summarize(led, "b")
    assert (got.requests, got.throttled, dict(got.latency_ms), list(got.timeline)) == (
        0,
        0,
        {},
        [],
    )
    assert got.rate == rate_figures(())


def test_status_text_is_the_same_without_the_full_scans(tmp_path: Path):
    """``status`` (text) skips warnings by rule and currency totals: the text does not change."""
    from pipeline.models import Issue, SourceRow
    from pipeline.report.data import render_status_text

    warn = Issue(2, "total", "total", "0", "zero_total", "total is 0", "warning", "rule")
    bad = Issue(3, "status", "status", "x", "enum", "status: not a status", "error", "rule")
    rows = [
        SourceRow("a", "f", None, 2, {"id": "A"}, {"id": "A", "total": 0}, (warn,)),
        SourceRow("b", "f", None, 3, {"id": "B"}, {"id": "B", "currency_code": "EUR"}, (bad,)),
        SourceRow("c", "f", None, 4, {"id": "C"}, {"id": "C", "total": 5, "currency_code": "PLN"}),
    ]
    with Ledger(tmp_path / "l.sqlite") as led:
        led.open_batch(
            "b", operation="import", source_file="f", input_sha256="0", config_fingerprint="c"
        )
        run = led.start_run("b", command="run", settings_summary={})
        led.plan("b", rows, operation="import", run_id=run)
        full = summarize(led, "b")
        light = summarize(led, "b", full=False)
    assert full.warnings_by_rule
    assert full.totals_by_currency
    assert render_status_text(light, []) == render_status_text(full, [])
