"""Nested API params -> ``application/x-www-form-urlencoded`` fields, as Chargebee's SDK sends them.

Pure functions, no I/O. ``to_form`` is a faithful port of chargebee-python's ``util.serialize``
(after its ``lowercase_keys``), pinned by a property test against the SDK itself; ``to_query``
encodes list/export filters (``status[is]=queued``, ``id[in]=["a","b"]``; FACTS §4).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from typing import Any
from urllib.parse import quote_plus

__all__ = ["form_body", "form_value", "to_form", "to_query"]

Fields = list[tuple[str, str]]

_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")
"""Text ``quote_plus`` leaves as it is (its always-safe set; ``safe=""`` as ``urlencode``)."""
NAME_CACHE = 4096
"""Field names whose encoded form is kept (the same few dozen names recur on every row)."""
_NAMES: dict[str, str] = {}
_ESCAPES = {
    code: "+" if code == 0x20 else f"%{code:02X}"
    for code in range(128)
    if not _UNRESERVED.fullmatch(chr(code))
}
"""``quote_plus`` of each ASCII character it escapes, for ``str.translate``: an ASCII value is
escaped in one C call instead of ``quote_plus``'s encode, per-byte loop and join."""
_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})
"""Exact types that are neither a mapping nor a list: the common case, checked first (an
``isinstance`` against the ``Mapping`` ABC is slow, and it ran for every value of every row)."""

_LIST_OPERATORS = frozenset({"in", "not_in", "between"})
"""Filter operators whose list value is sent as one bracketed string, not as indexed fields."""


def form_value(value: Any) -> str:
    """One scalar as the SDK puts it on the wire: bools ``true``/``false``, None ``""``, else str.

    Enums become ``str(member)`` exactly as the SDK does (its ``util.serialize``).
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def form_body(fields: Iterable[tuple[str, str]]) -> bytes:
    """The ``application/x-www-form-urlencoded`` body of ``fields``: exactly the bytes of
    ``urllib.parse.urlencode(list(fields)).encode()`` (``quote_plus``, UTF-8), with less work:
    text that needs no escaping is used as it is, and field names are encoded once per name.
    """
    names = _NAMES
    unreserved = _UNRESERVED.fullmatch
    escapes = _ESCAPES
    parts = []
    for name, value in fields:
        encoded = names.get(name)
        if encoded is None:
            encoded = name if unreserved(name) else quote_plus(name)
            if len(names) < NAME_CACHE:
                names[name] = encoded
        if not unreserved(value):
            value = value.translate(escapes) if value.isascii() else quote_plus(value)
        parts.append(f"{encoded}={value}")
    return "&".join(parts).encode("ascii")


def to_form(params: Mapping[str, Any]) -> Fields:
    """Encode nested params as form fields, byte-for-byte like chargebee-python 3.x.

    * sub-objects use deepObject keys: ``{"shipping_address": {"city": "X"}}`` ->
      ``shipping_address[city]=X``;
    * lists of sub-objects are column-major: ``order_line_items[id][0]``,
      ``order_line_items[status][0]``, ``order_line_items[id][1]`` ...;
    * lists of scalars are indexed: ``tags[0]``;
    * ``in``/``not_in``/``between`` lists become one Python-repr string (SDK quirk);
    * keys are lower-cased except ``cf_*`` custom fields (SDK ``lowercase_keys``);
    * a key produced twice keeps its first position and its last value (SDK dict semantics).

    Args:
        params: the operation's parameters; values are scalars, mappings or lists.

    Returns:
        ``(name, value)`` pairs in the SDK's order, ready for ``urllib.parse.urlencode``.

    Raises:
        TypeError: a bare scalar appears where the SDK needs a mapping or list.
    """
    out = _plain_form(params)
    if out is None:
        out = {}
        _serialize(_lowercase_keys(params), None, None, out, python_repr=True)
    return list(out.items())


def _plain_form(params: Mapping[str, Any]) -> dict[str, str] | None:
    """``to_form`` for the usual row, or None when it is not one: a dict whose keys are
    already in the SDK's case (lower, or ``cf_*``) and whose values are scalars or dicts of
    such scalars. Then lower-casing changes nothing and no key can collide, so writing the
    fields in order gives the generic path's output without its copies and ABC checks."""
    if type(params) is not dict:
        return None
    out: dict[str, str] = {}
    for name, value in params.items():
        if type(name) is not str or (name != name.lower() and not name.startswith("cf_")):
            return None
        kind = type(value)
        if kind is str:
            out[name] = value
        elif kind in _SCALAR_TYPES:
            out[name] = form_value(value)
        elif kind is dict:
            for inner, item in value.items():
                if type(inner) is not str or type(item) not in _SCALAR_TYPES:
                    return None
                if inner != inner.lower() and not inner.startswith("cf_"):
                    return None
                out[f"{name}[{inner}]"] = item if type(item) is str else form_value(item)
        else:
            return None
    return out


def to_query(filters: Mapping[str, Any]) -> Fields:
    """Encode list/export filters: ``{"status": {"is": "queued"}}`` -> ``status[is]=queued``.

    ``in``/``not_in``/``between`` lists are sent as a JSON array (``id[in]=["a","b"]``), the form
    the API spec documents (pattern ``^\\[(.*)(,.*)*\\]$``); everything else is encoded like
    ``to_form``. Keys already written as ``status[is]`` pass through unchanged.

    Args:
        filters: filter operators and plain parameters (``limit``, ``offset``, ``sort_by``...).

    Returns:
        ``(name, value)`` pairs for a query string or a form body.
    """
    out: dict[str, str] = {}
    _serialize(_lowercase_keys(filters), None, None, out, python_repr=False)
    return list(out.items())


def _lowercase_keys(data: Any) -> Any:
    if type(data) in _SCALAR_TYPES:
        return data
    if isinstance(data, Mapping):
        return {
            (k if k.startswith("cf_") else k.lower()): _lowercase_keys(v) for k, v in data.items()
        }
    if isinstance(data, list):
        return [_lowercase_keys(item) for item in data]
    return data


def _key(prefix: str | None, name: str, idx: int | None) -> str:
    base = f"{prefix}[{name}]" if prefix is not None else name
    return f"{base}[{idx}]" if idx is not None else base


def _operator_list(values: Sequence[Any], *, python_repr: bool) -> str:
    if python_repr:
        return str([str(v) for v in values])
    return json.dumps(
        [v if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v) for v in values],
        separators=(",", ":"),
    )


def _serialize(
    value: Any, prefix: str | None, idx: int | None, out: dict[str, str], *, python_repr: bool
) -> None:
    # Mirrors chargebee/util.py::serialize, including its quirk that an element's index is
    # dropped for containers nested inside a list element.
    if isinstance(value, Mapping):
        for k, v in value.items():
            if type(v) in _SCALAR_TYPES:
                out[_key(prefix, k, idx)] = form_value(v)
            elif k in _LIST_OPERATORS and isinstance(v, list):
                out[_key(prefix, k, idx)] = _operator_list(v, python_repr=python_repr)
            elif isinstance(v, (Mapping, list, tuple)):
                child = f"{prefix}[{k}]" if prefix is not None else k
                _serialize(v, child, None, out, python_repr=python_repr)
            else:
                out[_key(prefix, k, idx)] = form_value(str(v) if isinstance(v, Enum) else v)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _serialize(v, prefix, i, out, python_repr=python_repr)
    elif prefix is not None and idx is not None:
        out[f"{prefix}[{idx}]"] = form_value(value)
    else:
        raise TypeError("only mappings or lists are allowed as a value here")
