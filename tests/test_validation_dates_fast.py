"""The fixed-width date path (numpy over the cells' bytes) against the exact path it skips.

``_strptime`` reads cells written exactly as a format of zero-padded numbers from their bytes
and leaves every other cell to ``strptime_exact`` (pyarrow's strptime checked by formatting
back, then pandas' strict parser): the two must give the same datetime for every text, and
``parse_dates`` must give the same seconds, reasons and day-only flags with the fast path on
or off. The RE2 spellings of the module's patterns must accept exactly what Python's ``re``
accepts (pandas ran those through ``re`` whenever a cell was not ASCII).
"""

from __future__ import annotations

import datetime as dt
import re
from unittest import mock

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.prepare import dates
from pipeline.prepare.dates import DatePolicy, fixed_layout, parse_dates, strptime_exact

FORMATS = (
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d",
    "%d.%m.%Y",
    "%m/%d/%Y %H:%M",
    "%Y%m%d",
    "%H:%M %d-%m-%Y",
    "%d. %m. %Y um %H.%M Uhr",
)
DIGITS = "0123456789"
NEAR = DIGITS + "/-.: T" + "\u0661\u0662\u00a0"  # other digits and spaces pandas/RE2 see apart


def _strftime(moment: dt.datetime, fmt: str) -> str:
    return moment.strftime(fmt)


moments = st.datetimes(min_value=dt.datetime(1677, 9, 22), max_value=dt.datetime(2262, 4, 10))
"""Inside and just outside the fast path's years (1678–2261); not beyond datetime64[ns], which
the exact path does not handle either (a known gap: out-of-range years raise there)."""


def _mutate(text: str, data: st.DataObject) -> str:
    """The text with one character replaced, inserted or removed (a near miss of the format)."""
    if not text:
        return text
    pos = data.draw(st.integers(0, len(text) - 1))
    kind = data.draw(st.sampled_from(["replace", "insert", "delete", "keep"]))
    char = data.draw(st.sampled_from(NEAR))
    if kind == "replace":
        return text[:pos] + char + text[pos + 1 :]
    if kind == "insert":
        return text[:pos] + char + text[pos:]
    if kind == "delete":
        return text[:pos] + text[pos + 1 :]
    return text


def _cells(data: st.DataObject, fmt: str, count: int) -> list[str | None]:
    cells: list[str | None] = []
    for _ in range(count):
        kind = data.draw(st.sampled_from(["exact", "near", "impossible", "free", "none"]))
        if kind == "none":
            cells.append(None)
        elif kind == "free":
            cells.append(data.draw(st.text(alphabet=NEAR, max_size=20)))
        elif kind == "impossible":  # fields out of range: day 31 of any month, hour 24, 29 Feb
            text = _strftime(data.draw(moments), fmt)
            for directive, bad in (("%d", "31"), ("%H", "24"), ("%m", "13"), ("%M", "60")):
                if directive in fmt and data.draw(st.booleans()):
                    text = _strftime(data.draw(moments), fmt.replace(directive, bad))
            cells.append(text)
        else:
            text = _strftime(data.draw(moments), fmt)
            cells.append(_mutate(text, data) if kind == "near" else text)
    return cells


@settings(max_examples=30, deadline=None)
@given(data=st.data(), fmt=st.sampled_from(FORMATS))
def test_fixed_width_path_agrees_with_the_exact_path(data: st.DataObject, fmt: str) -> None:
    cells = _cells(data, fmt, data.draw(st.integers(1, 40)))
    text = pd.Series(cells, dtype="str")
    fast = dates._strptime(text, fmt)
    exact = strptime_exact(text, fmt)
    pd.testing.assert_series_equal(fast, exact)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), fmt=st.sampled_from(FORMATS))
def test_fixed_width_path_reads_every_strftime_text_in_range(data: st.DataObject, fmt: str) -> None:
    """Not only sound but useful: what strftime writes (years 1678–2261) is read from bytes."""
    layout = fixed_layout(fmt)
    assert layout is not None
    inside = st.datetimes(min_value=dt.datetime(1678, 1, 1), max_value=dt.datetime(2261, 12, 31))
    moments_in = data.draw(st.lists(inside, min_size=1, max_size=20))
    arrow = pa.array([_strftime(m, fmt) for m in moments_in], type=pa.large_string())
    ok, wall = dates.fixed_width_dates(arrow, layout)
    assert ok.all()
    truth = pd.to_datetime(pd.Series([_strftime(m, fmt) for m in moments_in]), format=fmt)
    assert (wall == truth.to_numpy(dtype="datetime64[ns]")).all()


@pytest.mark.parametrize(
    ("fmt", "layout"),
    [("%d/%m/%Y %I:%M %p", False), ("%d/%m/%y", False), ("%H:%M", False), ("%d/%m/%Y", True)],
)
def test_only_formats_of_padded_numbers_have_a_layout(fmt: str, layout: bool) -> None:
    assert (fixed_layout(fmt) is not None) is layout


@settings(max_examples=30, deadline=None)
@given(
    data=st.data(),
    formats=st.lists(st.sampled_from(FORMATS), min_size=0, max_size=3, unique=True),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"]),
)
def test_parse_dates_is_the_same_with_and_without_the_fast_path(
    data: st.DataObject, formats: list[str], zone: str
) -> None:
    fmts = formats or ["%d/%m/%Y %H:%M"]
    cells: list[str | None] = []
    for fmt in fmts:
        cells += _cells(data, fmt, 8)
    numbers = st.sampled_from(["44000", "60", "1600000000", " 12 ", "1e3", "\u0661\u0662", ""])
    cells += data.draw(st.lists(numbers, max_size=4))
    cells += data.draw(
        st.lists(st.sampled_from(["2021-03-28 02:30+01:00", "2021-01-26T10:50 UTC"]), max_size=2)
    )
    values = pd.Series(cells, dtype="str")
    policy = DatePolicy(formats=tuple(formats), timezone=zone)
    with_fast = parse_dates(values, policy)
    with mock.patch.object(dates, "fixed_layout", return_value=None):
        dates._first_layout.cache_clear()
        without = parse_dates(values, policy)
    dates._first_layout.cache_clear()
    pd.testing.assert_series_equal(with_fast.seconds, without.seconds)
    pd.testing.assert_series_equal(with_fast.errors, without.errors)
    assert (with_fast.date_only == without.date_only).all()


RE2_PAIRS = [
    (dates._NUMERIC, dates._NUMERIC_RE2),
    (dates._OFFSET, dates._OFFSET_RE2),
    (dates._ISO_DAY, dates._ISO_DAY_RE2),
]


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=DIGITS + "+-.eE:TZzUC \u0661\u0662\u00a0\u3000\u2028", max_size=30))
def test_re2_patterns_match_what_python_re_matches(text: str) -> None:
    stripped = text.strip()
    for python, re2 in RE2_PAIRS:
        got = pc.match_substring_regex(pa.array([stripped]), re2)[0].as_py()
        assert got == bool(re.match(python, stripped)), (python, stripped)


def test_iso_offset_texts_still_match() -> None:
    for text in ["2021-01-26T10:50Z", "2021-01-26 10:50:00.5\u3000UTC", "2021-01-26 10:50+0100"]:
        assert pc.match_substring_regex(pa.array([text]), dates._OFFSET_RE2)[0].as_py()
    assert np.asarray(dates._mask(pa.array([True, None, False]))).tolist() == [True, False, False]


@settings(max_examples=200, deadline=None)
@given(
    cells=st.lists(
        st.one_of(
            st.none(),
            st.text(alphabet="ab é\t\n\x1c\x85\xa0\u2028\u3000\x00\x7f", max_size=6),
        ),
        max_size=60,
    )
)
def test_trim_text_is_arrows_trim(cells: list[str | None]) -> None:
    """Only cells that may start or end with whitespace are trimmed; the result is the same."""
    text = pa.array(cells, type=pa.large_string())
    assert dates.trim_text(text).equals(pc.utf8_trim_whitespace(text))
