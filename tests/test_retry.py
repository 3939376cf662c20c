"""send_with_retries/classify: what is retried, how often, how long, and what is reported."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
import pytest

from pipeline.api.client import ApiResponse
from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import AttemptInfo, RetryPolicy, classify, send_with_retries
from pipeline.config import load_settings
from pipeline.errors import (
    ApiError,
    AuthError,
    PermanentApiError,
    PipelineError,
    RateLimitedError,
    ThrottleBudgetExceeded,
    TransientApiError,
)


class FakeClock:
    """Virtual time: ``sleep`` advances ``now`` at once."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()


OK = ApiResponse(
    status=200, body={"order": {"id": "o1"}}, replayed=False, latency_ms=1.0, started_at=0.0
)
REPLAY = ApiResponse(
    status=200, body={"order": {"id": "o1"}}, replayed=True, latency_ms=1.0, started_at=0.0
)


def script(
    *steps: ApiResponse | BaseException,
) -> tuple[Callable[[], Awaitable[ApiResponse]], list[int]]:
    """A call that plays ``steps`` in order (raise or return); also counts calls."""
    calls = [0]

    async def call() -> ApiResponse:
        step = steps[min(calls[0], len(steps) - 1)]
        calls[0] += 1
        if isinstance(step, BaseException):
            raise step
        return step

    return call, calls


def run(
    call: Callable[[], Awaitable[ApiResponse]],
    *,
    policy: RetryPolicy | None = None,
    limiter: RateLimiter | None = None,
    clock: FakeClock | None = None,
) -> tuple[tuple[ApiResponse, int], list[AttemptInfo], FakeClock, RateLimiter]:
    """Run send_with_retries on virtual time; returns result, attempt log, clock, limiter."""
    clock = clock or FakeClock()
    limiter = limiter or RateLimiter(6000.0, burst=100, clock=clock, max_throttle_wait=300.0)
    log: list[AttemptInfo] = []

    async def main() -> tuple[ApiResponse, int]:
        return await send_with_retries(
            call,
            limiter=limiter,
            policy=policy or RetryPolicy(),
            on_attempt=log.append,
            clock=clock,
            rng=random.Random(1),
        )

    return anyio.run(main), log, clock, limiter


def transient(code: str = "internal_error", status: int | None = 503) -> TransientApiError:
    """A 5xx-like transient error."""
    return TransientApiError("boom", status_code=status, api_error_code=code)


def test_classify_is_the_one_decision() -> None:
    """5xx/timeouts → True; the spent 429 budget, 4xx, 401 and non-API errors → False."""
    assert classify(transient()) is True
    assert classify(transient("timeout", None)) is True
    assert classify(ThrottleBudgetExceeded("x")) is False
    assert classify(PermanentApiError("x", status_code=400)) is False
    assert classify(AuthError("x", status_code=401)) is False
    assert classify(PipelineError("x")) is False
    assert classify(ValueError("x")) is False


def test_success_first_time_reports_ok() -> None:
    """One attempt, reported as ok, and the limiter hears the success."""
    call, calls = script(OK)
    (response, attempts), log, _, _ = run(call)
    assert (response, attempts, calls[0]) == (OK, 1, 1)
    assert [i.outcome for i in log] == ["ok"]
    assert log[0].status == 200


def test_replay_is_reported_as_replayed() -> None:
    """An idempotent replay is a success with outcome 'replayed'."""
    call, _ = script(transient(), REPLAY)
    (response, attempts), log, _, _ = run(call)
    assert response.replayed
    assert attempts == 2
    assert [i.outcome for i in log] == ["transient", "replayed"]


def test_transient_errors_back_off_exponentially_with_jitter() -> None:
    """Delays follow base*2^n within ±jitter, capped at max_delay."""
    call, _ = script(*[transient()] * 5, OK)
    policy = RetryPolicy(max_attempts=10, base_delay=1.0, max_delay=8.0, jitter=0.25)
    (_, attempts), log, clock, _ = run(call, policy=policy)
    assert attempts == 6
    for delay, nominal in zip(clock.sleeps, (1.0, 2.0, 4.0, 8.0, 8.0), strict=True):
        assert 0.75 * nominal <= delay <= 1.25 * nominal
    assert [i.outcome for i in log] == ["transient"] * 5 + ["ok"]
    assert log[0].status == 503
    assert log[0].api_error_code == "internal_error"


def test_gives_up_after_max_attempts_with_attempts_set() -> None:
    """After max_attempts transient failures the last error is raised with .attempts."""
    last = transient("timeout", None)
    call, calls = script(transient(), transient(), last)
    with pytest.raises(TransientApiError) as info:
        run(call, policy=RetryPolicy(max_attempts=3))
    assert info.value is last
    assert getattr(info.value, "attempts", None) == 3
    assert calls[0] == 3


def test_gives_up_when_the_next_wait_would_pass_max_elapsed() -> None:
    """No new attempt is started once backing off would exceed max_elapsed."""
    call, calls = script(transient())
    policy = RetryPolicy(
        max_attempts=100, max_elapsed=10.0, base_delay=2.0, max_delay=60.0, jitter=0.0
    )
    with pytest.raises(TransientApiError):
        run(call, policy=policy)
    assert calls[0] == 3  # waits 2 + 4 = 6 s; the next 8 s wait would pass 10 s


@pytest.mark.parametrize(
    "error",
    [
        PermanentApiError("dup", status_code=400, api_error_code="duplicate_entry", param="id"),
        AuthError("no", status_code=401),
    ],
)
def test_permanent_and_auth_errors_are_raised_at_once(error: ApiError) -> None:
    """4xx (and 401/403) are not retried; attempts=1 is attached."""
    call, calls = script(error, OK)
    with pytest.raises(type(error)) as info:
        run(call)
    assert info.value is error
    assert getattr(info.value, "attempts", None) == 1
    assert calls[0] == 1


def test_bare_exceptions_are_never_retried() -> None:
    """A programming error propagates untouched after one call."""
    call, calls = script(KeyError("bug"), OK)
    with pytest.raises(KeyError):
        run(call)
    assert calls[0] == 1


def test_429_pauses_through_the_limiter_and_does_not_use_attempts() -> None:
    """Three 429s with Retry-After 5 then success: limiter paused 15 s, max_attempts=1 intact."""
    limited = RateLimitedError(
        "slow down", retry_after=5.0, status_code=429, api_error_code="api_request_limit_exceeded"
    )
    call, calls = script(limited, limited, limited, OK)
    (_, attempts), log, clock, limiter = run(call, policy=RetryPolicy(max_attempts=1))
    assert attempts == 4
    assert calls[0] == 4
    assert limiter.throttle_count == 3
    assert limiter.total_pause_s == pytest.approx(15.0)
    assert clock.t >= 15.0
    assert [i.outcome for i in log] == ["throttled"] * 3 + ["ok"]
    assert log[0].status == 429
    assert log[0].api_error_code == "api_request_limit_exceeded"


def test_429_storm_ends_with_throttle_budget_exceeded() -> None:
    """Endless 429s stop when the limiter's wait budget is spent; attempts is attached."""
    limited = RateLimitedError("slow down", retry_after=60.0, status_code=429)
    call, calls = script(limited)
    clock = FakeClock()
    limiter = RateLimiter(6000.0, clock=clock, max_throttle_wait=200.0)
    with pytest.raises(ThrottleBudgetExceeded) as info:
        run(call, limiter=limiter, clock=clock)
    assert calls[0] == 4  # 60 + 60 + 60 = 180 s allowed; the 4th pause passes 200 s
    assert getattr(info.value, "attempts", None) == 4


def test_every_attempt_runs_inside_a_limiter_slot() -> None:
    """The call always sees itself counted in the limiter's in_flight."""
    clock = FakeClock()
    limiter = RateLimiter(6000.0, clock=clock)
    seen: list[int] = []

    async def call() -> ApiResponse:
        seen.append(limiter.in_flight)
        if len(seen) < 3:
            raise transient()
        return OK

    run(call, limiter=limiter, clock=clock)
    assert seen == [1, 1, 1]
    assert limiter.in_flight == 0


def test_policy_from_settings() -> None:
    """max_attempts and max_row_seconds come from the settings."""
    settings = load_settings({"max_attempts": 3, "max_row_seconds": 42.0}, environ={})
    assert RetryPolicy.from_settings(settings) == RetryPolicy(max_attempts=3, max_elapsed=42.0)


def test_custom_sleep_seam_is_used_for_backoff() -> None:
    """An injected sleep receives the backoff delays."""
    delays: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    call, _ = script(transient(), OK)
    clock = FakeClock()

    async def main() -> tuple[ApiResponse, int]:
        return await send_with_retries(
            call,
            limiter=RateLimiter(6000.0, clock=clock),
            policy=RetryPolicy(base_delay=0.5, jitter=0.0),
            sleep=fake_sleep,
            clock=clock,
        )

    assert anyio.run(main)[1] == 2
    assert delays == [0.5]


def test_results_of_any_type_pass_through_with_their_status() -> None:
    """Generic over the result: a look-up returning an order (or None) is not wrapped in a fake
    ApiResponse; ``status_of`` says which HTTP status it stands for in the attempt log."""
    answers: list[dict[str, str] | None] = [None, {"id": "o1"}]
    log: list[AttemptInfo] = []
    clock = FakeClock()
    limiter = RateLimiter(6000.0, clock=clock)

    async def lookup() -> dict[str, str] | None:
        return answers.pop(0)

    async def main() -> list[tuple[dict[str, str] | None, int]]:
        return [
            await send_with_retries(
                lookup,
                limiter=limiter,
                policy=RetryPolicy(),
                on_attempt=log.append,
                status_of=lambda found: 404 if found is None else 200,
                clock=clock,
            )
            for _ in range(2)
        ]

    assert anyio.run(main) == [(None, 1), ({"id": "o1"}, 1)]
    assert [(i.status, i.outcome) for i in log] == [(404, "ok"), (200, "ok")]
