"""In-run retries: which errors are worth another attempt (``classify``) and the bounded loop.

Retries across runs are the ledger's business (``retryable`` rows are resent by the next run);
this module only retries inside one row's send, each attempt inside a rate-limiter slot.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar

from pipeline.api.client import ApiResponse
from pipeline.api.ratelimit import Clock, MonotonicClock, RateLimiter
from pipeline.errors import (
    ApiError,
    RateLimitedError,
    ThrottleBudgetExceeded,
    TransientApiError,
)

if TYPE_CHECKING:
    from pipeline.config import Settings

__all__ = ["AttemptInfo", "AttemptOutcome", "RetryPolicy", "classify", "send_with_retries"]

AttemptOutcome = Literal["ok", "replayed", "throttled", "transient", "permanent"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds of in-run retries for transient errors (429s are bounded by the limiter)."""

    max_attempts: int = 6
    """Non-429 HTTP attempts per call, the first one included."""
    max_elapsed: float = 600.0
    """Seconds after the first transient failure after which no new attempt is started."""
    base_delay: float = 0.5
    """First backoff delay; doubles per transient failure."""
    max_delay: float = 30.0
    """Cap of one backoff delay."""
    jitter: float = 0.25
    """± share of random jitter on each delay."""

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """``max_attempts`` and ``max_row_seconds`` from the settings; the rest default."""
        return cls(max_attempts=settings.max_attempts, max_elapsed=settings.max_row_seconds)

    def backoff(self, failures: int, rng: random.Random) -> float:
        """Delay before the next attempt after ``failures`` transient failures (1-based)."""
        nominal = min(self.max_delay, self.base_delay * 2.0 ** max(0, failures - 1))
        return max(0.0, nominal * (1.0 + rng.uniform(-self.jitter, self.jitter)))


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    """One HTTP attempt, reported to ``on_attempt`` (the runner logs it in the ledger)."""

    started_at: float
    """Unix time the attempt started."""
    latency_ms: float | None
    """Time until the answer or the failure."""
    status: int | None
    """HTTP status, None when no answer arrived (timeout, dropped connection)."""
    api_error_code: str | None
    """Chargebee's code, or ``timeout`` / ``connection_error``."""
    outcome: AttemptOutcome
    """ok · replayed (idempotent replay) · throttled (429) · transient · permanent."""


def classify(exc: BaseException) -> bool:
    """The one retry decision for errors other than 429: True = back off and try again.

    5xx, timeouts and dropped connections → True; the 429 budget being spent, other 4xx,
    401/403 and anything that is not an ``ApiError`` → False. (A 429 never gets here: the
    limiter's global pause is its wait.)
    """
    if isinstance(exc, ThrottleBudgetExceeded):
        return False
    return isinstance(exc, TransientApiError)


_CLOCK = MonotonicClock()
"""The default clock (stateless): one for every call, not one per request."""


def _tag(exc: ApiError, attempts: int) -> ApiError:
    exc.attempts = attempts
    return exc


def _status_of(result: object) -> int:
    return result.status if isinstance(result, ApiResponse) else 200


async def send_with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    limiter: RateLimiter,
    policy: RetryPolicy,
    on_attempt: Callable[[AttemptInfo], None] | None = None,
    status_of: Callable[[T], int] = _status_of,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> tuple[T, int]:
    """Run ``call`` (one HTTP attempt) until it succeeds or ``classify`` says stop.

    Every attempt runs inside ``limiter.slot()``. A 429 reports ``limiter.throttled`` (one
    global pause, honouring Retry-After) and is retried without using up ``max_attempts``;
    the limiter's throttle budget bounds those. Transient errors back off exponentially with
    jitter until ``max_attempts`` or ``max_elapsed``. A success reports ``limiter.succeeded``.

    Args:
        call: makes one attempt and returns its result (an ``ApiResponse``, an order, a page
            ...) or raises an ``ApiError``.
        limiter: the shared rate limiter.
        policy: attempt/time bounds and backoff shape.
        on_attempt: called synchronously after every attempt.
        status_of: the HTTP status a successful result stands for, for ``on_attempt``
            (default: ``ApiResponse.status``, else 200); e.g. 404 for "not found" look-ups.
        sleep: backoff sleeper (default ``clock.sleep``); a seam for tests.
        clock: time source for ``max_elapsed`` (default the event loop's clock).
        rng: jitter source.

    Returns:
        (result, HTTP attempts made, 429s included).

    Raises:
        ApiError: the terminal or last transient error, with ``attempts`` set on it.
    """
    clock = clock or _CLOCK
    attempts = 0
    failures = 0
    first_failure: float | None = None
    while True:
        try:
            async with limiter.slot():
                attempts += 1
                started_at = time.time()
                t0 = time.perf_counter()
                try:
                    result = await call()
                except ApiError as exc:
                    error: ApiError | None = exc
                else:
                    error = None
                latency_ms = (time.perf_counter() - t0) * 1000.0
        except ThrottleBudgetExceeded as exc:  # raised by slot(): no attempt was made
            raise _tag(exc, attempts) from None
        if error is None:
            limiter.succeeded()
            replayed = isinstance(result, ApiResponse) and result.replayed
            _report(
                on_attempt,
                started_at,
                latency_ms,
                status_of(result),
                None,
                "replayed" if replayed else "ok",
            )
            return result, attempts
        retry = classify(error)
        outcome: AttemptOutcome = (
            "throttled"
            if isinstance(error, RateLimitedError)
            else ("transient" if retry else "permanent")
        )
        _report(on_attempt, started_at, latency_ms, error.status_code, error, outcome)
        if isinstance(error, RateLimitedError):
            try:
                limiter.throttled(error.retry_after)
            except ThrottleBudgetExceeded as exc:
                raise _tag(exc, attempts) from error
            continue  # the limiter's global pause is the wait
        if not retry:
            raise _tag(error, attempts)
        failures += 1
        now = clock.now()
        first_failure = now if first_failure is None else first_failure
        rng = rng or random.Random()  # seeded from the OS only when a backoff needs it
        delay = policy.backoff(failures, rng)
        spent = now - first_failure
        if failures >= policy.max_attempts or spent + delay > policy.max_elapsed:
            raise _tag(error, attempts)
        await (sleep or clock.sleep)(delay)


def _report(
    on_attempt: Callable[[AttemptInfo], None] | None,
    started_at: float,
    latency_ms: float,
    status: int | None,
    error: ApiError | None,
    outcome: AttemptOutcome,
) -> None:
    if on_attempt is None:
        return
    on_attempt(
        AttemptInfo(
            started_at=started_at,
            latency_ms=latency_ms,
            status=status,
            api_error_code=error.api_error_code if error is not None else None,
            outcome=outcome,
        )
    )
