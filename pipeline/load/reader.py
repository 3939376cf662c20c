"""Load legacy order files as text: CSV (encoding/BOM/delimiter detection) and workbooks, in chunks.

Owns reading bytes into string DataFrame chunks with exact source line numbers; nothing about
params or rules. Workbooks are read by ``pipeline.load.excel_reader``, CSV records by
``pipeline.load.csv_reader``; which encoding a CSV is in is ``pipeline.load.encoding``'s job.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import os
import stat
from pathlib import Path

from pipeline.config import Settings
from pipeline.errors import InputError
from pipeline.keys import ROW_KEY_COLUMN
from pipeline.load.encoding import EncodingGuess, detect_encoding, non_ascii_values
from pipeline.load.rows import Prefetch, Source

SAMPLE_BYTES = 1 << 20
DELIMITERS = (",", ";", "\t", "|")
WORKBOOK_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xlsb", ".xls", ".ods"})
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
FAILURES_SHEET = "failures"
"""The sheet failures.xlsx writes its rows to."""


def input_sha256(path: Path) -> str:
    """sha256 (hex) of a file's bytes, read in 1 MiB blocks (the ledger's drift guard)."""
    digest = hashlib.sha256()
    require_regular_file(path)
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(SAMPLE_BYTES), b""):
                digest.update(block)
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror or exc})", path=str(path)) from None
    return digest.hexdigest()


def open_input(path: Path, settings: Settings, *, chunk_rows: int | None = None) -> Source:
    """``open_source`` with the reading options of ``settings`` (encoding, delimiter, sheet,
    chunk size unless ``chunk_rows`` overrides it)."""
    return open_source(
        path,
        encoding=settings.encoding,
        delimiter=settings.delimiter,
        sheet=settings.sheet,
        chunk_rows=settings.chunk_rows if chunk_rows is None else chunk_rows,
    )


def open_source(
    path: Path,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
    chunk_rows: int = 100_000,
) -> Source:
    """Open a CSV or workbook, read its header and first chunk, and check it is usable.

    Raises:
        InputError: missing, a directory, unreadable, not a workbook, binary, empty, header only.
    """
    head = _check_file(path)
    suffix = path.suffix.lower()
    if head.startswith((_ZIP_MAGIC, _OLE_MAGIC)) or suffix in WORKBOOK_SUFFIXES:
        from pipeline.load.excel_reader import open_workbook

        source = open_workbook(path, sheet=sheet, chunk_rows=chunk_rows)
    else:
        source = _open_csv(path, head, encoding, delimiter, chunk_rows)
    assert source._chunks is not None
    first = next(source._chunks, None)
    if first is None:
        raise InputError(
            "no data rows (the file has a header but no records)",
            path=str(path),
            hint=(
                "this failures file lists no rows: nothing in it to retry (`order-import "
                "status` shows what the batch still holds)"
                if is_failures_file(path)
                else "export the orders again; only the header line was found"
            ),
        )
    source._first = first
    return source


def require_regular_file(path: Path) -> None:
    """Refuse what is not a regular file before opening it (opening a FIFO would block).

    Raises:
        InputError: missing, a directory, a pipe, socket or device.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError("file not found", path=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror or exc})", path=str(path)) from None
    if stat.S_ISDIR(mode):
        raise InputError("is a directory, not a file", path=str(path))
    if not stat.S_ISREG(mode):
        if stat.S_ISFIFO(mode):
            kind = "a named pipe (FIFO)"
        elif stat.S_ISSOCK(mode):
            kind = "a socket"
        else:
            kind = "a device"
        raise InputError(
            f"is {kind}, not a regular file",
            path=str(path),
            hint="save the export to a file first (the file is read more than once)",
        )


def _check_file(path: Path) -> bytes:
    require_regular_file(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(SAMPLE_BYTES)
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror or exc})", path=str(path)) from None
    if not head.strip():
        raise InputError("the file is empty", path=str(path))
    return head


def is_failures_file(path: Path) -> bool:
    """True for the tool's own failures.csv / failures.xlsx (an ``oi:row_key`` column).

    ``retry`` reads such a file as it was written (UTF-8 with a BOM and commas, or the
    ``failures`` sheet) rather than with the reading options of the batch's source file.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(1 << 16)
    except OSError:
        return False
    if head.startswith(_ZIP_MAGIC):
        from pipeline.load.excel_reader import sheet_names

        return FAILURES_SHEET in sheet_names(path)
    first_line = head.split(b"\n", 1)[0]
    return head.startswith(codecs.BOM_UTF8) and ROW_KEY_COLUMN.encode() in first_line


def sniff_delimiter(text: str) -> str:
    """The delimiter among , ; TAB | giving the most consistent, widest split of the first lines."""
    lines = text.splitlines()[:50]
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample may cut the last line short
    best, best_score = ",", (0, 0)
    for cand in DELIMITERS:
        try:
            rows = [r for r in csv.reader(lines, delimiter=cand) if r]
        except csv.Error:
            continue
        if not rows:
            continue
        width = len(rows[0])
        consistent = sum(1 for r in rows if len(r) == width)
        score = (consistent if width > 1 else 0, width)
        if score > best_score:
            best, best_score = cand, score
    return best


def _open_csv(
    path: Path, head: bytes, encoding: str | None, delimiter: str | None, chunk_rows: int
) -> Source:
    guess = EncodingGuess(encoding, False, "given") if encoding else detect_encoding(head, path)
    enc = guess.encoding
    try:
        b"\0\0\0\0".decode(enc, errors="replace")  # LookupError: unknown, or bytes-to-bytes
    except LookupError:
        raise InputError(f"unknown text encoding {enc!r}", path=str(path)) from None
    from pipeline.load.csv_reader import CsvReader, allow_cells_up_to, check_decodes

    allow_cells_up_to(path.stat().st_size)
    text = codecs.getincrementaldecoder(enc)(errors="replace").decode(head, final=False)
    delim = delimiter or sniff_delimiter(text.lstrip("\ufeff"))
    if delim in ("\\t", "tab", "TAB"):
        delim = "\t"
    if len(delim) != 1:
        raise InputError(f"the delimiter must be one character, got {delim!r}", path=str(path))
    reader = CsvReader(path, enc, delim, chunk_rows)
    header, header_line = reader.read_header()
    chunks = Prefetch(reader.chunks())  # records are parsed while the decoding is checked
    try:
        check_decodes(path, enc)
    except InputError:
        chunks.close()
        raise
    return Source(
        path=path,
        kind="csv",
        header=header,
        header_line=header_line,
        encoding=enc,
        delimiter=delim,
        encoding_guessed=guess.guessed,
        encoding_samples=non_ascii_values(text, delim, enc) if guess.guessed else (),
        _chunks=chunks,
    )
