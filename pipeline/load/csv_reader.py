"""The CSV reader behind ``pipeline.load.reader``: exact start lines, fast path when possible.

The exact path is Python's ``csv`` module (it counts physical lines, so quoted multi-line cells
keep numbering); ``pipeline.load.arrow`` (pyarrow + a line scan) is used when the encoding allows,
and hands back to the exact path from the record where it cannot vouch for the result.
"""

from __future__ import annotations

import codecs
import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pyarrow as pa

from pipeline.errors import InputError
from pipeline.load.rows import RawChunk, clean_header, fit_row, frame_from_rows
from pipeline.models import Issue


def allow_cells_up_to(size: int) -> None:
    """Let Python's csv module read a cell as large as ``size`` characters (default 128 KiB).

    The limit is process-wide and only ever raised: one huge cell (a 5 MB note) must make its
    row invalid by the schema's length rule, not the whole file unreadable.
    """
    wanted = min(max(size, 0) + 1, sys.maxsize)
    if csv.field_size_limit() < wanted:
        csv.field_size_limit(wanted)


def _decode_error_line(path: Path, encoding: str) -> int | None:
    """The physical line holding the first byte that does not decode (text streams read ahead)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    line = 1
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(65536), b""):
            for i in range(0, len(block), 4096):
                piece = block[i : i + 4096]
                try:
                    line += decoder.decode(piece).count("\n")
                except UnicodeDecodeError as exc:
                    good = piece[: max(exc.start, 0)]
                    fresh = codecs.getincrementaldecoder(encoding)(errors="ignore")
                    return line + fresh.decode(good).count("\n")
    return None


DECODE_BLOCK = 1 << 20


def check_decodes(path: Path, encoding: str) -> None:
    """Decode the whole file once before any row is used, so bytes that do not decode far into
    a file stop the run before anything is sent (sending may start while later chunks are still
    being read). One C-level decode per MiB: about a second for a 1 GB file.

    Raises:
        InputError: the first line holding bytes that do not decode as ``encoding``.
    """
    if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig") and _valid_utf8(path):
        return
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(DECODE_BLOCK), b""):
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"cannot decode the text as {encoding} ({exc.reason})",
            path=str(path),
            line=_decode_error_line(path, encoding),
            hint="pass --encoding (e.g. cp1252, utf-16, latin-1)",
        ) from None


UTF8_BLOCK = 1 << 24


def _valid_utf8(path: Path) -> bool:
    """True when the whole file is valid UTF-8, checked by Arrow's validator (SIMD, ~10x
    Python's decoder) in 16 MiB blocks cut at character boundaries. False sends the caller to
    Python's decoder, which names the reason and the line (or accepts what Arrow would not)."""
    carry = b""
    with path.open("rb") as fh:
        while True:
            block = fh.read(UTF8_BLOCK)
            data = carry + block
            if not block:
                return _utf8_ok(data)
            cut = len(data)
            for back in range(1, min(4, len(data)) + 1):  # a sequence is at most 4 bytes
                if data[-back] & 0xC0 != 0x80:  # ASCII or the lead byte of the last sequence
                    cut = len(data) if data[-back] < 0x80 else len(data) - back
                    break
            if not _utf8_ok(data[:cut]):
                return False
            carry = data[cut:]


def _utf8_ok(data: bytes) -> bool:
    if not data:
        return True
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64).tobytes())
    text = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


class CsvReader:
    """csv.reader over a text stream, counting physical lines so multi-line cells keep numbering."""

    def __init__(self, path: Path, encoding: str, delimiter: str, chunk_rows: int) -> None:
        self.path = path
        self.encoding = encoding
        self.delimiter = delimiter
        self.chunk_rows = chunk_rows
        self.header: list[str] = []
        self.header_line = 0

    def _records(self, fh: TextIO) -> Iterator[tuple[int, list[str]]]:
        """Non-blank records with the physical line each starts on."""
        reader = csv.reader(fh, delimiter=self.delimiter)
        prev = 0
        while True:
            start = prev + 1
            try:
                record = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"cannot decode the text as {self.encoding} ({exc.reason})",
                    path=str(self.path),
                    line=_decode_error_line(self.path, self.encoding) or prev + 1,
                    hint="pass --encoding (e.g. cp1252, utf-16, latin-1)",
                ) from None
            except csv.Error as exc:
                raise InputError(
                    f"not readable as CSV: {exc}", path=str(self.path), line=prev + 1
                ) from None
            prev = reader.line_num
            if any(record):  # all-empty records (blank lines, ",,,,") carry no order
                yield start, record

    def read_header(self) -> tuple[list[str], int]:
        with self.path.open(encoding=self.encoding, newline="", errors="strict") as fh:
            first = next(self._records(fh), None)
        if first is None:
            raise InputError("the file has no header and no rows", path=str(self.path))
        self.header_line, names = first
        self.header = clean_header(names, self.path, self.header_line)
        return self.header, self.header_line

    def chunks(self) -> Iterator[RawChunk]:
        """Fast pyarrow path when the encoding allows; the exact csv path for the rest."""
        done = 0
        if _fast_capable(self.encoding, self.delimiter):
            from pipeline.load import arrow as load_fast

            try:
                for chunk in self._fast(load_fast):
                    done += len(chunk.frame)
                    yield chunk
                return
            except load_fast.Unsafe:
                pass  # continue exactly where the fast path stopped
        yield from self._exact(skip=done)

    def _fast(self, load_fast: Any) -> Iterator[RawChunk]:
        tables: list[Any] = []
        starts: list[np.ndarray] = []
        count = 0
        width = len(self.header)
        for table, lines in load_fast.fast_tables(self.path, self.encoding, self.delimiter, width):
            tables.append(table)
            starts.append(lines)
            count += table.num_rows
            while count >= self.chunk_rows:
                merged = load_fast.pa.concat_tables(tables)
                all_lines = np.concatenate(starts)
                head = merged.slice(0, self.chunk_rows)
                yield RawChunk(
                    load_fast.table_frame(head, self.header), all_lines[: self.chunk_rows]
                )
                tables, starts = [merged.slice(self.chunk_rows)], [all_lines[self.chunk_rows :]]
                count -= self.chunk_rows
        if count:
            merged = load_fast.pa.concat_tables(tables)
            yield RawChunk(load_fast.table_frame(merged, self.header), np.concatenate(starts))

    def _exact(self, skip: int = 0) -> Iterator[RawChunk]:
        width = len(self.header)
        with self.path.open(encoding=self.encoding, newline="", errors="strict") as fh:
            records = self._records(fh)
            next(records)  # the header, already read
            for _ in range(skip):
                next(records)
            while True:
                rows: list[list[str]] = []
                lines: list[int] = []
                issues: list[tuple[int, Issue]] = []
                for line, cells in records:
                    if len(cells) != width:
                        cells = fit_row(cells, width, line, issues, len(rows))
                    rows.append(cells)
                    lines.append(line)
                    if len(rows) >= self.chunk_rows:
                        break
                if not rows:
                    return
                yield RawChunk(
                    frame_from_rows(self.header, rows),
                    np.asarray(lines, dtype=np.int64),
                    issues,
                )
                if len(rows) < self.chunk_rows:
                    return


_FAST_CODECS = ("utf-8", "utf-8-sig", "ascii", "latin-1", "iso8859-", "cp125", "cp850", "mac-roman")


def _fast_capable(encoding: str, delimiter: str) -> bool:
    """ASCII-compatible encodings (quote and newline bytes mean what they say) and delimiters."""
    name = codecs.lookup(encoding).name
    return delimiter.isascii() and name.startswith(_FAST_CODECS)
