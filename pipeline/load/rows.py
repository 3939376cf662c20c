"""What every reader yields: text chunks with source lines, and the row helpers they share."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from pipeline.errors import InputError
from pipeline.models import Issue, truncate_value

SourceKind = Literal["csv", "workbook"]
STRING_DTYPE = "str"


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
            yield from self._chunks


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
