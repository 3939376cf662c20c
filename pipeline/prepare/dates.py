"""Vectorised date parsing: text cells → Unix seconds, with explicit time zones and Excel serials.

Imports nothing from the package but ``errors``. Parsing is done once per column with pandas'
vectorised parsers (never value by value); the result is checked afterwards by the schemas.
"""

from __future__ import annotations

from dataclasses import dataclass
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
_NUMERIC = r"^[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$"
MAX_UNIX = 253_402_300_799
"""9999-12-31T23:59:59Z: larger numbers are not dates (and would overflow int64)."""
_OFFSET = (
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
    + WHITESPACE
    + r"*(?:Z|z|UTC|[+-]\d{2}(?::?\d{2})?)$"
)
_ISO_DAY = r"^\d{4}-?\d{2}-?\d{2}$"
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
    text = values.astype("str").str.strip()
    present = values.notna() & (text != "")
    result = np.full(len(values), np.iinfo(np.int64).min, dtype=np.int64)
    done = np.zeros(len(values), dtype=bool)
    date_only = np.zeros(len(values), dtype=bool)
    reasons = np.full(len(values), None, dtype=object)

    numeric = (present & text.str.match(_NUMERIC)).to_numpy(dtype=bool)
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

    offset = (present & ~pd.Series(numeric, index=values.index) & text.str.match(_OFFSET)).to_numpy(
        dtype=bool
    )
    if offset.any():
        cleaned = text[offset].str.replace(WHITESPACE + "*UTC$", "Z", regex=True)
        parsed = pd.to_datetime(cleaned, format="ISO8601", utc=True, errors="coerce")
        ok = parsed.notna().to_numpy(dtype=bool)
        idx = np.flatnonzero(offset)
        result[idx[ok]] = _epoch_seconds(parsed[ok].dt.tz_localize(None).to_numpy())
        done[idx[ok]] = True

    rest = present.to_numpy(dtype=bool) & ~done & ~numeric & ~offset
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
                day_only |= got_here & remaining.str.match(_ISO_DAY).fillna(False).to_numpy(
                    dtype=bool
                )
            elif not any(d in fmt for d in _TIME_DIRECTIVES):
                day_only |= got_here
        date_only[np.flatnonzero(rest)] = day_only
        got = wall.notna()
        _localize_into(wall[got], policy, result, done, reasons, rounded=False)
    unparsed = present.to_numpy(dtype=bool) & ~done & pd.isna(reasons)
    expected = ", ".join(policy.formats) if policy.formats else "ISO 8601 or Unix seconds"
    reasons[unparsed] = f"is not a date in the expected format ({expected})"
    seconds = pd.Series(
        pd.array(np.where(done, result, 0), dtype="Int64"), index=values.index
    ).where(done, pd.NA)
    seconds.index = original_index
    return ParsedDates(
        seconds.astype("Int64"), pd.Series(reasons, index=original_index), date_only & done
    )


def _strptime(text: pd.Series, fmt: str) -> pd.Series:
    """Strict, vectorised strptime: pyarrow for canonical text, pandas for the rest.

    pyarrow's strptime is fast but lenient (31/02 rolls over to 03/03), so a value counts only
    when formatting the result gives back the exact text; the others (``5/4/2023``, bad days)
    go through pandas' strict parser.
    """
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    if fmt != "ISO8601" and "%z" not in fmt and "%f" not in fmt:
        arrow = pa.array(text.astype(object).to_numpy(), type=pa.string(), from_pandas=True)
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
        out[rest] = parsed_rest.astype("datetime64[ns]")
    return out


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
