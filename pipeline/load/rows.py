"""What every reader yields: text chunks with source lines, and the row helpers they share."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Literal, TypeVar

import numpy as np
import pandas as pd

from pipeline.errors import InputError
from pipeline.models import Issue, truncate_value

SourceKind = Literal["csv", "workbook"]
STRING_DTYPE = "str"
T = TypeVar("T")
_END = object()
_POLL_S = 0.1
"""How often a waiting reader thread looks whether its consumer has gone."""
CLOSE_WAIT_S = 30.0
"""Longest ``Prefetch.close`` waits for the reader thread to finish the item it is reading."""


class Prefetch(Generic[T]):
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead of the consumer.

    The CSV reader's parsing (pyarrow, numpy) releases the GIL, so the next chunk is read on
    the second core while this one is mapped and validated. Order is kept; an exception raised
    by ``items`` is raised to the consumer at the position it happened, after the items before
    it. ``close()`` (also on garbage collection) stops the thread at its next item: it holds no
    reference to this object, only to the queue, the slots and the stop flag.
    """

    def __init__(self, items: Iterator[T], depth: int = 1) -> None:
        self._queue: queue.SimpleQueue[tuple[object, BaseException | None]] = queue.SimpleQueue()
        self._slots = threading.Semaphore(depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(
            target=_produce,
            args=(items, self._queue, self._slots, self._stop),
            name="chunk-reader",
            daemon=True,
        )
        self._thread.start()

    def __iter__(self) -> Prefetch[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        item, error = self._queue.get()
        self._slots.release()
        if item is _END:
            self._done = True
            self._stop.set()
            if error is not None:
                raise error
            raise StopIteration
        return item  # type: ignore[return-value]

    def close(self, wait_s: float = CLOSE_WAIT_S) -> None:
        """Stop reading ahead: the thread ends after the item it is reading, if any, and this
        waits for that (at most ``wait_s``). A process that exits (say, with an input error)
        while the thread is still inside pyarrow's C++ CSV reader can abort at exit
        ("terminate called without an active exception", exit 134 instead of 2)."""
        self._done = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(wait_s)

    def __del__(self) -> None:
        self._stop.set()


def _produce(
    items: Iterator[T],
    out: queue.SimpleQueue[tuple[object, BaseException | None]],
    slots: threading.Semaphore,
    stop: threading.Event,
) -> None:
    """The reader thread: one item per free slot, then the end marker (with the error, if any)."""
    try:
        while True:
            while not slots.acquire(timeout=_POLL_S):
                if stop.is_set():
                    return
            if stop.is_set():
                return
            try:
                item = next(items)
            except StopIteration:
                out.put((_END, None))
                return
            except BaseException as exc:  # handed to the consumer, raised there
                out.put((_END, exc))
                return
            out.put((item, None))
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


@dataclass(frozen=True, slots=True)
class RawChunk:
    """A block of source records as text, with where each record starts in the file."""

    frame: pd.DataFrame
    """One column per header name; every value a string, ``""`` for an empty cell."""
    lines: np.ndarray
    """int64 source line of each record (CSV: physical line where it starts; Excel: row)."""
    issues: list[tuple[int, Issue]] = field(default_factory=list)
    """(row position in this chunk, issue) for problems found while reading (ragged rows)."""


@dataclass(slots=True)
class Source:
    """An opened input file: its header and a chunk iterator. Built by ``open_source``."""

    path: Path
    kind: SourceKind
    header: list[str]
    header_line: int
    sheet: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    excel_date_system: int | None = None
    """1900 or 1904 for workbooks (serial dates), None for CSV."""
    encoding_guessed: bool = False
    """True when the encoding is a guess (no byte-order mark, not UTF-8, not given)."""
    encoding_samples: tuple[str, ...] = ()
    """A few non-ASCII values as the guessed encoding reads them (empty unless guessed)."""
    _chunks: Iterator[RawChunk] | None = None
    _first: RawChunk | None = None

    @property
    def encoding_note(self) -> str | None:
        """One line for the validate/run summary when the encoding was guessed, else None."""
        if not self.encoding_guessed:
            return None
        shown = ", ".join(repr(value) for value in self.encoding_samples)
        seen = f"; non-ASCII values read as: {shown}" if shown else ""
        return (
            f"Encoding {self.encoding} was guessed (no byte-order mark, not UTF-8){seen}. "
            "If they look wrong, pass --encoding or set encoding in the mapping file."
        )

    def chunks(self) -> Iterator[RawChunk]:
        """Yield the data records in chunks (the first one was read by ``open_source``)."""
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        if self._chunks is not None:
            try:
                yield from self._chunks
            finally:  # the consumer stopped early (an error, Ctrl-C): no reading left running
                if isinstance(self._chunks, Prefetch):
                    self._chunks.close()


def clean_header(names: list[str], path: Path, line: int) -> list[str]:
    """Strip whitespace/BOM from header cells, name blank ones, refuse duplicates."""
    out: list[str] = []
    seen: set[str] = set()
    for pos, name in enumerate(names, start=1):
        clean = name.replace("\ufeff", "").strip() or f"(column {pos})"
        if clean in seen:
            raise InputError(
                "duplicate column name in the header",
                path=str(path),
                line=line,
                column=clean,
                hint="rename one of the columns so each name appears once",
            )
        seen.add(clean)
        out.append(clean)
    return out


def frame_from_rows(header: list[str], rows: list[list[str]]) -> pd.DataFrame:
    """Build a string DataFrame from equal-length rows (column-wise, no per-cell work)."""
    if not rows:
        return pd.DataFrame({name: pd.Series([], dtype=STRING_DTYPE) for name in header})
    columns = list(zip(*rows, strict=True))
    return pd.DataFrame(
        {
            name: pd.Series(col, dtype=STRING_DTYPE)
            for name, col in zip(header, columns, strict=True)
        }
    )


def fit_row(
    cells: list[str], width: int, line: int, issues: list[tuple[int, Issue]], pos: int
) -> list[str]:
    """Pad or cut a record to the header's width, reporting a ragged row with its line."""
    got = len(cells)
    if got > width:
        extra = cells[width:]
        if any(cell.strip() for cell in extra):
            issues.append(
                (
                    pos,
                    Issue(
                        source_line=line,
                        column=None,
                        param=None,
                        value=truncate_value(" | ".join(extra)),
                        rule="ragged_row",
                        message=f"row has {got} cells but the header has {width}; "
                        "the extra cells are ignored (a stray delimiter or unquoted text?)",
                        stage="parse",
                    ),
                )
            )
        return cells[:width]
    issues.append(
        (
            pos,
            Issue(
                source_line=line,
                column=None,
                param=None,
                value=None,
                rule="ragged_row",
                message=f"row has {got} cells but the header has {width}; "
                "the missing cells are read as empty (a cut or shifted row?)",
                stage="parse",
            ),
        )
    )
    return cells + [""] * (width - got)
