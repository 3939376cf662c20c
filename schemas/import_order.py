"""pandera schemas for a frame of import_order / update-order params (one column per dotted param).

Imports nothing from ``pipeline``. String columns hold text or NA (empty cells are NA); timestamp
and integer columns are already parsed to nullable ``Int64`` by the caller — these schemas never
coerce (coercing untrusted dates in pandera is ~100x slower, DESIGN "Measured"). pandera itself is
imported when a schema is built: ``schema_passes`` clears a valid chunk with pyarrow alone, so a
file without invalid cells never imports it (a fifth of a run's imports before its first request).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.compute as pc

if TYPE_CHECKING:
    import pandera.pandas as pa

from schemas.params import (
    ADDRESS_PREFIXES,
    COUNTRY_CODES,
    IMPORT_ORDER_PARAMS,
    UPDATE_ORDER_PARAMS,
    ParamSpec,
)

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"
"""The email rule as a Python ``re.match`` pattern (the reference the vectorised check keeps)."""
INT64_MAX = 2**63 - 1

# Rule names: the check ``name`` pandera reports, and what Issues carry as ``rule``.
RULE_REQUIRED = "required"
RULE_MAX_LENGTH = "max_length"
RULE_ENUM = "enum"
RULE_EMAIL = "email"
RULE_COUNTRY = "country"
RULE_TIMESTAMP_RANGE = "timestamp_range"
RULE_MIN = "min_value"
RULE_LOOKUP_ID = "unsafe_id"
LOOKUP_ID_PATTERN = r"^(?!\.\.?$)(?!\s)(?!.*\s$)[^/?#\x00-\x1f\x7f]+$"
"""An order id the tool can look up as one URL path segment (``GET /orders/{id}``): not ``.``
or ``..``, no ``/ ? #`` or control characters, no leading or trailing whitespace. A Python
``re.match`` pattern: the reference the vectorised check keeps."""

_SPACE = "".join(f"\\x{{{ord(c):x}}}" for c in map(chr, range(0x3001)) if c.isspace())
"""Python's ``\\s`` (the 29 characters ``str.isspace`` accepts; none above U+3000) as RE2
escapes for a character class."""
EMAIL_RE2 = rf"^[^@{_SPACE}]+@[^@{_SPACE}]+\.[^@{_SPACE}.]+\n?$"
"""``EMAIL_PATTERN`` for RE2 (pyarrow), accepting exactly the same texts: RE2 has no ``\\s``
with Python's meaning, and Python's ``$`` also matches before a final newline."""
_ID_BAD = r"/?#\x00-\x1f\x7f"
LOOKUP_ID_RE2 = rf"^[^{_ID_BAD}{_SPACE}](?:[^{_ID_BAD}]*[^{_ID_BAD}{_SPACE}])?$"
"""``LOOKUP_ID_PATTERN`` for RE2 without its look-aheads: allowed characters only, neither
first nor last a space (Python's ``$`` before a final newline cannot apply: a newline is a
control character, and ``(?!.*\\s$)`` refuses it). ``.`` and ``..`` are refused apart."""

CHECK_MESSAGES: dict[str, str] = {
    RULE_REQUIRED: "is required but empty",
    RULE_MAX_LENGTH: "is longer than {max_length} characters",
    RULE_ENUM: "is not one of: {choices}",
    RULE_EMAIL: "is not an email address",
    RULE_COUNTRY: "is not an ISO 3166-1 alpha-2 country code (e.g. US, DE, GB, XI)",
    RULE_TIMESTAMP_RANGE: "is outside the plausible range {low}..{high} (Unix seconds)",
    RULE_MIN: "must be a whole number >= 0 (minor units, e.g. cents)",
    RULE_LOOKUP_ID: (
        "cannot be looked up safely as GET /orders/<id>: no '.' or '..', no '/', '?', '#' "
        "or control characters, no leading or trailing spaces"
    ),
}
"""Message templates per rule; the caller prefixes the parameter name."""


def _regex_check(pattern: str, refused: tuple[str, ...] = ()) -> Callable[[pd.Series], pd.Series]:
    """A column check running an RE2 ``pattern`` over all cells at once (pyarrow), not Python's
    ``re`` once per cell as ``Check.str_matches`` does for a pattern pandas cannot hand to
    pyarrow; cells in ``refused`` fail whatever the pattern says."""

    def check(values: pd.Series) -> pd.Series:
        text = pyarrow.array(values.astype("str").array)
        ok = pc.match_substring_regex(text, pattern)
        if refused:
            ok = pc.and_(ok, pc.invert(pc.is_in(text, pyarrow.array(refused))))
        return pd.Series(np.asarray(pc.fill_null(ok, True), dtype=bool), index=values.index)

    return check


def _checks(spec: ParamSpec, ts_range: tuple[int, int]) -> list[tuple[str, pa.Check]]:
    """The (rule, check) pairs for one param, in the order pandera numbers them."""
    import pandera.pandas as pa

    checks: list[tuple[str, pa.Check]] = []
    if spec.kind == "string" and spec.max_length is not None:
        checks.append((RULE_MAX_LENGTH, pa.Check.str_length(max_value=spec.max_length)))
    if spec.kind == "enum" and spec.choices is not None:
        checks.append((RULE_ENUM, pa.Check.isin(spec.choices)))
    if spec.kind == "timestamp":
        low, high = ts_range
        checks.append((RULE_TIMESTAMP_RANGE, pa.Check.in_range(low, high)))
    if spec.kind == "integer":
        checks.append((RULE_MIN, pa.Check.in_range(0, INT64_MAX)))
    if spec.name == "id":
        checks.append(
            (
                RULE_LOOKUP_ID,
                pa.Check(_regex_check(LOOKUP_ID_RE2, (".", "..")), name=RULE_LOOKUP_ID),
            )
        )
    field = spec.name.rpartition(".")[2]
    if "." in spec.name and field == "email":
        checks.append((RULE_EMAIL, pa.Check(_regex_check(EMAIL_RE2), name=RULE_EMAIL)))
    if "." in spec.name and field == "country":
        checks.append((RULE_COUNTRY, pa.Check.isin(sorted(COUNTRY_CODES))))
    return checks


def _schema(
    specs: Mapping[str, ParamSpec], columns: Iterable[str], ts_range: tuple[int, int], name: str
) -> pa.DataFrameSchema:
    import pandera.pandas as pa

    present = [c for c in columns if c in specs]
    cols: dict[str, pa.Column] = {}
    for col in present:
        spec = specs[col]
        numeric = spec.kind in ("timestamp", "integer")
        cols[col] = pa.Column(
            "Int64" if numeric else None,
            checks=[check for _, check in _checks(spec, ts_range)],
            nullable=not spec.required,
            required=False,
            coerce=False,
        )
    return pa.DataFrameSchema(cols, name=name, strict=False, coerce=False)


def _text_passes(spec: ParamSpec, values: pd.Series) -> bool:
    """Every non-NA cell of a text column passes ``_checks(spec)`` (pyarrow kernels)."""
    text = pyarrow.array(values.array)
    if spec.kind == "string" and spec.max_length is not None:
        longest = pc.max(pc.utf8_length(text)).as_py()
        if longest is not None and longest > spec.max_length:
            return False
    allowed: Iterable[str] | None = None
    if spec.kind == "enum" and spec.choices is not None:
        allowed = spec.choices
    field = spec.name.rpartition(".")[2]
    if "." in spec.name and field == "country":
        allowed = sorted(COUNTRY_CODES)
    if allowed is not None:
        known = pc.is_in(text, value_set=pyarrow.array(list(allowed), type=text.type))
        if not pc.all(pc.or_kleene(known, pc.is_null(text))).as_py():
            return False
    if spec.name == "id" and not _regex_check(LOOKUP_ID_RE2, (".", ".."))(values).all():
        return False
    email = "." in spec.name and field == "email"
    return not email or bool(_regex_check(EMAIL_RE2)(values).all())


def schema_passes(frame: pd.DataFrame, ts_range: tuple[int, int], update: bool = False) -> bool:
    """True when the import_order (or update) schema would find nothing in ``frame``, decided
    with pyarrow and numpy kernels only: the same checks as ``_checks`` (NA cells skipped, as
    pandera skips them), the ``Int64`` dtype of numeric columns and the required ones without
    NA. False when anything might fail, or for a column of an unexpected dtype: the caller then
    runs the pandera schema, which names every failing cell. Valid chunks, the usual case,
    never pay for pandera (its per-check machinery and, on first use, its import of
    hypothesis)."""
    specs = UPDATE_ORDER_PARAMS if update else IMPORT_ORDER_PARAMS
    for column in frame.columns:
        spec = specs.get(column)
        if spec is None:
            continue
        values = frame[column]
        numeric = spec.kind in ("timestamp", "integer")
        if numeric and values.dtype != "Int64":
            return False
        present = values.notna().to_numpy(dtype=bool)
        if spec.required and not present.all():
            return False
        if not present.any():
            continue
        if numeric:
            low, high = ts_range if spec.kind == "timestamp" else (0, INT64_MAX)
            numbers = values.to_numpy(dtype=np.int64, na_value=low)
            if numbers.min() < low or numbers.max() > high:
                return False
            continue
        if not (isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow"):
            return False
        if not _text_passes(spec, values):
            return False
    return True


def check_rule(column: str, check_number: int | None, update: bool = False) -> str:
    """The rule name of pandera failure case ``check_number`` on ``column`` (None = required)."""
    if check_number is None:
        return RULE_REQUIRED
    specs = UPDATE_ORDER_PARAMS if update else IMPORT_ORDER_PARAMS
    return _checks(specs[column], (0, 0))[int(check_number)][0]


def import_order_schema(columns: Iterable[str], ts_range: tuple[int, int]) -> pa.DataFrameSchema:
    """The import_order schema for the params actually present in a frame.

    Args:
        columns: dotted param names present in the frame (others are ignored).
        ts_range: inclusive plausible range for every timestamp, in Unix seconds.
    """
    return _schema(IMPORT_ORDER_PARAMS, columns, ts_range, "import_order")


def update_order_schema(columns: Iterable[str], ts_range: tuple[int, int]) -> pa.DataFrameSchema:
    """The order-update schema (FACTS §6) for the params present in a frame."""
    return _schema(UPDATE_ORDER_PARAMS, columns, ts_range, "update_order")


__all__ = [
    "ADDRESS_PREFIXES",
    "CHECK_MESSAGES",
    "check_rule",
    "import_order_schema",
    "schema_passes",
    "update_order_schema",
]
