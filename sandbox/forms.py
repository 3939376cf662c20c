"""Form-urlencoded bodies and query strings as Chargebee sends them (deepObject, column-major).

``shipping_address[city]=X`` is a sub-object field; ``order_line_items[id][0]=li1`` is column-major.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import unquote, unquote_to_bytes

_BRACKETS = re.compile(r"^([A-Za-z0-9_]+)((?:\[[^\[\]]*\])*)$")


_ESCAPES = (("%5B", "["), ("%5D", "]"), ("%22", '"'), ("%2C", ","), ("%3A", ":"), ("%20", " "))
"""Escapes replaced by plain ``str.replace`` before ``unquote`` (brackets of keys, JSON lists of
``[in]`` filters). Exact: in ``unquote`` every ``%`` followed by two hex digits is one escape,
so each occurrence of these is one; what they become is neither ``%`` nor a hex digit, so no
new escape appears; and ASCII bytes decode the same alone as within UTF-8 text."""
_UNQUOTED: dict[str, str] = {}
"""Escaped names and values → unescaped (every import repeats the same dozen keys, and most of
its escaped values: cities, names, countries); cleared when full."""
_UNQUOTED_MAX = 8192


def _unquote(text: str) -> str:
    """``unquote(text.replace("+", " "), errors="replace")``, the common escapes first by
    ``str.replace`` (``unquote`` splits and joins in Python at every ``%``), the result cached."""
    plain = _UNQUOTED.get(text)
    if plain is not None:
        return plain
    if len(_UNQUOTED) >= _UNQUOTED_MAX:
        _UNQUOTED.clear()
    plain = text.replace("+", " ") if "+" in text else text
    for escape, char in _ESCAPES:
        if escape in plain:
            plain = plain.replace(escape, char)
    if "%" in plain:
        # unquote() splits its text into ASCII runs and unquotes each to bytes; an ASCII text
        # is one run
        if plain.isascii():
            plain = unquote_to_bytes(plain).decode("utf-8", "replace")
        else:
            plain = unquote(plain, errors="replace")
    _UNQUOTED[text] = plain
    return plain


def _pairs(text: str) -> list[tuple[str, str]]:
    """``parse_qsl(text, keep_blank_values=True)``, unquoting only fields that need it."""
    pairs = []
    for field in text.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "%" in field or "+" in field:
            if "%" in name or "+" in name:
                name = _unquote(name)
            if "%" in value or "+" in value:
                value = _unquote(value)
        pairs.append((name, value))
    return pairs


def parse_form(raw: bytes) -> list[tuple[str, str]]:
    """Decode an ``application/x-www-form-urlencoded`` body into ordered (key, value) pairs.

    Invalid UTF-8 is replaced rather than refused, like a lenient web stack; blank values are kept.
    """
    return _pairs(raw.decode("utf-8", "replace")) if raw else []


def parse_query(raw: bytes) -> list[tuple[str, str]]:
    """A query string's (key, value) pairs: ``parse_qsl(raw.decode("latin-1"),
    keep_blank_values=True)``, faster (pre-flight's ``[in]`` look-ups carry 100 quoted ids)."""
    return _pairs(raw.decode("latin-1")) if raw else []


def to_dict(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Pairs → dict; a repeated key keeps its last value."""
    return dict(pairs)


_PART = re.compile(r"\[([^\[\]]*)\]")


@functools.lru_cache(maxsize=4096)
def split_key(key: str) -> tuple[str, tuple[str, ...]] | None:
    """``"a[b][0]"`` → ``("a", ("b", "0"))``; None when the key is not well-formed.

    Cached: every import carries the same dozen keys (a regex match and a findall per key were
    a tenth of the sandbox's CPU per request); the result is immutable, so sharing it is safe.
    """
    match = _BRACKETS.match(key)
    if match is None:
        return None
    parts = match.group(2)
    return match.group(1), tuple(_PART.findall(parts)) if parts else ()


def fingerprint(method: str, path: str, pairs: list[tuple[str, str]]) -> str:
    """A canonical text of a request for idempotency comparison (parameter order ignored)."""
    body = "&".join([k + "=" + v for k, v in sorted(pairs)])
    return f"{method} {path}?{body}"
