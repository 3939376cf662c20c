"""Country names and short forms → ISO 3166-1 alpha-2, from pycountry's data and translations.

The lookup table is built once from pycountry: codes (alpha-2, alpha-3), English names (name,
official and common names), and the gettext translations pycountry ships (Debian iso-codes) for
the main European languages, so ``Deutschland``, ``Österreich``, ``Schweiz``, ``Nederland``,
``España``, ``Italia`` resolve without a hand-written table. The only hand-kept entries are
the international vehicle codes that are not ISO codes (``D``, ``A``, ``F``, ``UK``, …).
Conversion is one dictionary lookup per distinct value (pyarrow's dictionary encoding, then one
``take``); unknown text is left unchanged so that validation reports it (rule ``country``) with
the value.
"""

from __future__ import annotations

import gettext
from functools import cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pycountry

TEXT = pd.StringDtype("pyarrow", na_value=np.nan)

LANGUAGES = ("de", "fr", "es", "it", "nl", "pt", "pl", "sv", "da", "nb", "fi", "cs", "hu")
"""Translations read from pycountry's ``iso3166-1`` gettext catalogues."""

NON_ISO_SHORT_FORMS = {
    "uk": "GB",
    "d": "DE",
    "a": "AT",
    "f": "FR",
    "i": "IT",
    "e": "ES",
    "b": "BE",
    "l": "LU",
    "p": "PT",
    "nl": "NL",
    "ch": "CH",
    "usa": "US",
}
"""Short forms in common use that are not ISO codes (international vehicle codes, ``UK``)."""


def country_key(text: str) -> str:
    """Lookup form: case-folded, dots removed, whitespace collapsed (``U.S.A.`` → ``usa``)."""
    return " ".join(text.replace(".", "").split()).casefold()


@cache
def country_table() -> dict[str, str]:
    """Lookup form of every known name or code → alpha-2."""
    table: dict[str, str] = {}
    catalogues = []
    for lang in LANGUAGES:
        try:
            catalogues.append(
                gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lang])
            )
        except OSError:  # a language pycountry does not ship in this version
            continue
    for country in pycountry.countries:
        code = country.alpha_2
        names = {
            country.name,
            getattr(country, "official_name", None),
            getattr(country, "common_name", None),
        }
        for name in [n for n in names if n]:
            table.setdefault(country_key(name), code)
            for catalogue in catalogues:
                table.setdefault(country_key(catalogue.gettext(name)), code)
        table[country_key(country.alpha_3)] = code
    for short, code in NON_ISO_SHORT_FORMS.items():
        table[short] = code
    for country in pycountry.countries:  # an ISO alpha-2 code always means itself
        table[country_key(country.alpha_2)] = country.alpha_2
    return table


def to_alpha2(values: pd.Series) -> pd.Series:
    """Convert country text to alpha-2 where it is a known name or code; others unchanged."""
    if not values.notna().any():
        return values
    text = values if _is_arrow_text(values) else values.astype(TEXT)
    encoded = pc.dictionary_encode(pa.array(text.array))
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    table = country_table()
    converted = [table.get(country_key(v), v) for v in encoded.dictionary.to_pylist()]
    codes = pa.array(converted, type=pa.large_string()).take(encoded.indices)
    return pd.Series(codes, index=values.index, dtype=TEXT)


def _is_arrow_text(values: pd.Series) -> bool:
    return isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow"
