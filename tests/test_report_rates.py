"""The one definition of rate (pipeline.report.rates) and the next-step text derived from state."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.models import ROW_STATES
from pipeline.report.data import BatchSummary, next_steps
from pipeline.report.rates import format_duration, max_in_window, rate_figures


def _summary(batch: str) -> BatchSummary:
    """A batch whose every row succeeded (fields the next steps do not read are neutral)."""
    return BatchSummary(
        batch=batch,
        operation="import",
        source_file="orders.csv",
        input_sha256="0" * 64,
        config_fingerprint="f" * 16,
        tool_version="test",
        created_at=0.0,
        counts={state: 0 for state in ROW_STATES},
        rows_read=10,
        valid=10,
        succeeded=10,
        imported=10,
        already_present=0,
        failed=0,
        invalid=0,
        skipped=0,
        skip_reasons=(),
        in_doubt=0,
        retryable=0,
        conflict=0,
        pending=0,
        resolutions={},
        errors_by_api_code=(),
        errors_by_rule=(),
        warnings_by_rule=(),
        requests=10,
        throttled=0,
        duration_s=1.0,
        rate=rate_figures([], ()),
        latency_ms={},
        timeline=(),
        totals_by_currency=(),
        runs=(),
        exit_code=0,
    )


def test_short_send_phase_shows_counts_not_a_rate():
    """A 3-request canary over 2 s is not extrapolated to 90 requests/min."""
    figures = rate_figures([(100.0, 200), (101.0, 200), (102.0, 200)], [150.0])

    assert figures.per_minute is None
    assert figures.text() == "3 requests in 2s (most in any 60 s: 3; limit 150)"


def test_rate_counts_accepted_requests_over_the_send_phase():
    """121 requests over 120 s, one of them a 429: 60 accepted per minute."""
    attempts = [(1000.0 + i, 429 if i == 5 else 200) for i in range(121)]

    figures = rate_figures(attempts, [60.0, None, 60.0])

    assert figures.per_minute == 60.0
    assert figures.accepted == 120
    assert figures.max_in_window == 60
    assert figures.limits == (60.0,)
    assert figures.text() == "60.0 requests/min (most in any 60 s: 60; limit 60)"


def test_no_requests():
    """A run that sent nothing says so."""
    figures = rate_figures([], [150.0])

    assert figures.text() == "no requests (limit 150)"
    assert figures.to_dict()["limit"] == 150.0


def test_several_limits_are_all_shown():
    """Runs made at different limits show each; the largest is what a window may reach."""
    figures = rate_figures([(0.0, 200)], [1000.0, 150.0])

    assert figures.limits == (150.0, 1000.0)
    assert figures.limit == 1000.0
    assert "limit 150 / 1,000" in figures.text()


@given(st.lists(st.floats(min_value=0, max_value=600, allow_nan=False), max_size=60))
def test_max_in_window_matches_brute_force(starts):
    """The two-pointer count equals counting every window that starts at a request."""
    starts = sorted(starts)
    brute = max((sum(1 for t in starts if s <= t < s + 60.0) for s in starts), default=0)

    assert max_in_window(starts) == brute


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (45.4, "45s"), (185, "3m 05s"), (7620, "2h 07m")]
)
def test_one_duration_format(seconds, text):
    """Every report formats durations the same way."""
    assert format_duration(seconds) == text


def test_status_next_steps_follow_the_state(tmp_path: Path):
    """next_steps names the command the state calls for, quoted so it runs as printed."""
    clean = _summary("jan 2019")
    assert [s.command for s in next_steps(clean)] == ["order-import reconcile --batch 'jan 2019'"]
    assert [s.text for s in next_steps(clean, reconciled=True)] == [
        "done: every row is in Chargebee and reconciliation is clean"
    ]
    failing = replace(clean, failed=2, invalid=1)
    steps = next_steps(
        failing, ledger_path=Path("x.sqlite"), failures_path=tmp_path / "failures.csv"
    )
    assert steps[0].command == (
        f"order-import retry --batch 'jan 2019' --ledger x.sqlite {tmp_path / 'failures.csv'}"
    )
    canary = replace(clean, pending=7, canary_paused=True, canary_order_ids=("MIG-1", "MIG-2"))
    text = next_steps(canary)[0].text
    assert "MIG-1, MIG-2" in text
    assert "run the same command again" in text
    missing = next_steps(clean, missing=3)
    assert missing[0].command == "order-import retry --batch 'jan 2019' --missing"
