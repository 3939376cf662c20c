"""RateLimiter: hard per-minute cap in every rolling window, smooth rate, 429 pause and recovery."""

from __future__ import annotations

import itertools
import math
import random
import time

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.api.ratelimit import AdmissionHalted, RateLimiter
from pipeline.errors import ThrottleBudgetExceeded
from tests.support import max_in_window


class FakeClock:
    """Virtual time: ``sleep`` advances ``now`` at once (monotonic, no real waiting)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()


async def drive(limiter: RateLimiter, clock: FakeClock, n: int) -> list[float]:
    """One worker sending n requests back to back; returns the admission times."""
    sent: list[float] = []
    for _ in range(n):
        async with limiter.slot():
            sent.append(clock.now())
    return sent


GAPS = st.one_of(st.just(0.0), st.floats(0.0, 2.0), st.floats(0.0, 90.0))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    per_minute=st.sampled_from([1.0, 2.0, 7.0, 30.0, 59.9, 150.0]),
    burst=st.integers(1, 40),
    concurrency=st.integers(1, 8),
    plan=st.lists(st.tuples(GAPS, st.floats(0.0, 3.0)), min_size=1, max_size=200),
    workers=st.integers(1, 6),
)
@example(per_minute=7.0, burst=20, concurrency=2, plan=[(0.0, 0.0)] * 30, workers=2)
@example(per_minute=150.0, burst=40, concurrency=8, plan=[(0.0, 0.1)] * 200, workers=6)
def test_no_rolling_minute_ever_exceeds_the_limit(
    per_minute: float,
    burst: int,
    concurrency: int,
    plan: list[tuple[float, float]],
    workers: int,
) -> None:
    """For random arrival gaps, holds, bursts and worker counts, every 60 s window stays <= N."""
    clock = FakeClock()
    limiter = RateLimiter(per_minute, burst=burst, concurrency=concurrency, clock=clock)
    sent: list[float] = []
    peak = 0

    async def worker(items: list[tuple[float, float]]) -> None:
        nonlocal peak
        for gap, hold in items:
            await clock.sleep(gap)
            async with limiter.slot():
                sent.append(clock.now())
                peak = max(peak, limiter.in_flight)
                await clock.sleep(hold)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for w in range(workers):
                tg.start_soon(worker, plan[w::workers])

    anyio.run(main)
    assert len(sent) == len(plan)
    assert max_in_window(sent, 60.0) <= math.floor(per_minute)
    assert max_in_window(sent, 61.0) <= math.floor(per_minute)
    assert peak <= concurrency


@pytest.mark.parametrize("per_minute", [150.0, 1000.0, 3500.0])
def test_steady_state_reaches_97_percent_of_the_limit(per_minute: float) -> None:
    """A saturated worker gets >= 97% of the configured rate in the last minute, never more."""
    clock = FakeClock()
    limiter = RateLimiter(per_minute, burst=5, clock=clock)
    sent = anyio.run(drive, limiter, clock, int(per_minute * 6))
    end = sent[-1]
    last_minute = [t for t in sent if t > end - 60.0]
    assert len(last_minute) >= 0.97 * per_minute
    assert max_in_window(sent, 60.0) <= per_minute


def test_burst_goes_back_to_back_then_spacing_is_even() -> None:
    """After idling, `burst` sends pass at once; the next ones are spaced window/rate apart."""
    clock = FakeClock()
    limiter = RateLimiter(61.0, burst=3, clock=clock)
    sent = anyio.run(drive, limiter, clock, 6)
    assert sent[:3] == [sent[0]] * 3
    gaps = [b - a for a, b in itertools.pairwise(sent[3:])]
    assert sent[3] - sent[0] == pytest.approx(1.0)
    assert gaps == pytest.approx([1.0, 1.0])


def test_pause_is_honoured_for_every_worker() -> None:
    """After throttled(30), no slot opens before 30 s have passed."""
    clock = FakeClock()
    limiter = RateLimiter(150.0, clock=clock)

    async def main() -> list[float]:
        async with limiter.slot():
            pass
        limiter.throttled(30.0)
        return await drive(limiter, clock, 3)

    start = clock.now()
    sent = anyio.run(main)
    assert min(sent) >= start + 30.0
    assert limiter.throttle_count == 1
    assert limiter.total_pause_s == pytest.approx(30.0)


def test_overlapping_429s_make_one_pause_and_one_slowdown() -> None:
    """A second 429 during a pause extends it by the non-overlapping part only; rate drops once."""
    clock = FakeClock()
    limiter = RateLimiter(100.0, clock=clock)
    limiter.throttled(30.0)
    clock.t += 10.0
    limiter.throttled(30.0)
    assert limiter.total_pause_s == pytest.approx(40.0)
    assert limiter.current_rate == pytest.approx(80.0)
    assert limiter.throttle_count == 2


def test_rate_is_lowered_floored_and_recovered_gradually() -> None:
    """Each separate 429 cuts the rate by 20% (floor 10%); successes add 1% back after a window."""
    clock = FakeClock()
    limiter = RateLimiter(100.0, clock=clock, max_throttle_wait=10_000.0)
    for _ in range(15):
        limiter.throttled(1.0)
        clock.t += 2.0
    assert limiter.current_rate == pytest.approx(10.0)
    limiter.succeeded()
    assert limiter.current_rate == pytest.approx(10.0), "no recovery within a window of a 429"
    clock.t += 61.0
    limiter.succeeded()
    assert limiter.current_rate == pytest.approx(11.0)
    for _ in range(200):
        limiter.succeeded()
    assert limiter.current_rate == pytest.approx(100.0)
    assert limiter.configured_rate == 100.0


def test_backoff_without_retry_after_grows_with_jitter() -> None:
    """Consecutive 429s without Retry-After pause ~2 s, ~4 s, ~8 s (±25%)."""
    clock = FakeClock()
    limiter = RateLimiter(100.0, clock=clock, rng=random.Random(7))
    pauses = []
    for _ in range(3):
        before = limiter.total_pause_s
        limiter.throttled(None)
        pauses.append(limiter.total_pause_s - before)
        clock.t += 100.0
    for pause, nominal in zip(pauses, (2.0, 4.0, 8.0), strict=True):
        assert 0.75 * nominal <= pause <= 1.25 * nominal
    limiter.succeeded()
    before = limiter.total_pause_s
    limiter.throttled(None)
    assert limiter.total_pause_s - before <= 2.5, "a success resets the backoff"


def test_budget_exceeded_raises_and_stops_every_worker() -> None:
    """Pauses beyond max_throttle_wait raise ThrottleBudgetExceeded, and so does slot() after."""
    clock = FakeClock()
    limiter = RateLimiter(100.0, clock=clock, max_throttle_wait=100.0)
    limiter.throttled(60.0)
    clock.t += 61.0
    with pytest.raises(ThrottleBudgetExceeded) as info:
        limiter.throttled(60.0)
    assert info.value.status_code == 429

    async def main() -> None:
        async with limiter.slot():
            pass  # pragma: no cover - must not be reached

    with pytest.raises(ThrottleBudgetExceeded):
        anyio.run(main)


def test_a_huge_retry_after_ends_the_run_now_and_holds_no_worker_past_the_budget() -> None:
    """Retry-After of ~3 years: ThrottleBudgetExceeded at once, and a worker already waiting
    for an earlier pause wakes when that pause ends (not in 3 years) and stops too."""
    clock = FakeClock()
    limiter = RateLimiter(100.0, clock=clock, max_throttle_wait=100.0)
    limiter.throttled(10.0)
    start = clock.now()
    woke: list[float] = []

    async def waiter() -> None:
        try:
            async with limiter.slot():
                pass  # pragma: no cover - must not be reached
        except ThrottleBudgetExceeded:
            woke.append(clock.now())

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(waiter)
            await anyio.lowlevel.checkpoint()
            with pytest.raises(ThrottleBudgetExceeded):
                limiter.throttled(1e8)

    anyio.run(main)
    assert len(woke) == 1
    assert woke[0] - start <= 10.0 + 1e-6


def test_rejects_nonsense_configuration() -> None:
    """Zero rate, zero burst or a window shorter than Chargebee's minute are refused."""
    for kwargs in ({"per_minute": 0.0}, {"per_minute": 10.0, "burst": 0}):
        with pytest.raises(ValueError):
            RateLimiter(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RateLimiter(10.0, window_s=30.0)


def test_real_clock_rate_and_concurrency_are_bounded() -> None:
    """On the real clock (~1.5 s), sends stay within the bucket's allowance and the cap."""
    limiter = RateLimiter(1200.0, burst=2, concurrency=3)
    sent: list[float] = []
    peak = 0
    budget_s = 1.5

    async def worker(deadline: float) -> None:
        nonlocal peak
        while time.monotonic() < deadline:
            async with limiter.slot():
                sent.append(time.monotonic())
                peak = max(peak, limiter.in_flight)
                await anyio.sleep(0.01)

    async def main() -> float:
        start = time.monotonic()
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                for _ in range(6):
                    tg.start_soon(worker, start + budget_s)
        return start

    start = anyio.run(main)
    elapsed = sent[-1] - start
    allowance = 2 + elapsed * 1200.0 / 61.0
    assert len(sent) <= allowance + 1
    assert len(sent) >= 0.5 * allowance
    assert peak <= 3


def test_seeded_sends_of_an_earlier_run_count_toward_the_window() -> None:
    """A restart inherits the last minute's sends: across both runs no window exceeds the limit,
    and the new run gets no fresh burst."""
    clock = FakeClock()
    earlier = [clock.now() - age for age in (50.0, 40.0, 30.0, 20.0, 10.0, 1.0)]
    limiter = RateLimiter(10.0, burst=5, clock=clock)
    limiter.seed(clock.now() - t for t in [*earlier, clock.now() - 500.0])
    sent = anyio.run(drive, limiter, clock, 12)
    assert max_in_window([*earlier, *sent], 60.0) <= 10
    assert sent[1] - sent[0] > 0  # no back-to-back burst right after a restart


def test_seeding_with_nothing_recent_changes_nothing() -> None:
    """Sends older than the window are ignored: the burst is intact."""
    clock = FakeClock()
    limiter = RateLimiter(60.0, burst=3, clock=clock)
    limiter.seed([120.0, 3600.0])
    sent = anyio.run(drive, limiter, clock, 3)
    assert sent == [sent[0]] * 3


def test_a_request_waiting_for_a_slot_when_halt_comes_is_not_admitted():
    """halt() while a request waits for a concurrency slot: when the slot frees, that request
    raises AdmissionHalted instead of taking the fast path to the wire (permits are plenty)."""
    limiter = RateLimiter(1_000_000.0, burst=1000, concurrency=1)
    outcome: list[str] = []

    async def waiter() -> None:
        try:
            async with limiter.slot():
                outcome.append("admitted")
        except AdmissionHalted:
            outcome.append("halted")

    async def main() -> None:
        async with anyio.create_task_group() as tg, limiter.slot():
            tg.start_soon(waiter)
            for _ in range(5):
                await anyio.lowlevel.checkpoint()  # the waiter now waits for the slot
            limiter.halt()
        assert outcome == ["halted"]

    anyio.run(main)
