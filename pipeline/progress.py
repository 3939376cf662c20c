"""Progress for humans (a tqdm bar) and for automation (JSON lines on stderr), or nothing.

The runner reports events here; nothing else in the package prints while a run is going.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from typing import Any, Protocol, TextIO

from tqdm import tqdm


class Progress(Protocol):
    """What the runner calls while a run goes on."""

    def start(self, total: int, *, batch: str, phase: str) -> None:
        """A phase (``reconcile``/``send``) begins with ``total`` rows."""

    def row(self, state: str, *, row_key: str, detail: dict[str, Any]) -> None:
        """One row reached a final state for this run."""

    def event(self, name: str, **detail: Any) -> None:
        """A notable event: ``throttled``, ``stopping``, ``canary`` ..."""

    def close(self) -> None:
        """The run is over; release the terminal."""


class NullProgress:
    """Quiet mode: report nothing."""

    def start(self, total: int, *, batch: str, phase: str) -> None:
        """Ignore."""

    def row(self, state: str, *, row_key: str, detail: dict[str, Any]) -> None:
        """Ignore."""

    def event(self, name: str, **detail: Any) -> None:
        """Ignore."""

    def close(self) -> None:
        """Ignore."""


class JsonLinesProgress:
    """One JSON object per line on a stream (stderr by default): for logs and automation."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr

    def _emit(self, payload: dict[str, Any]) -> None:
        payload = {"ts": round(time.time(), 3), **payload}
        self._stream.write(json.dumps(payload, default=str) + "\n")
        self._stream.flush()

    def start(self, total: int, *, batch: str, phase: str) -> None:
        """Emit a ``phase`` event."""
        self._emit({"event": "phase", "phase": phase, "batch": batch, "total": total})

    def row(self, state: str, *, row_key: str, detail: dict[str, Any]) -> None:
        """Emit a ``row`` event."""
        self._emit({"event": "row", "row_key": row_key, "state": state, **detail})

    def event(self, name: str, **detail: Any) -> None:
        """Emit a named event."""
        self._emit({"event": name, **detail})

    def close(self) -> None:
        """Nothing to release."""


class BarProgress:
    """A tqdm bar on stderr with rate, ETA and succeeded/failed/retrying/429 counts."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._bar: tqdm[Any] | None = None
        self._counts: Counter[str] = Counter()

    def start(self, total: int, *, batch: str, phase: str) -> None:
        """Open a bar for this phase."""
        self.close()
        self._counts.clear()
        self._bar = tqdm(
            total=total,
            desc=f"{batch} {phase}",
            unit="row",
            file=self._stream,
            dynamic_ncols=True,
            mininterval=0.5,
        )

    def row(self, state: str, *, row_key: str, detail: dict[str, Any]) -> None:
        """Advance the bar and refresh the counts."""
        self._counts[state] += 1
        if self._bar is not None:
            self._bar.update(1)
            self._refresh()

    def event(self, name: str, **detail: Any) -> None:
        """Count 429s; print stop/canary notices above the bar."""
        if name == "throttled":
            self._counts["429"] += 1
            self._refresh()
        elif name in ("stopping", "canary", "auth_failed"):
            message = detail.get("message", name)
            if self._bar is not None:
                self._bar.write(str(message), file=self._stream)
            else:
                self._stream.write(f"{message}\n")

    def _refresh(self) -> None:
        if self._bar is None:
            return
        c = self._counts
        self._bar.set_postfix_str(
            f"succeeded={c['succeeded']} failed={c['failed'] + c['conflict']} "
            f"retrying={c['retryable']} 429={c['429']}",
            refresh=False,
        )

    def close(self) -> None:
        """Close the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def make_progress(*, quiet: bool, log_json: bool) -> Progress:
    """JSON lines when asked, nothing when quiet, else a bar."""
    if log_json:
        return JsonLinesProgress()
    if quiet:
        return NullProgress()
    return BarProgress()
