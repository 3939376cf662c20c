"""Inline SVG charts for report.html, drawn by matplotlib (Agg-free ``Figure`` API, no pyplot).

Each function returns an ``<svg>`` element as text, or ``""`` when there is nothing to draw.
Labels are never parsed as mathtext, and matplotlib escapes them for XML.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from pipeline.report.data import BatchSummary

STATE_COLOURS = {
    "succeeded": "#2e7d32",
    "pending": "#90a4ae",
    "in_flight": "#f9a825",
    "retryable": "#ef6c00",
    "failed": "#c62828",
    "conflict": "#6a1b9a",
    "invalid": "#ad1457",
    "skipped": "#b0bec5",
}
TOP_N = 15
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
_RC: dict[Any, Any] = {
    "svg.fonttype": "none",
    "text.parse_math": False,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return _METADATA.sub("", text[text.index("<svg") :])


def _figure(height: float) -> Figure:
    with matplotlib.rc_context(_RC):
        return Figure(figsize=(6.4, height), dpi=96)


def _hbar(pairs: Sequence[tuple[str, int]], colour: str | Sequence[str], title: str) -> str:
    if not pairs:
        return ""
    pairs = list(pairs)[:TOP_N]
    labels = [str(p[0])[:60] for p in pairs][::-1]
    values = [p[1] for p in pairs][::-1]
    colours = list(colour)[::-1] if not isinstance(colour, str) else colour
    with matplotlib.rc_context(_RC):
        fig = _figure(0.8 + 0.28 * len(pairs))
        ax = fig.add_subplot()
        bars = ax.barh(labels, values, color=colours)
        ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=3)
        ax.set_title(title, loc="left")
        ax.set_xlim(0, max(values) * 1.18 or 1)
        ax.xaxis.set_visible(False)
        return _svg(fig)


def outcome_chart(summary: BatchSummary) -> str:
    """Rows by state (states with no rows left out)."""
    pairs = [(state, n) for state, n in summary.counts.items() if n]
    colours = [STATE_COLOURS.get(state, "#607d8b") for state, _ in pairs]
    return _hbar(pairs, colours, "Rows by state")


def api_error_chart(summary: BatchSummary) -> str:
    """Failed/conflict/retryable rows by Chargebee api_error_code, most frequent first."""
    return _hbar(summary.errors_by_api_code, "#c62828", "API errors by api_error_code")


def rule_chart(summary: BatchSummary) -> str:
    """Invalid rows by validation rule, most frequent first."""
    return _hbar(summary.errors_by_rule, "#ad1457", "Validation errors by rule")


def timeline_chart(summary: BatchSummary) -> str:
    """Requests per minute and 429 answers over time, from the attempts log."""
    bins = summary.timeline
    if not bins:
        return ""
    times = [(b.start - bins[0].start) / 60 for b in bins]
    began = datetime.fromtimestamp(bins[0].start, UTC).strftime("%Y-%m-%d %H:%M UTC")
    per_min = [b.requests * 60 / b.width_s for b in bins]
    throttled = [b.throttled * 60 / b.width_s for b in bins]
    with matplotlib.rc_context(_RC):
        fig = _figure(2.6)
        ax = fig.add_subplot()
        ax.step(times, per_min, where="post", color="#1565c0", label="requests/min")
        ax.fill_between(times, throttled, step="post", color="#ef6c00", alpha=0.6, label="429s/min")
        ax.set_title(f"Throughput and 429s ({bins[0].width_s:g} s buckets)", loc="left")
        ax.set_ylim(bottom=0)
        ax.set_xlabel(f"minutes since {began}")
        ax.legend(loc="upper right", frameon=False)
        return _svg(fig)


def latency_chart(summary: BatchSummary) -> str:
    """Latency percentiles of all attempts."""
    if not summary.latency_ms:
        return ""
    pairs = [(name, round(value)) for name, value in summary.latency_ms.items()]
    return _hbar(pairs[::-1], "#00838f", "Latency percentiles (ms)")


def all_charts(summary: BatchSummary) -> dict[str, str]:
    """Every chart by name; empty strings for charts without data."""
    return {
        "outcome": outcome_chart(summary),
        "api_errors": api_error_chart(summary),
        "rules": rule_chart(summary),
        "timeline": timeline_chart(summary),
        "latency": latency_chart(summary),
    }
