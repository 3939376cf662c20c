"""Vectorised date parsing: text cells → Unix seconds, with explicit time zones and Excel serials.

Imports nothing from the package but ``errors``. Parsing is done once per column with pandas'
vectorised parsers (never value by value); the result is checked afterwards by the schemas.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import ConfigError

Ambiguous = Literal[
    "earlier",  # a repeated wall-clock time (DST ends) is the first occurrence
    "later",  # ... the second occurrence
    "error",  # ... is reported as an error for that cell
]
Nonexistent = Literal[
    "shift_forward",  # a skipped wall-clock time (DST starts) moves to the end of the gap
    "error",  # ... is reported as an error for that cell
]

WHITESPACE = "[" + "".join(c for c in map(chr, range(0x3001)) if c.isspace()) + "]"
"""Python's ``\\s`` spelled as a literal character class. pandas runs a pattern with ``\\s``
through Python's ``re`` one cell at a time (RE2 knows fewer spaces); this class matches the same
characters and keeps pyarrow's vectorised engine."""

SERIAL_LIMIT = 1_000_000
"""Numeric cells below this are Excel serial days (year ≤ 4637); at or above, Unix seconds."""
_NUMERIC = r"^[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$"
"""ASCII digits only: ``pd.to_numeric`` reads no others (``\\d`` made ``١٢`` raise ValueError)."""
MAX_UNIX = 253_402_300_799
"""9999-12-31T23:59:59Z: larger numbers are not dates (and would overflow int64)."""
_OFFSET = (
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
    + WHITESPACE
    + r"*(?:Z|z|UTC|[+-]\d{2}(?::?\d{2})?)$"
)
_ISO_DAY = r"^\d{4}-?\d{2}-?\d{2}$"
_SPACE_RE2 = "".join(f"\\x{{{ord(c):x}}}" for c in map(chr, range(0x3001)) if c.isspace())
"""``WHITESPACE``'s characters as RE2 escapes for a character class."""


def _re2(pattern: str) -> str:
    """A Python ``re.match`` pattern of this module for RE2 (pyarrow), with the same meaning on
    stripped text: Python's ``\\d`` is any Unicode decimal digit (RE2's only ASCII), and the
    whitespace class is spelled as escapes."""
    return pattern.replace("\\d", "\\p{Nd}").replace(WHITESPACE, f"[{_SPACE_RE2}]")


_NUMERIC_RE2 = _re2(_NUMERIC)
_OFFSET_RE2 = _re2(_OFFSET)
_ISO_DAY_RE2 = _re2(_ISO_DAY)
_FIXED_WIDTH = {"d": 2, "m": 2, "Y": 4, "H": 2, "M": 2, "S": 2}
"""Directives the byte-level fast path reads as exactly this many ASCII digits."""
_FAST_YEARS = (1678, 2261)
"""Years the fast path accepts: inside datetime64[ns] (others take the exact path)."""
_NUMERIC_DIRECTIVES = {
    "d": (pc.day, 2),
    "m": (pc.month, 2),
    "Y": (pc.year, 4),
    "H": (pc.hour, 2),
    "M": (pc.minute, 2),
    "S": (pc.second, 2),
}
"""Directives whose canonical text is a zero-padded number (built without ``pc.strftime``,
which costs ~8 µs a value: most of a date column's parse time)."""
_TIME_DIRECTIVES = ("%H", "%I", "%M", "%S", "%p", "%X", "%c", "%T", "%R", "%f", "%s", "%z")
_NS_PER_DAY = 86_400 * 10**9
_EXCEL_1900 = np.datetime64("1899-12-30T00:00:00", "ns")
_EXCEL_1900_EARLY = np.datetime64("1899-12-31T00:00:00", "ns")
_EXCEL_1904 = np.datetime64("1904-01-01T00:00:00", "ns")


@dataclass(frozen=True, slots=True)
class DatePolicy:
    """How one date column's text becomes Unix seconds."""

    formats: tuple[str, ...] = ()
    """strptime formats tried in order (e.g. ``%d/%m/%Y %H:%M``); ISO 8601 is always tried last."""
    timezone: str = "UTC"
    """IANA zone of wall-clock values without an offset (values with an offset keep theirs)."""
    ambiguous: Ambiguous = "earlier"
    nonexistent: Nonexistent = "shift_forward"
    excel_date_system: int = 1900
    """1900 or 1904: the epoch of numeric Excel serial dates."""

    def __post_init__(self) -> None:
        zone(self.timezone)
        if self.excel_date_system not in (1900, 1904):
            raise ConfigError(
                f"excel_date_system must be 1900 or 1904, not {self.excel_date_system}"
            )


def zone(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name, or a ConfigError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone {name!r}", hint="use an IANA name such as Europe/Berlin or UTC"
        ) from None


@dataclass(frozen=True, slots=True)
class ParsedDates:
    """Result of parsing one column."""

    seconds: pd.Series
    """Nullable Int64 Unix seconds; NA where the cell was empty or failed."""
    errors: pd.Series
    """Object series: a reason string where a non-empty cell failed, else None."""
    date_only: np.ndarray
    """Bool per cell: the source gave a day without a time of day (``02.06.2019``, ISO
    ``2019-06-02``, a whole Excel serial); its seconds are local midnight."""


@dataclass(frozen=True, slots=True)
class DateCells:
    """What cross-field rules need besides the seconds: which cells are days, and in which zone."""

    date_only: np.ndarray
    timezone: str


def local_days(seconds: pd.Series, timezone: str) -> np.ndarray:
    """Int64 Unix seconds → the day number (days since 1970-01-01) of the wall-clock date in
    ``timezone``; NA cells give 0 (callers mask them)."""
    instants = pd.to_datetime(seconds.fillna(0).astype("int64"), unit="s", utc=True)
    wall = instants.dt.tz_convert(timezone).dt.tz_localize(None)
    return wall.to_numpy(dtype="datetime64[D]").astype(np.int64)


def wall_texts(seconds: np.ndarray, timezone: str, date_only: np.ndarray) -> list[str]:
    """Unix seconds as their day (``2019-06-02``) where ``date_only``, else as wall-clock time
    (``2019-06-02 18:30``, seconds shown when not 0) in ``timezone``. Vectorised."""
    if len(seconds) == 0:
        return []
    instants = pd.to_datetime(pd.Series(seconds, dtype="int64"), unit="s", utc=True)
    local = instants.dt.tz_convert(timezone).dt.tz_localize(None).to_numpy()
    day = np.datetime_as_string(local, unit="D")
    minute = np.char.replace(np.datetime_as_string(local, unit="m"), "T", " ")
    second = np.char.replace(np.datetime_as_string(local, unit="s"), "T", " ")
    whole_minute = local.astype("datetime64[s]") == local.astype("datetime64[m]")
    timed = np.where(whole_minute, minute, second)
    shown: list[str] = np.where(np.asarray(date_only, dtype=bool), day, timed).tolist()
    return shown


def parse_dates(values: pd.Series, policy: DatePolicy) -> ParsedDates:
    """Parse a column of date text to Unix seconds (vectorised; see DatePolicy for the rules).

    Accepted, per cell: Unix seconds (number ≥ 1,000,000), an Excel serial day number
    (< 1,000,000; 1900 or 1904 system), ISO 8601 with an offset (kept), or wall-clock text in
    one of ``policy.formats`` / ISO 8601 without offset, read in ``policy.timezone``.
    """
    original_index = values.index
    values = values.reset_index(drop=True)  # positions and labels coincide below
    arrow = trim_text(arrow_text(values))
    text = pd.Series(arrow, index=values.index, dtype=TEXT)
    present = _mask(pc.not_equal(arrow, ""))
    result = np.full(len(values), np.iinfo(np.int64).min, dtype=np.int64)
    done = np.zeros(len(values), dtype=bool)
    date_only = np.zeros(len(values), dtype=bool)
    reasons = np.full(len(values), None, dtype=object)

    # The first format's fixed-width cells first: nothing else in this function can claim them
    # (see ``_first_layout``), and they are usually nearly all of them.
    fast = np.zeros(len(values), dtype=bool)
    layout = _first_layout(policy.formats[0]) if policy.formats else None
    if layout is not None:
        fast, fast_wall = fixed_width_dates(arrow, layout)
    numeric = np.zeros(len(values), dtype=bool)
    others = np.flatnonzero(present & ~fast)
    if others.size:
        numeric[others] = _mask(pc.match_substring_regex(arrow.take(others), _NUMERIC_RE2))
    if numeric.any():
        number = pd.to_numeric(text[numeric]).to_numpy(dtype=np.float64)
        idx = np.flatnonzero(numeric)
        huge = ~(np.abs(number) <= MAX_UNIX)  # also catches inf and nan
        reasons[idx[huge]] = "is too large to be a date (Unix seconds beyond year 9999)"
        unix = (np.abs(number) >= SERIAL_LIMIT) & ~huge
        result[idx[unix]] = np.floor(number[unix]).astype(np.int64)
        done[idx[unix]] = True
        idx, number = idx[~huge], number[~huge]
        unix = unix[~huge]
        serial_idx = idx[~unix]
        if serial_idx.size:
            serial_wall, bad = _excel_serial(number[~unix], policy.excel_date_system)
            ok_idx = serial_idx[~bad]
            date_only[serial_idx] = np.floor(number[~unix]) == number[~unix]
            reasons[serial_idx[bad]] = "Excel serial 60 is 29 Feb 1900, a day that never existed"
            local = pd.Series(serial_wall[~bad], index=ok_idx)
            _localize_into(local, policy, result, done, reasons, rounded=True)

    offset = np.zeros(len(values), dtype=bool)
    others = np.flatnonzero(present & ~fast & ~numeric)
    if others.size:  # an offset timestamp has a '-' and a ':' (a substring search is cheap)
        some = arrow.take(others)
        maybe = _mask(pc.and_(pc.match_substring(some, "-"), pc.match_substring(some, ":")))
        others = others[maybe]
        offset[others] = _mask(pc.match_substring_regex(arrow.take(others), _OFFSET_RE2))
    if offset.any():
        cleaned = text[offset].str.replace(WHITESPACE + "*UTC$", "Z", regex=True)
        parsed = pd.to_datetime(cleaned, format="ISO8601", utc=True, errors="coerce")
        ok = parsed.notna().to_numpy(dtype=bool)
        idx = np.flatnonzero(offset)
        result[idx[ok]] = _epoch_seconds(parsed[ok].dt.tz_localize(None).to_numpy())
        done[idx[ok]] = True

    if fast.any():
        first = policy.formats[0]
        date_only[fast] = not any(d in first for d in _TIME_DIRECTIVES)
        local = pd.Series(fast_wall[fast], index=np.flatnonzero(fast))
        _localize_into(local, policy, result, done, reasons, rounded=False)
    rest = present & ~done & ~numeric & ~offset & ~fast
    if rest.any():
        remaining = text[rest]
        wall = pd.Series(pd.NaT, index=remaining.index, dtype="datetime64[ns]")
        day_only = np.zeros(len(remaining), dtype=bool)
        for fmt in (*policy.formats, "ISO8601"):
            todo = wall.isna()
            if not todo.any():
                break
            wall[todo] = _strptime(remaining[todo], fmt)
            got_here = (todo & wall.notna()).to_numpy(dtype=bool)
            if fmt == "ISO8601":
                iso_day = pc.match_substring_regex(arrow_text(remaining), _ISO_DAY_RE2)
                day_only |= got_here & _mask(iso_day)
            elif not any(d in fmt for d in _TIME_DIRECTIVES):
                day_only |= got_here
        date_only[np.flatnonzero(rest)] = day_only
        got = wall.notna()
        _localize_into(wall[got], policy, result, done, reasons, rounded=False)
    unparsed = present & ~done & pd.isna(reasons)
    expected = ", ".join(policy.formats) if policy.formats else "ISO 8601 or Unix seconds"
    reasons[unparsed] = f"is not a date in the expected format ({expected})"
    seconds = pd.Series(
        pd.array(np.where(done, result, 0), dtype="Int64"), index=values.index
    ).where(done, pd.NA)
    seconds.index = original_index
    return ParsedDates(
        seconds.astype("Int64"), pd.Series(reasons, index=original_index), date_only & done
    )


@cache
def _first_layout(fmt: str) -> FixedLayout | None:
    """``fmt``'s fixed-width layout when no text written in it can be taken for Unix seconds,
    an Excel serial or an offset timestamp (checked once on a sample: those patterns only tell
    digits from the layout's literal characters, and every such text has the same ones)."""
    layout = fixed_layout(fmt)
    if layout is None:
        return None
    sample = bytearray(b"1" * layout.size)
    for at, byte in layout.literals:
        sample[at] = byte
    text = sample.decode("utf-8")
    if re.match(_NUMERIC, text) or re.match(_OFFSET, text):
        return None
    return layout


def _strptime(text: pd.Series, fmt: str) -> pd.Series:
    """Strict, vectorised strptime: numpy over the bytes for fixed-width text, then pyarrow
    for canonical text, pandas for the rest.

    Formats of zero-padded numbers (``%d/%m/%Y %H:%M``) are read from the cells' bytes
    (``fixed_width_dates``). pyarrow's strptime is fast but lenient (31/02 rolls over to 03/03),
    so a value counts only when formatting the result gives back the exact text; the others
    (``5/4/2023``, bad days) go through pandas' strict parser.
    """
    layout = fixed_layout(fmt)
    if layout is None or not len(text):
        return strptime_exact(text, fmt)
    fixed_ok, wall = fixed_width_dates(arrow_text(text), layout)
    if not fixed_ok.any():
        return strptime_exact(text, fmt)
    out = pd.Series(wall, index=text.index, dtype="datetime64[ns]")
    if not fixed_ok.all():
        out[~fixed_ok] = strptime_exact(text[~fixed_ok], fmt)
    return out


def strptime_exact(text: pd.Series, fmt: str) -> pd.Series:
    """``_strptime`` without the fixed-width path: pyarrow's strptime where formatting the
    result gives back the exact text, pandas' strict parser for the others."""
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    if fmt != "ISO8601" and "%z" not in fmt and "%f" not in fmt:
        arrow = arrow_text(text)
        parsed = pc.strptime(arrow, format=fmt, unit="s", error_is_null=True)
        same = pc.fill_null(pc.equal(_canonical(parsed, fmt), arrow), False)
        exact = same.to_numpy(zero_copy_only=False)
        if exact.any():
            values = parsed.to_numpy(zero_copy_only=False).astype("datetime64[ns]")
            out[exact] = values[exact]
        rest = ~exact
    else:
        rest = np.ones(len(text), dtype=bool)
    if rest.any():
        parsed_rest = pd.to_datetime(text[rest], format=fmt, errors="coerce")
        if getattr(parsed_rest.dt, "tz", None) is not None:  # %z formats: keep the instant
            parsed_rest = parsed_rest.dt.tz_convert("UTC").dt.tz_localize(None)
        # beyond datetime64[ns] (years before 1677 or after 2262): not a date we can hold,
        # reported as not a date (it raised OutOfBoundsDatetime here before)
        inside = (parsed_rest >= pd.Timestamp.min) & (parsed_rest <= pd.Timestamp.max)
        out[rest] = parsed_rest.where(inside).astype("datetime64[ns]")
    return out


TEXT = pd.StringDtype("pyarrow", na_value=np.nan)
"""pandas' ``str`` dtype (pyarrow strings, NaN for missing), spelled out."""


def arrow_text(values: pd.Series) -> pa.Array:
    """A text Series as one pyarrow string array (no copy for pyarrow-backed text; NA → null)."""
    if not (isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow"):
        values = values.astype(TEXT)
    array: pa.Array = pa.array(values.array)
    return array


def trim_text(text: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``pc.utf8_trim_whitespace`` (what pandas' ``str.strip()`` runs), run only on the cells
    whose first or last byte could start or end whitespace (ASCII control or space, or any
    non-ASCII byte); the others cannot change, and are most cells of most columns."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    if pa.types.is_string(text.type):
        text = text.cast(pa.large_string())
    _, offsets_buf, data_buf = text.buffers()
    if data_buf is None or len(text) == 0:
        return text
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[text.offset : text.offset + len(text) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8)
    rows = np.flatnonzero(np.diff(offsets) > 0)  # a null cell has no bytes either
    first = data[offsets[rows]]
    last = data[offsets[rows + 1] - 1]
    maybe = (first <= 0x20) | (first >= 0x7F) | (last <= 0x20) | (last >= 0x7F)
    if not maybe.any():
        return text
    if maybe.sum() * 20 > len(text):  # many: one pass over all is cheaper than a patch
        whole: pa.Array = pc.utf8_trim_whitespace(text)
        return whole
    mask = np.zeros(len(text), dtype=bool)
    mask[rows[maybe]] = True
    flags = pa.array(mask)
    trimmed = pc.utf8_trim_whitespace(text.filter(flags))
    replaced: pa.Array = pc.replace_with_mask(text, flags, trimmed)
    return replaced


def _mask(flags: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A pyarrow boolean result as a numpy bool array, null as False."""
    filled = pc.fill_null(flags, False)
    mask: np.ndarray = np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool)
    return mask


@dataclass(frozen=True, slots=True)
class FixedLayout:
    """A format of fixed-width numeric fields and literal text, as byte positions."""

    size: int
    """Byte length of every text the format writes."""
    fields: tuple[tuple[str, int], ...]
    """(directive, byte offset) of each numeric field (width from ``_FIXED_WIDTH``)."""
    literals: tuple[tuple[int, int], ...]
    """(byte offset, byte value) the text must have outside the fields."""


def fixed_layout(fmt: str) -> FixedLayout | None:
    """The byte layout of ``fmt`` when it is made only of ``%d %m %Y %H %M %S`` (each at most
    once, day, month and year present) and literal text; None for any other format."""
    fields: list[tuple[str, int]] = []
    literals: list[tuple[int, int]] = []
    pos = i = 0
    while i < len(fmt):
        if fmt[i] == "%":
            directive = fmt[i + 1 : i + 2]
            if directive == "%":
                literals.append((pos, ord("%")))
                pos += 1
            elif directive in _FIXED_WIDTH:
                fields.append((directive, pos))
                pos += _FIXED_WIDTH[directive]
            else:
                return None
            i += 2
            continue
        for byte in fmt[i].encode("utf-8"):
            literals.append((pos, byte))
            pos += 1
        i += 1
    names = [name for name, _ in fields]
    if len(set(names)) != len(names) or not {"d", "m", "Y"} <= set(names):
        return None
    return FixedLayout(pos, tuple(fields), tuple(literals))


_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int32)


def fixed_width_dates(text: pa.Array, layout: FixedLayout) -> tuple[np.ndarray, np.ndarray]:
    """Parse the cells written exactly as ``layout`` (zero-padded ASCII digits, the literal text,
    a real calendar date and time, years 1678–2261) from the string array's bytes with numpy.

    Returns (which cells were parsed, naive datetime64[ns] per cell). Every parsed cell is text
    ``strftime`` would write for its value, so the strict parsers agree on it; the other cells
    are left to them (this path only saves time, it never decides that a cell is not a date).
    """
    n = len(text)
    ok_all = np.zeros(n, dtype=bool)
    wall = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    sized = _mask(pc.equal(pc.binary_length(text), layout.size))
    rows = np.flatnonzero(sized)
    if not rows.size:
        return ok_all, wall
    # Cells of one byte length lie back to back in a filtered array's data buffer: a
    # (cells x size) byte matrix over it costs no copy and no index arithmetic.
    same = text if rows.size == n else text.filter(pa.array(sized))
    if isinstance(same, pa.ChunkedArray):
        same = same.combine_chunks()
    if pa.types.is_string(same.type):
        same = same.cast(pa.large_string())
    _, offsets_buf, data_buf = same.buffers()
    first = int(np.frombuffer(offsets_buf, dtype=np.int64)[same.offset])
    data = np.frombuffer(data_buf, dtype=np.uint8)
    cells = data[first : first + rows.size * layout.size].reshape(rows.size, layout.size)
    by_position = np.ascontiguousarray(cells.T)  # one contiguous row per byte position
    ok = np.ones(rows.size, dtype=bool)
    for at, byte in layout.literals:
        ok &= by_position[at] == byte
    value: dict[str, np.ndarray] = {}
    for name, pos in layout.fields:
        number = np.zeros(rows.size, dtype=np.int32)
        for k in range(_FIXED_WIDTH[name]):
            digit = by_position[pos + k] - np.uint8(48)  # a non-digit wraps to >= 10
            ok &= digit < 10
            number = number * 10 + digit
        value[name] = number
    zero = np.zeros(rows.size, dtype=np.int32)
    year, month, day = value["Y"], value["m"], value["d"]
    hour, minute, second = value.get("H", zero), value.get("M", zero), value.get("S", zero)
    ok &= (year >= _FAST_YEARS[0]) & (year <= _FAST_YEARS[1]) & (month >= 1) & (month <= 12)
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    month = np.where(ok, month, 1)
    last = _DAYS_IN_MONTH[month] + ((month == 2) & leap)
    ok &= (day >= 1) & (day <= last) & (hour <= 23) & (minute <= 59) & (second <= 59)
    # days since 1970-01-01 of the proleptic Gregorian date (H. Hinnant's days_from_civil)
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    days = (era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468).astype(np.int64)
    seconds = days * 86_400 + hour * 3_600 + minute * 60 + second
    good = rows[ok]
    ok_all[good] = True
    wall[good] = (seconds[ok] * 10**9).astype("datetime64[ns]")
    return ok_all, wall


def _canonical(parsed: pa.Array, fmt: str) -> pa.Array:
    """The text ``fmt`` gives for each parsed timestamp (what ``pc.strftime`` would give).

    Formats made only of numeric directives (``%d %m %Y %H %M %S``) and literal text are built
    from the timestamps' fields, zero-padded, in one vectorised join; any other format uses
    ``pc.strftime``. A mismatch only sends a cell to the strict (slower) parser.
    """
    parts: list[pa.Array | str] = []
    i = 0
    while i < len(fmt):
        if fmt[i] != "%":
            j = fmt.find("%", i)
            j = len(fmt) if j < 0 else j
            parts.append(fmt[i:j])
            i = j
            continue
        directive = fmt[i + 1 : i + 2]
        if directive == "%":
            parts.append("%")
        elif directive in _NUMERIC_DIRECTIVES:
            field, width = _NUMERIC_DIRECTIVES[directive]
            text = pc.cast(field(parsed), pa.string())
            parts.append(pc.utf8_lpad(text, width=width, padding="0"))
        else:
            return pc.strftime(parsed, format=fmt)
        i += 2
    if not any(isinstance(part, pa.Array) for part in parts):
        return pc.strftime(parsed, format=fmt)
    return pc.binary_join_element_wise(*parts, "")


def _excel_serial(number: np.ndarray, system: int) -> tuple[np.ndarray, np.ndarray]:
    """Serial day numbers → naive datetime64[ns]; marks the fictitious 1900-02-29 (serial 60)."""
    offset_ns = np.round(number * _NS_PER_DAY).astype("timedelta64[ns]")
    if system == 1904:
        return _EXCEL_1904 + offset_ns, np.zeros(len(number), dtype=bool)
    early = number < 60
    bad = (number >= 60) & (number < 61)
    base = np.where(early, _EXCEL_1900_EARLY, _EXCEL_1900)
    return base + offset_ns, bad


def _localize_into(
    naive: pd.Series,
    policy: DatePolicy,
    result: np.ndarray,
    done: np.ndarray,
    reasons: np.ndarray,
    *,
    rounded: bool,
) -> None:
    """Read naive wall-clock times in the policy's zone and store their Unix seconds."""
    if naive.empty:
        return
    naive = naive.astype("datetime64[ns]")
    if rounded:
        naive = naive.dt.round("s")
    # A bool array marks each value as DST (True: the first, earlier occurrence) or not.
    flags = np.full(len(naive), policy.ambiguous == "earlier", dtype=np.bool_)
    local = naive.dt.tz_localize(
        policy.timezone,
        ambiguous="NaT" if policy.ambiguous == "error" else flags,
        nonexistent="NaT" if policy.nonexistent == "error" else "shift_forward",
    )
    ok = local.notna().to_numpy(dtype=bool)
    pos = naive.index.to_numpy()
    idx = np.asarray(pos, dtype=np.int64)
    utc = local[ok].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    result[idx[ok]] = _epoch_seconds(utc)
    done[idx[ok]] = True
    if (~ok).any():
        for position in idx[~ok]:
            wall = naive.loc[position]
            reasons[position] = _gap_or_fold(wall, policy.timezone)


def _gap_or_fold(wall: pd.Timestamp, timezone: str) -> str:
    """Explain why a wall-clock time has no single instant in a zone."""
    try:
        wall.tz_localize(timezone, ambiguous="raise", nonexistent="raise")
    except Exception as exc:  # pandas raises pytz-named exception types
        if "Nonexistent" in type(exc).__name__ or "nonexistent" in str(exc).lower():
            return f"{wall} does not exist in {timezone} (clocks jump forward)"
    return f"{wall} happens twice in {timezone} (clocks go back); it is ambiguous"


def _epoch_seconds(naive_utc: np.ndarray) -> np.ndarray:
    """datetime64 (UTC, naive) → int64 Unix seconds, rounded down."""
    nanos = naive_utc.astype("datetime64[ns]").astype(np.int64)
    return np.floor_divide(nanos, 10**9)
