"""Form-urlencoded bodies and query strings as Chargebee sends them (deepObject, column-major).

``shipping_address[city]=X`` is a sub-object field; ``order_line_items[id][0]=li1`` is column-major.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import unquote

_BRACKETS = re.compile(r"^([A-Za-z0-9_]+)((?:\[[^\[\]]*\])*)$")


def parse_form(raw: bytes) -> list[tuple[str, str]]:
    """Decode an ``application/x-www-form-urlencoded`` body into ordered (key, value) pairs.

    Invalid UTF-8 is replaced rather than refused, like a lenient web stack; blank values are kept.
    """
    if not raw:
        return []
    # What parse_qsl(text, keep_blank_values=True) gives, without its per-field unquoting
    # work for the (usual) fields that hold no "%" nor "+".
    pairs = []
    for field in raw.decode("utf-8", "replace").split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "%" in name or "+" in name:
            name = unquote(name.replace("+", " "), errors="replace")
        if "%" in value or "+" in value:
            value = unquote(value.replace("+", " "), errors="replace")
        pairs.append((name, value))
    return pairs


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
    body = "&".join(f"{k}={v}" for k, v in sorted(pairs))
    return f"{method} {path}?{body}"
