"""Cell safety for files people open in spreadsheets: neutralise formulas, and undo it on re-read.

Pure functions; imports nothing from the package. Reports call ``safe_cell`` on every text cell
they write to CSV/XLSX; the loader calls ``unneutralise_cell`` on cells of the tool's own
failures files (those carrying an ``oi:row_key`` column), so the fix-and-resubmit loop sends the
user's real value (``+44 20 …`` phone numbers) and not the apostrophe we added.
"""

from __future__ import annotations

import re

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def safe_cell(value: object) -> object:
    """Return ``value`` with a leading apostrophe when a spreadsheet would run it as a formula.

    A value that itself starts with an apostrophe gets one more, so ``unneutralise_cell`` can
    tell the two apart and every text round-trips intact. Non-strings and plain numbers
    (``-12.50``) are returned unchanged.
    """
    if not isinstance(value, str) or not value.startswith((*FORMULA_TRIGGERS, "'")):
        return value
    if _PLAIN_NUMBER.match(value):
        return value
    return "'" + value


def unneutralise_cell(value: str) -> str:
    """Undo ``safe_cell``: strip the one apostrophe it added (``unneutralise_cell(safe_cell(s))
    == s`` for every text)."""
    if len(value) > 1 and value[0] == "'" and value[1:].startswith((*FORMULA_TRIGGERS, "'")):
        return value[1:]
    return value
