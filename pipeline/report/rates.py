"""One definition of "rate", used by the terminal, ``status``, summary.json/md and report.html.

A run's rate is the requests Chargebee *accepted* (every answer but 429) per minute over the run's
**send phase** only: from its first request to its last, planning and reporting excluded. Beside
it stands the most requests (any answer) that started in any 60-second window, which is what a
site's limit is about, and the limit the run itself used (recorded per run). A send phase shorter
than a minute is too short to extrapolate: such a run shows counts, never a per-minute figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

WINDOW_S = 60.0
"""The window of a site's limit (Chargebee counts requests per rolling minute)."""


@dataclass(frozen=True, slots=True)
class RateFigures:
    """The rate numbers of one run, or of several runs taken together."""

    requests: int
    """HTTP requests sent (every answer, 429s included)."""
    accepted: int
    """Requests not answered 429."""
    send_seconds: float
    """First request to last request (0 for a single request)."""
    per_minute: float | None
    """Accepted requests per minute over the send phase; None when it lasted under a minute."""
    max_in_window: int
    """The most requests that started within any 60 seconds."""
    limits: tuple[float, ...]
    """The distinct requests-per-minute limits the runs used, smallest first (may be empty)."""

    @property
    def limit(self) -> float | None:
        """The (largest) limit the runs used: what ``max_in_window`` must not exceed."""
        return self.limits[-1] if self.limits else None

    def text(self) -> str:
        """One phrase for people: ``142.3 requests/min (most in any 60 s: 150; limit 150)``."""
        if not self.requests:
            head = "no requests"
        elif self.per_minute is None:
            head = f"{self.requests:,} requests in {format_duration(self.send_seconds)}"
        else:
            head = f"{self.per_minute:,.1f} requests/min"
        details = []
        if self.requests:
            details.append(f"most in any 60 s: {self.max_in_window:,}")
        if self.limits:
            details.append("limit " + " / ".join(f"{v:,.0f}" for v in self.limits))
        return head + (f" ({'; '.join(details)})" if details else "")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``limit`` included)."""
        return {**asdict(self), "limits": list(self.limits), "limit": self.limit}


def rate_figures(
    attempts: Iterable[tuple[float, int | None]], limits: Iterable[float | None] = ()
) -> RateFigures:
    """Rate figures from ``(started_at, http_status)`` of every request and the runs' limits."""
    starts: list[float] = []
    accepted = 0
    for started_at, status in attempts:
        starts.append(started_at)
        accepted += status != 429
    starts.sort()
    span = starts[-1] - starts[0] if starts else 0.0
    per_minute = round(accepted / span * 60.0, 1) if span >= WINDOW_S else None
    return RateFigures(
        requests=len(starts),
        accepted=accepted,
        send_seconds=round(span, 3),
        per_minute=per_minute,
        max_in_window=max_in_window(starts),
        limits=tuple(sorted({float(v) for v in limits if v is not None})),
    )


def max_in_window(starts: Sequence[float], window_s: float = WINDOW_S) -> int:
    """The most entries of sorted ``starts`` inside any half-open window of ``window_s``."""
    best = 0
    low = 0
    for high, start in enumerate(starts):
        while start - starts[low] >= window_s:
            low += 1
        best = max(best, high - low + 1)
    return best


def format_duration(seconds: float) -> str:
    """``45s``, ``3m 05s``, ``2h 07m``: the one duration format of every report."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
