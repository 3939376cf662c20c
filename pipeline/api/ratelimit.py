"""Client-side rate limiting: requests/minute budget, concurrency cap, one global pause on 429.

Imports only ``pipeline.errors`` and anyio. Time comes from an injectable ``Clock`` so tests run
on virtual time. The guarantee: no rolling 60-second window ever holds more sends than the
configured per-minute limit (a sliding-window log enforces it; the token bucket only smooths).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

import anyio

from pipeline.errors import PipelineError, ThrottleBudgetExceeded

if TYPE_CHECKING:
    from pipeline.config import Settings

__all__ = [
    "DEFAULT_WINDOW_S",
    "AdmissionHalted",
    "Clock",
    "MonotonicClock",
    "RateLimiter",
]

DEFAULT_WINDOW_S = 61.0
"""Length of the sliding window we enforce: Chargebee counts 60 s; +1 s absorbs the delay
between our send stamp and the server's arrival stamp (DESIGN: ``N/61`` keeps every 60 s window
under N)."""
SLOWDOWN_FACTOR = 0.8
"""Multiplicative decrease of the rate on a 429 (once per pause, not once per 429)."""
RATE_FLOOR = 0.1
"""The rate never drops below this share of the configured rate."""
RECOVERY_STEP = 0.01
"""Additive increase per success, as a share of the configured rate."""
BACKOFF_BASE_S = 2.0
"""First pause after a 429 without ``Retry-After``; doubles per consecutive 429."""
BACKOFF_MAX_S = 60.0
"""Cap of that pause; Chargebee's block clears "in approximately a minute" (FACTS §1.1)."""
BACKOFF_JITTER = 0.25
"""± share of random jitter on that pause."""
MIN_SLEEP_S = 0.001


class AdmissionHalted(PipelineError):
    """``halt()`` was called (Ctrl-C) while this request waited for budget or a 429 pause: it
    was never sent."""


class Clock(Protocol):
    """Time source and sleeper; the test seam (virtual time in tests)."""

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep this many seconds."""
        ...


class MonotonicClock:
    """The real clock: anyio's event-loop time and ``anyio.sleep``."""

    def now(self) -> float:
        """Event-loop monotonic time in seconds (the asyncio loop's clock read directly: it is
        what ``anyio.current_time`` returns there, without its backend look-up, and the
        limiter reads it for every request)."""
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:  # not on an asyncio loop (another anyio backend)
            return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        """Sleep on the event loop."""
        await anyio.sleep(seconds)


class RateLimiter:
    """Per-minute budget + concurrency cap + global 429 pause with slow-down and recovery.

    ``slot()`` admits a request when (1) a concurrency slot is free, (2) no 429 pause is in
    force, (3) the token bucket (rate = current rate spread over the window, ``burst`` tokens)
    has a token, and (4) fewer than ``floor(per_minute)`` sends happened in the last
    ``window_s`` seconds. (4) is the hard cap; (3) keeps sends evenly spaced.

    Args:
        per_minute: the configured limit (requests per rolling minute).
        burst: token-bucket capacity: sends that may go back to back after an idle spell.
        concurrency: requests in flight at once.
        clock: time source; default the event loop's monotonic clock.
        max_throttle_wait: total seconds of 429 pauses allowed before ``ThrottleBudgetExceeded``.
        window_s: enforced window length (default 61 s: 60 s plus 1 s of delivery slack).
        rng: random source for backoff jitter (seed it in tests).
    """

    def __init__(
        self,
        per_minute: float,
        *,
        burst: int = 5,
        concurrency: int = 16,
        clock: Clock | None = None,
        max_throttle_wait: float = 1800.0,
        window_s: float = DEFAULT_WINDOW_S,
        rng: random.Random | None = None,
    ) -> None:
        if per_minute <= 0 or burst < 1 or concurrency < 1 or window_s < 60.0:
            raise ValueError("per_minute > 0, burst >= 1, concurrency >= 1, window_s >= 60")
        self._configured = float(per_minute)
        self._rate = float(per_minute)
        self._cap = max(1, math.floor(per_minute))
        self._burst = burst
        self._window = window_s
        self._clock: Clock = clock or MonotonicClock()
        self._rng = rng or random.Random()
        self._max_wait = max_throttle_wait
        # fast_acquire: a free slot or gate is taken without yielding to the event loop (the
        # default costs two extra loop turns and a shielded cancel scope per request); a
        # request that has to wait still waits fairly, and cancellation is checked there.
        self._slots = anyio.Semaphore(concurrency, fast_acquire=True)
        self._gate = anyio.Lock(fast_acquire=True)
        self._tokens = float(burst)
        self._refilled_at: float | None = None
        self._sends: deque[float] = deque()
        self._pause_until = -math.inf
        self._last_throttle = -math.inf
        self._consecutive = 0
        self._throttles = 0
        self._paused_s = 0.0
        self._in_flight = 0
        self._exhausted: str | None = None
        self._halted = False
        self._waits: set[anyio.CancelScope] = set()
        self._slot = _Slot(self)

    @classmethod
    def from_settings(cls, settings: Settings, *, concurrency: int = 1) -> RateLimiter:
        """The site's budget from the settings (rate, burst, 429 wait budget); ``concurrency``
        requests in flight (1 for look-ups and listings, the run's own for sending)."""
        return cls(
            settings.effective_rate,
            burst=settings.burst,
            concurrency=concurrency,
            max_throttle_wait=settings.max_throttle_wait,
        )

    # -- read-only state -------------------------------------------------------------------

    @property
    def configured_rate(self) -> float:
        """The configured requests per minute."""
        return self._configured

    @property
    def current_rate(self) -> float:
        """The rate in force now (lowered after 429s, recovering on successes)."""
        return self._rate

    @property
    def throttle_count(self) -> int:
        """How many 429s were reported through ``throttled``."""
        return self._throttles

    @property
    def total_pause_s(self) -> float:
        """Seconds of global pause imposed by 429s so far (overlapping pauses counted once)."""
        return self._paused_s

    @property
    def in_flight(self) -> int:
        """Requests currently inside ``slot()``."""
        return self._in_flight

    @property
    def pause_left_s(self) -> float:
        """Seconds left of the 429 pause in force (0 when none)."""
        return max(0.0, self._pause_until - self._clock.now())

    def halt(self) -> None:
        """Admit nothing more: every request waiting for budget or a 429 pause (and every later
        one) raises ``AdmissionHalted`` at once; requests already admitted are untouched."""
        self._halted = True
        for scope in self._waits:
            scope.cancel()

    def seed(self, ages: Iterable[float]) -> None:
        """Count sends made before this limiter existed, e.g. by an earlier run of the tool.

        Args:
            ages: seconds since each earlier send. Those inside the window count toward the
                hard cap, and any of them empties the burst, so a restart never exceeds the
                per-minute budget across the two processes.
        """
        now = self._clock.now()
        recent = [now - age for age in ages if 0.0 <= age < self._window]
        if not recent:
            return
        self._sends = deque(sorted([*recent, *self._sends]))
        self._tokens = 0.0
        self._refilled_at = now

    # -- admission ---------------------------------------------------------------------------

    def slot(self) -> _Slot:
        """``async with limiter.slot():`` waits for a concurrency slot and a send permit, then
        runs the body (one HTTP attempt).

        Raises (on entering):
            ThrottleBudgetExceeded: the 429 wait budget was spent (by any worker).
            AdmissionHalted: ``halt()`` was called before this request was admitted.
        """
        return self._slot

    def _take(self, now: float) -> float:
        """Admit one send now (0.0) or say how long to wait before trying again."""
        self._refill(now)
        horizon = now - self._window
        sends = self._sends
        while sends and sends[0] <= horizon:
            sends.popleft()
        if self._pause_until > now:
            return self._pause_until - now
        if self._tokens < 1.0:
            return (1.0 - self._tokens) / self._per_second()
        if len(sends) >= self._cap:
            return sends[0] - horizon
        self._tokens -= 1.0
        sends.append(now)
        return 0.0

    async def _admit(self) -> None:
        while True:
            if self._halted:
                raise AdmissionHalted("halted while waiting for rate budget: not sent")
            if self._exhausted is not None:
                raise self._budget_error()
            wait = self._take(self._clock.now())
            if not wait:
                return
            with anyio.CancelScope() as scope:  # halt() cancels the wait at once
                self._waits.add(scope)
                try:
                    await self._clock.sleep(max(wait, MIN_SLEEP_S))
                finally:
                    self._waits.discard(scope)

    def _per_second(self) -> float:
        return self._rate / self._window

    def _refill(self, now: float) -> None:
        if self._refilled_at is None:
            self._refilled_at = now
        elif now > self._refilled_at:
            gained = (now - self._refilled_at) * self._per_second()
            self._tokens = min(float(self._burst), self._tokens + gained)
            self._refilled_at = now

    # -- feedback ------------------------------------------------------------------------------

    def throttled(self, retry_after: float | None) -> None:
        """A 429 arrived: pause every worker, slow down, count it, and check the budget.

        The pause lasts ``retry_after`` seconds when the server sent it, else an exponential
        backoff with jitter (2 s, 4 s ... 60 s). 429s that arrive while a pause is already in
        force only extend it (one pause, not one per worker) and do not slow down again. A pause
        that would take the total past ``max_throttle_wait`` is not started: the budget error
        is raised at once.

        Raises:
            ThrottleBudgetExceeded: total pause time is now above ``max_throttle_wait``.
        """
        now = self._clock.now()
        self._refill(now)
        self._throttles += 1
        self._consecutive += 1
        already_paused = self._pause_until > now
        if retry_after is not None and retry_after >= 0:
            wait = float(retry_after)
        else:
            backoff = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2.0 ** (self._consecutive - 1))
            wait = backoff * (1.0 + self._rng.uniform(-BACKOFF_JITTER, BACKOFF_JITTER))
        until = now + wait
        if until > self._pause_until:
            added = until - max(now, self._pause_until)
            self._paused_s += added
            if self._paused_s <= self._max_wait:
                self._pause_until = until
            # else: the budget is spent; the pause is not extended, so no worker sleeps past
            # the budget (a Retry-After of a year ends the run now, not in a year).
        if not already_paused:
            self._rate = max(self._configured * RATE_FLOOR, self._rate * SLOWDOWN_FACTOR)
        # No burst straight after the pause: the bucket starts empty when it ends.
        self._tokens = 0.0
        self._refilled_at = max(now, self._pause_until)
        self._last_throttle = now
        if self._paused_s > self._max_wait:
            self._exhausted = (
                f"429 pauses total {self._paused_s:.0f} s, over the max_throttle_wait budget "
                f"of {self._max_wait:.0f} s"
            )
            raise self._budget_error()

    def _budget_error(self) -> ThrottleBudgetExceeded:
        # A fresh instance per raise: several workers may raise it concurrently.
        return ThrottleBudgetExceeded(
            self._exhausted or "429 wait budget exceeded",
            status_code=429,
            api_error_code="api_request_limit_exceeded",
        )

    def succeeded(self) -> None:
        """A request succeeded: raise the rate by 1% of the configured rate (additive increase).

        Recovery starts only one window after the last 429, because the server's own 60 s count
        still holds the requests that tripped it.
        """
        self._consecutive = 0
        if self._rate >= self._configured:
            return
        now = self._clock.now()
        if now - self._last_throttle < self._window:
            return
        self._refill(now)
        self._rate = min(self._configured, self._rate + self._configured * RECOVERY_STEP)


class _Slot:
    """What ``RateLimiter.slot()`` returns: a plain async context manager (no generator, no
    nested ``async with``). A free concurrency slot, an idle admission gate and a permit
    available now are taken without yielding to the event loop; anything else waits in
    order, behind the gate, as before."""

    __slots__ = ("_limiter",)

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    async def __aenter__(self) -> None:
        limiter = self._limiter
        if limiter._halted:
            raise AdmissionHalted("halted: not sent")
        try:
            # A free slot is taken without anyio's cancellation check (the request goes on at
            # once either way); a full pool waits in ``acquire`` as before.
            limiter._slots.acquire_nowait()
        except anyio.WouldBlock:
            await limiter._slots.acquire()
        try:
            gate = limiter._gate
            # The fast path only when no halt() came while this waited for its slot, nobody
            # waits at the gate (no overtaking a waiter), the budget is not spent, and a permit
            # is there now; anything else goes through _admit (which raises on a halt).
            if (
                limiter._halted
                or gate.locked()
                or limiter._exhausted is not None
                or limiter._take(limiter._clock.now())
            ):
                async with gate:
                    await limiter._admit()
        except BaseException:
            limiter._slots.release()
            raise
        limiter._in_flight += 1

    async def __aexit__(self, *exc_info: object) -> None:
        limiter = self._limiter
        limiter._in_flight -= 1
        limiter._slots.release()
