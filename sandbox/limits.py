"""Chargebee's request limits (FACTS §1): a rolling window per site, a concurrency cap, and
per-order write locks (``lock_timeout``). Single event loop: plain counters, no locks needed.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable


class RateWindow:
    """At most ``limit`` admitted requests in any rolling ``window_s`` seconds.

    Args:
        limit: Requests per window; None turns the check off.
        window_s: Window length (Chargebee: 60 s).
        count_rejected: Whether rejected requests also occupy the window.
        clock: Monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        limit: int | None,
        window_s: float = 60.0,
        *,
        count_rejected: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.count_rejected = count_rejected
        self.clock = clock
        self.stamps: deque[float] = deque()

    def admit(self) -> int | None:
        """Admit one request now, or refuse it.

        Returns:
            None when admitted; else the honest ``Retry-After`` in whole seconds: how long until
            enough earlier requests leave the window for one more to fit.
        """
        if self.limit is None:
            return None
        now = self.clock()
        stamps = self.stamps
        cutoff = now - self.window_s
        while stamps and stamps[0] <= cutoff:
            stamps.popleft()
        if len(stamps) < self.limit:
            stamps.append(now)
            return None
        if self.count_rejected:
            stamps.append(now)  # the refused request occupies the window too
        # The (len - limit)-th oldest request must leave before one more fits.
        leaves_at = stamps[len(stamps) - self.limit] + self.window_s
        return max(1, math.ceil(round(leaves_at - now, 6)))  # round: no 11 s for 10.0000001

    def clear(self) -> None:
        """Forget every admitted request."""
        self.stamps.clear()


class Concurrency:
    """Counts API requests in flight; refuses beyond ``limit`` (None = off)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.in_flight = 0
        self.peak = 0

    def enter(self) -> bool:
        """Take a slot; False when the limit is already reached (the caller answers 429)."""
        if self.limit is not None and self.in_flight >= self.limit:
            return False
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        return True

    def leave(self) -> None:
        """Give the slot back."""
        self.in_flight -= 1


class OrderLocks:
    """Order ids being written right now (a second concurrent write gets ``lock_timeout``)."""

    def __init__(self) -> None:
        self.held: set[str] = set()

    def acquire(self, order_id: str) -> bool:
        """Lock ``order_id``; False if another request holds it."""
        if order_id in self.held:
            return False
        self.held.add(order_id)
        return True

    def release(self, order_id: str) -> None:
        """Unlock ``order_id``."""
        self.held.discard(order_id)
