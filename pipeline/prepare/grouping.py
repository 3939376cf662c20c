"""``[orders] group_by``: consecutive rows with one key are one order (line-item exports).

``regroup`` re-cuts the reader's chunks so that no group spans two chunks; ``collapse`` turns a
chunk's rows into one row per group, vectorised: each column takes the first non-empty value of
its group (pandas ``groupby().first()``), and two rows of a group that disagree on a column the
mapping reads make that order invalid with both source lines named. Imports models and load.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.load.rows import RawChunk
from pipeline.models import Issue, truncate_value


def _group_starts(keys: pd.Series) -> np.ndarray:
    """True where a new group starts: the key differs from the row above, or is empty."""
    text = keys.astype("str").str.strip()
    starts = (text != text.shift(1)).to_numpy(dtype=bool) | (text == "").to_numpy(dtype=bool)
    if len(starts):
        starts[0] = True
    return starts


def regroup(chunks: Iterator[RawChunk], column: str) -> Iterator[RawChunk]:
    """Yield chunks whose boundaries never cut a group of consecutive equal ``column`` values."""
    held: RawChunk | None = None
    for chunk in chunks:
        if held is not None:
            offset = len(held.frame)
            chunk = RawChunk(
                pd.concat([held.frame, chunk.frame], ignore_index=True),
                np.concatenate([held.lines, chunk.lines]),
                held.issues + [(pos + offset, issue) for pos, issue in chunk.issues],
            )
        starts = np.flatnonzero(_group_starts(chunk.frame[column]))
        cut = int(starts[-1]) if starts.size else 0
        if cut == 0:  # the whole chunk may be one group still growing
            held = chunk
            continue
        yield RawChunk(
            chunk.frame.iloc[:cut].reset_index(drop=True),
            chunk.lines[:cut],
            [(p, i) for p, i in chunk.issues if p < cut],
        )
        held = RawChunk(
            chunk.frame.iloc[cut:].reset_index(drop=True),
            chunk.lines[cut:],
            [(p - cut, i) for p, i in chunk.issues if p >= cut],
        )
    if held is not None and len(held.frame):
        yield held


@dataclass(frozen=True, slots=True)
class Collapsed:
    """A chunk with one row per group."""

    frame: pd.DataFrame
    lines: np.ndarray
    """The first source line of each group."""
    group_lines: list[tuple[int, ...]]
    """Every source line of each group."""
    issues: list[tuple[int, Issue]]
    """Reader issues moved to their group's position, plus ``group_conflict`` errors."""


def collapse(
    chunk: RawChunk, column: str, checked: Sequence[str], *, group_param: str | None = None
) -> Collapsed:
    """One row per group of consecutive equal ``column`` values.

    Args:
        chunk: rows as read (whole groups: see ``regroup``).
        column: the group key column.
        checked: columns the mapping reads; disagreeing non-empty values in a group are an error.
        group_param: the parameter the key feeds, for messages.
    """
    frame = chunk.frame.reset_index(drop=True)
    starts = _group_starts(frame[column])
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    ends = np.append(first[1:], len(frame))
    # Only groups of several rows need grouping work: a one-row group is its row as it is.
    multi = (ends - first) > 1
    in_multi = multi[group] if len(frame) else np.zeros(0, dtype=bool)
    # Columns the mapping reads take the first non-empty value of their group; the others
    # (shown as the row's raw text) are the first row's, a plain take.
    read = [c for c in frame.columns if c in set(checked)]
    collapsed = frame.iloc[first].reset_index(drop=True)
    rows_multi = np.flatnonzero(in_multi)
    sub = frame.iloc[rows_multi][read].replace("", pd.NA) if read and rows_multi.size else None
    sub_group = group[rows_multi]
    if sub is not None:
        firsts = sub.groupby(sub_group, sort=False).first().fillna("").astype("str")
        at = firsts.index.to_numpy()
        for col in read:
            values = collapsed[col].to_numpy(dtype=object)
            values[at] = firsts[col].to_numpy(dtype=object)
            collapsed[col] = pd.Series(values, dtype="str")
    # Each group's source lines: a one-row group's made in C (zip of one list), the few
    # groups of several rows sliced.
    all_lines = chunk.lines.tolist()
    group_lines: list[tuple[int, ...]] = list(zip(chunk.lines[first].tolist()))
    for g in np.flatnonzero(multi).tolist():
        group_lines[g] = tuple(all_lines[first[g] : ends[g]])
    issues = [(int(group[pos]), issue) for pos, issue in chunk.issues]
    key_text = frame[column].astype("str").str.strip()
    compared = [c for c in read if c != column]
    distinct = (
        sub[compared].groupby(sub_group, sort=False).nunique(dropna=True)
        if compared and sub is not None
        else pd.DataFrame(index=pd.Index([], dtype=np.int64))
    )
    for col in compared:
        if col not in distinct:
            continue
        conflicting = distinct.index.to_numpy()[distinct[col].to_numpy() > 1]
        if not conflicting.size:
            continue
        blank = frame[col].replace("", pd.NA)
        values = blank.astype("str").str.strip().replace("", pd.NA)  # type: ignore[call-overload]
        for g in conflicting:
            rows = np.flatnonzero(group == g)
            cells = values.iloc[rows]
            present = cells.dropna()
            first_value = str(present.iloc[0])
            differing = present.index[present != first_value]
            if len(differing) == 0:  # the cells differ only in surrounding spaces
                continue
            other_pos = int(differing[0])
            first_pos = int(present.index[0])
            other_value = str(cells.loc[other_pos])
            line_a, line_b = int(chunk.lines[first_pos]), int(chunk.lines[other_pos])
            issues.append(
                (
                    int(g),
                    Issue(
                        source_line=line_a,
                        column=col,
                        param=None,
                        value=truncate_value(f"{first_value} | {other_value}"),
                        rule="group_conflict",
                        message=(
                            f"lines {line_a} and {line_b} of order {key_text.iloc[first_pos]!r} "
                            f"({column}) disagree on {col!r}: {first_value!r} vs "
                            f"{other_value!r}; an order-level value must be the same on every "
                            "line of the order (or empty)"
                        ),
                        stage="rule",
                    ),
                )
            )
    return Collapsed(collapsed, chunk.lines[first], group_lines, issues)
