"""The attempts log's figures for ``summarize``: one pass per run, kept for runs that are over.

Each run's attempts are read once (``ledger.figures.raw_attempts``), sorted, and reduced to its
counts, its most requests in any 60 s and its sorted start times, kinds and latencies; the batch's
figures (requests, 429s, exact latency percentiles, rates by run and overall, the timeline) are
worked out from those. A run that is over (finished, or followed by a later run) keeps them in
the ledger (``run_figures``), keyed by its attempt count and last attempt id, so the next
``status`` or ``report`` reads them back instead of the run's attempts; a run still going (or
the last one, killed) is read again each time. Every figure is exactly the one the per-attempt
definitions of ``report.rates`` give (``tests/test_planning_reports.py``, ``test_status_cache.py``).

Big runs (``VECTORISE_FROM`` attempts and more) are sorted and counted with numpy; smaller ones
in plain Python, so ``status`` of an ordinary batch imports no numpy.
"""

from __future__ import annotations

import heapq
import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.ledger import figures
from pipeline.ledger.figures import IS_429, RawAttempts, RunFigures, RunKey
from pipeline.ledger.ledger import Ledger
from pipeline.ledger.records import RunInfo
from pipeline.report.rates import WINDOW_S, RateFigures, max_in_window

VECTORISE_FROM = 200_000
"""Attempts from which a run (or the batch's latencies) is sorted and counted with numpy."""


class RunAttempts:
    """One run's figures, and its sorted arrays (read from the cache only when asked for)."""

    def __init__(
        self, ledger: Ledger, found: RunFigures, arrays: dict[str, bytes] | None = None
    ) -> None:
        self._ledger = ledger
        self.figures = found
        self._arrays = dict(arrays or {})

    def array(self, name: str) -> bytes:
        """``starts``, ``kinds`` or ``latencies`` (see ``ledger.figures.ARRAYS``)."""
        if name not in self._arrays:
            self._arrays[name] = figures.cached_array(self._ledger, self.figures.key, name)
        return self._arrays[name]

    def starts(self) -> memoryview[float]:
        return _floats(self.array("starts"))

    def latencies(self) -> memoryview[float]:
        return _floats(self.array("latencies"))


@dataclass(frozen=True, slots=True)
class AttemptFigures:
    """What ``summarize`` shows of the attempts log."""

    requests: int
    throttled: int
    latency_ms: dict[str, float]
    """Nearest-rank percentiles (``p50``...) and ``max``, unrounded; empty without latencies."""
    by_run: dict[int, RateFigures]
    overall: RateFigures
    runs: tuple[RunAttempts, ...]
    """Each run with attempts, by run id."""


def _floats(data: bytes) -> memoryview[float]:
    """Native float64s in ``data``, without a copy."""
    return memoryview(data).cast("d")


def max_in_window_np(starts: Any, window_s: float = WINDOW_S) -> int:
    """``rates.max_in_window`` of sorted ``starts``, exactly (same float test), vectorised: for
    each start, the first earlier start less than ``window_s`` before it."""
    import numpy as np

    times = np.asarray(starts, dtype=np.float64)
    n = times.size
    if n == 0:
        return 0
    low = np.searchsorted(times, times - window_s, side="left")
    # searchsorted compared ``t - w`` with each start; the rule is ``t - start >= w``: move each
    # bound by whole runs of equal starts until the rule holds exactly (a few ulps at most).
    for _ in range(64):
        too_low = (times - times[low]) >= window_s
        prev = np.maximum(low - 1, 0)
        too_high = (low > 0) & ((times - times[prev]) < window_s)
        if not too_low.any() and not too_high.any():
            break
        low = np.where(too_low, np.searchsorted(times, times[low], side="right"), low)
        low = np.where(too_high & ~too_low, np.searchsorted(times, times[prev], side="left"), low)
    return int((np.arange(n) - low + 1).max())


def _window_max(starts: Sequence[float]) -> int:
    return max_in_window_np(starts) if len(starts) >= VECTORISE_FROM else max_in_window(starts)


def reduce_run(key: RunKey, raw: RawAttempts) -> tuple[RunFigures, dict[str, bytes]]:
    """A run's figures and sorted arrays from its attempts in log order."""
    n = len(raw.starts)
    if n >= VECTORISE_FROM:
        import numpy as np

        starts = np.frombuffer(raw.starts, dtype=np.float64)
        order = np.argsort(starts, kind="stable")
        s = starts[order]
        k = np.frombuffer(raw.kinds, dtype=np.int8)[order]
        lat = np.sort(np.frombuffer(raw.latencies, dtype=np.float64))
        rejected = int(np.count_nonzero(k & IS_429))
        throttled = int(np.count_nonzero((k & 3) == 1))
        arrays = {"starts": s.tobytes(), "kinds": k.tobytes(), "latencies": lat.tobytes()}
        window = max_in_window_np(s)
    else:
        order_ = sorted(range(n), key=raw.starts.__getitem__)
        s_ = [raw.starts[i] for i in order_]
        k_ = bytes(raw.kinds[i] for i in order_)
        rejected = sum(1 for v in k_ if v & IS_429)
        throttled = sum(1 for v in k_ if v & 3 == 1)
        arrays = {
            "starts": array("d", s_).tobytes(),
            "kinds": k_,
            "latencies": array("d", sorted(raw.latencies)).tobytes(),
        }
        window = max_in_window(s_)
    starts_ = _floats(arrays["starts"])
    found = RunFigures(
        key=key,
        attempts=n,
        accepted=n - rejected,
        throttled=throttled,
        max_in_window=window,
        first_start=float(starts_[0]),
        last_start=float(starts_[n - 1]),
    )
    return found, arrays


def run_attempts(ledger: Ledger, batch: str, runs: Sequence[RunInfo]) -> list[RunAttempts]:
    """Each run's figures (runs with attempts only): from the cache when it holds them for
    exactly the run's attempts, else from the attempts log (and then cached if the run is
    over: finished, or followed by a later run of the batch)."""
    keys = figures.run_keys(ledger, [r.id for r in runs])
    latest = max((r.id for r in runs), default=0)
    finished = {r.id for r in runs if r.finished_at is not None}
    out = []
    for key in keys:
        found = figures.cached(ledger, key)
        if found is not None:
            out.append(RunAttempts(ledger, found))
            continue
        found, arrays = reduce_run(key, figures.raw_attempts(ledger, key))
        if key.run_id in finished or key.run_id < latest:
            figures.store(ledger, batch, found, arrays)
        out.append(RunAttempts(ledger, found, arrays))
    return out


def _rate(
    requests: int, accepted: int, first: float, last: float, window: int, limits: Any
) -> RateFigures:
    span = last - first
    per_minute = round(accepted / span * 60.0, 1) if span >= WINDOW_S else None
    return RateFigures(
        requests=requests,
        accepted=accepted,
        send_seconds=round(span, 3),
        per_minute=per_minute,
        max_in_window=window,
        limits=tuple(sorted({float(v) for v in limits if v is not None})),
    )


def overall_max_in_window(runs: Sequence[RunAttempts], window_s: float = WINDOW_S) -> int:
    """The most starts (of all the runs) in any ``window_s``: each run's own maximum, and the
    windows that hold starts of two runs, which all end where two runs' spans
    ``[first, last + window_s)`` overlap; only the starts near such overlaps are read."""
    best = max((r.figures.max_in_window for r in runs), default=0)
    spans = sorted(runs, key=lambda r: r.figures.first_start)
    for i, a in enumerate(spans):
        for b in spans[i + 1 :]:
            if b.figures.first_start >= a.figures.last_start + window_s:
                continue
            lo = b.figures.first_start - window_s
            hi = min(a.figures.last_start, b.figures.last_start) + window_s
            near: list[float] = []
            for r in runs:
                if r.figures.last_start < lo or r.figures.first_start > hi:
                    continue
                starts = r.starts()
                near.extend(starts[bisect_left(starts, lo) : bisect_right(starts, hi)])
            near.sort()
            best = max(best, _window_max(near))
    return best


def percentile_ranks(n: int, percents: Sequence[int]) -> list[int]:
    """0-based nearest ranks of ``percents`` among ``n`` sorted values."""
    return [min(n - 1, max(0, math.ceil(p / 100 * n) - 1)) for p in percents]


def _latencies(runs: Sequence[RunAttempts], percents: Sequence[int]) -> dict[str, float]:
    parts = [r.latencies() for r in runs if r.array("latencies")]
    n = sum(len(p) for p in parts)
    if not n:
        return {}
    ranks = [*percentile_ranks(n, percents), n - 1]
    if len(parts) == 1:
        picked = [float(parts[0][k]) for k in ranks]
    elif n >= VECTORISE_FROM:
        import numpy as np

        merged = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])
        part = np.partition(merged, sorted(set(ranks)))
        picked = [float(part[k]) for k in ranks]
    else:
        merged_list = list(heapq.merge(*parts))
        picked = [float(merged_list[k]) for k in ranks]
    out = {f"p{p}": v for p, v in zip(percents, picked, strict=False)}
    out["max"] = picked[-1]
    return out


def attempt_figures(
    ledger: Ledger,
    batch: str,
    runs: Sequence[RunInfo],
    limits: Mapping[int, float | None],
    percents: Sequence[int],
) -> AttemptFigures:
    """Requests, 429s, latency percentiles and rate figures (by run and overall)."""
    per_run = run_attempts(ledger, batch, runs)
    found = [r.figures for r in per_run]
    by_run = {
        f.key.run_id: _rate(
            f.attempts,
            f.accepted,
            f.first_start,
            f.last_start,
            f.max_in_window,
            [limits.get(f.key.run_id)],
        )
        for f in found
    }
    requests = sum(f.attempts for f in found)
    if found:
        overall = _rate(
            requests,
            sum(f.accepted for f in found),
            min(f.first_start for f in found),
            max(f.last_start for f in found),
            overall_max_in_window(per_run),
            [limits.get(f.key.run_id) for f in found],
        )
    else:
        overall = _rate(0, 0, 0.0, 0.0, 0, ())
    return AttemptFigures(
        requests=requests,
        throttled=sum(f.throttled for f in found),
        latency_ms=_latencies(per_run, percents),
        by_run=by_run,
        overall=overall,
        runs=tuple(per_run),
    )


def timeline_counts(
    runs: Sequence[RunAttempts], first: float, width: float, bins: int
) -> dict[int, tuple[int, int, int, int]]:
    """(requests, ok, throttled, other) per bucket ``min(int((start - first) / width), bins-1)``
    over every run's attempts (buckets without attempts left out)."""
    total = sum(r.figures.attempts for r in runs)
    counts: dict[int, list[int]] = {}
    if total >= VECTORISE_FROM:
        import numpy as np

        flat = np.zeros(bins * 3, dtype=np.int64)
        for r in runs:
            starts = np.frombuffer(r.array("starts"), dtype=np.float64)
            kinds = (np.frombuffer(r.array("kinds"), dtype=np.int8) & 3).astype(np.int64)
            where = np.minimum(((starts - first) / width).astype(np.int64), bins - 1)
            flat += np.bincount(where * 3 + kinds, minlength=bins * 3)
        grid = flat.reshape(bins, 3)
        return {
            int(i): (int(grid[i].sum()), int(grid[i, 0]), int(grid[i, 1]), int(grid[i, 2]))
            for i in np.flatnonzero(grid.sum(axis=1))
        }
    for r in runs:
        for start, kind in zip(r.starts(), r.array("kinds"), strict=True):
            slot = counts.setdefault(min(int((start - first) / width), bins - 1), [0, 0, 0])
            slot[kind & 3] += 1
    return {i: (sum(c), c[0], c[1], c[2]) for i, c in sorted(counts.items())}
