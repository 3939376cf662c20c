"""The mapping's transforms, vectorised over a chunk: filters, conditions, templates, rules.

Every function takes and returns pandas string Series (NA = empty) and works column-wise with
pandas string operations; nothing here calls Python once per row. Imports only the siblings
``mapping`` (for the filter and rule models) and ``dates`` (its whitespace class).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.prepare.dates import TEXT, WHITESPACE, arrow_text, trim_text
from pipeline.prepare.mapping import Condition, Derivation, Filter, Rule, Scalar, normalise_value


def blank_to_na(text: pd.Series) -> pd.Series:
    """Trimmed text, with empty cells as NA (pyarrow kernels: no pandas ``where`` over text)."""
    trimmed = trim_text(arrow_text(text))
    blank = pc.equal(pc.binary_length(trimmed), 0)
    kept = pc.if_else(blank, pa.scalar(None, trimmed.type), trimmed)
    return pd.Series(kept, index=text.index, dtype=TEXT)


def _norm(text: pd.Series) -> pd.Series:
    """Value comparison form, as for value maps: case-folded, whitespace collapsed. Worked out
    once per distinct value (casefold is a Python call per cell), then taken per cell."""
    encoded = pc.dictionary_encode(arrow_text(text.fillna("")))
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    distinct = pd.Series(encoded.dictionary, dtype=TEXT)
    normed = distinct.str.replace(WHITESPACE + "+", " ", regex=True).str.strip().str.casefold()
    return pd.Series(pc.take(arrow_text(normed), encoded.indices), index=text.index, dtype=TEXT)


def parse_number(text: pd.Series, decimal: str, thousands: str) -> pd.Series:
    """Locale text (``2.235,37`` with decimal ``,`` and thousands ``.``) → Float64; NA if not."""
    cleaned = text.astype("str").str.strip().str.replace("\u00a0", "").str.replace("\u202f", "")
    cleaned = cleaned.str.replace(" ", "")
    if thousands:
        cleaned = cleaned.str.replace(thousands, "", regex=False)
    if decimal != ".":
        cleaned = cleaned.str.replace(decimal, ".", regex=False)
    plain = cleaned.str.fullmatch(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)").fillna(False).astype(bool)
    return pd.to_numeric(cleaned.where(plain, pd.NA), errors="coerce").astype("Float64")  # type: ignore[call-overload]


def to_minor_units(text: pd.Series, digits: int, decimal: str, thousands: str) -> pd.Series:
    """Decimal amounts → whole minor units as Int64 (``12,50`` → 1250); NA where not a number."""
    number = parse_number(text, decimal, thousands)
    scaled = (number * (10**digits)).round(0)
    return pd.Series(scaled.astype("Int64"), index=text.index)


def apply_filters(
    text: pd.Series, filters: Sequence[Filter], decimal: str = ".", thousands: str = ""
) -> tuple[pd.Series, pd.Series]:
    """Run filters in order over a column. Returns (text, mask of cells cut by ``truncate``).

    Empty results become NA; a number filter leaves text that is not a number unchanged (so
    the parameter's own check reports it with its value).
    """
    cut = pd.Series(False, index=text.index)
    for f in filters:
        present = text.notna()
        if f.strip is not None:
            text = text.str.strip(f.strip)
        elif f.remove_prefix is not None:
            text = text.str.removeprefix(f.remove_prefix)
        elif f.remove_suffix is not None:
            text = text.str.removesuffix(f.remove_suffix)
        elif f.remove is not None:
            text = text.str.replace(f.remove, "", regex=False)
        elif f.regex_replace is not None:
            pattern, repl = f.regex_replace
            text = text.str.replace(pattern, repl, regex=True)
        elif f.regex_extract is not None:
            pattern = f.regex_extract
            if re.compile(pattern).groups == 0:
                pattern = f"({pattern})"
            text = text.str.extract(pattern, expand=True)[0].astype("str")
        elif f.zero_pad is not None:
            digits = text.str.fullmatch(r"\d+").fillna(False).astype(bool)
            text = text.where(~digits, text.str.zfill(f.zero_pad))
        elif f.upper:
            text = text.str.upper()
        elif f.lower:
            text = text.str.lower()
        elif f.truncate is not None:
            long = (text.str.len() > f.truncate).fillna(False).astype(bool)
            cut |= long
            text = text.where(~long, text.str.slice(0, f.truncate))
        elif f.minor_units is not None:
            units = to_minor_units(text, f.minor_units, decimal, thousands)
            text = units.astype("str").where(units.notna(), text)
        text = text.where(present & (text != ""), pd.NA)
    return text.astype("str"), cut


def condition_mask(text: pd.Series, cond: Scalar | list[Scalar] | Condition) -> np.ndarray:
    """Which cells of one column pass a ``when`` cond (text = equals, list = one of)."""
    norm = _norm(text)
    if isinstance(cond, list):
        return norm.isin([normalise_value(str(v)) for v in cond]).to_numpy(dtype=bool)
    if not isinstance(cond, Condition):
        return (norm == normalise_value(str(cond))).to_numpy(dtype=bool)
    mask = np.ones(len(text), dtype=bool)
    if cond.blank is not None:
        mask &= (norm == "").to_numpy(dtype=bool) == cond.blank
    if cond.equals is not None:
        mask &= (norm == normalise_value(str(cond.equals))).to_numpy(dtype=bool)
    if cond.not_equals is not None:
        mask &= (norm != normalise_value(str(cond.not_equals))).to_numpy(dtype=bool)
    if cond.in_ is not None:
        mask &= norm.isin([normalise_value(str(v)) for v in cond.in_]).to_numpy(dtype=bool)
    if cond.not_in is not None:
        mask &= ~norm.isin([normalise_value(str(v)) for v in cond.not_in]).to_numpy(dtype=bool)
    if cond.matches is not None:
        found = text.fillna("").str.contains(cond.matches, regex=True)
        mask &= found.fillna(False).to_numpy(dtype=bool)
    return mask


def when_mask(
    frame: pd.DataFrame, when: Mapping[str, Scalar | list[Scalar] | Condition]
) -> np.ndarray:
    """Rows where every test of a ``when`` table holds (an empty table: every row)."""
    mask = np.ones(len(frame), dtype=bool)
    for column, cond in when.items():
        mask &= condition_mask(frame[column], cond)
    return mask


def template(frame: pd.DataFrame, parts: Sequence[tuple[str, bool]]) -> pd.Series:
    """Fill a template from columns; NA on rows where any placeholder's column is empty."""
    out = pd.Series("", index=frame.index, dtype="str")
    missing = np.zeros(len(frame), dtype=bool)
    for text, is_column in parts:
        if is_column:
            value = blank_to_na(frame[text])
            missing |= value.isna().to_numpy(dtype=bool)
            out = out + value.fillna("")
        else:
            out = out + text
    return out.where(~missing, pd.NA)


def coalesce(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """The first non-empty cell among columns, per row."""
    out = blank_to_na(frame[columns[0]])
    for column in columns[1:]:
        out = out.fillna(blank_to_na(frame[column]))
    return out


def split_name(text: pd.Series, part: str) -> pd.Series:
    """First name = every word but the last; last name = the last word (one word: first only)."""
    clean = blank_to_na(text).str.replace(WHITESPACE + "+", " ", regex=True)
    # Whitespace is single spaces now (and none at either end): one split at the last space,
    # made by pyarrow over the column at once (no regex, no Python call per cell). One word
    # gives a one-item list: its first name, no last name.
    pieces = pc.split_pattern(arrow_text(clean), " ", max_splits=1, reverse=True)
    if part == "first":
        field = pc.list_element(pieces, 0)
    else:
        long = pc.greater(pc.list_value_length(pieces), 1)
        padded = pc.if_else(long, pieces, pa.scalar([None, None], pieces.type))
        field = pc.list_element(padded, 1)
    picked = pd.Series(field, index=text.index, dtype=TEXT)
    return picked.where(picked.notna() & (picked != ""), pd.NA)


def rules(frame: pd.DataFrame, entries: Sequence[Rule]) -> pd.Series:
    """The value of the first rule whose ``when`` holds, per row (NA when none does)."""
    out = pd.Series(pd.NA, index=frame.index, dtype="str")
    decided = np.zeros(len(frame), dtype=bool)
    for rule in entries:
        hit = when_mask(frame, rule.when) & ~decided
        if not hit.any():
            continue
        if rule.column is not None:
            out[hit] = blank_to_na(frame[rule.column])[hit]
        else:
            out[hit] = str(rule.value)
        decided |= hit
    return out


def derive(
    frame: pd.DataFrame, how: Derivation, decimal: str = ".", thousands: str = ""
) -> tuple[pd.Series, pd.Series]:
    """One parameter's text from a chunk, after its filters and fallback.

    Returns (text with NA for empty, mask of cells cut by a ``truncate`` filter).
    """
    if how.kind == "column":
        text = blank_to_na(frame[how.columns[0]])
    elif how.kind == "coalesce":
        text = coalesce(frame, how.columns)
    elif how.kind == "template":
        text = template(frame, how.template)
    elif how.kind == "rules":
        text = rules(frame, how.rules)
    elif how.kind == "split_name":
        text = split_name(frame[how.columns[0]], how.part)
    else:
        text = pd.Series(how.value, index=frame.index, dtype="str")
    text, cut = apply_filters(text, how.filters, decimal, thousands)
    if how.fallback is not None:
        text = text.fillna(how.fallback)
    return text, cut


def clean_columns(
    frame: pd.DataFrame, clean: Mapping[str, Sequence[Filter]], decimal: str, thousands: str
) -> pd.DataFrame:
    """``[clean]``: filters on source columns, before grouping and mapping (NA back to "")."""
    if not clean:
        return frame
    frame = frame.copy()
    for column, filters in clean.items():
        text, _ = apply_filters(blank_to_na(frame[column]), filters, decimal, thousands)
        frame[column] = text.fillna("")
    return frame
