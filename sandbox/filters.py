"""List and export filters (FACTS §4, §7.1, §8): ``field[op]=value`` parsed, evaluated per order.

Operators by kind: text ``is|is_not|starts_with|is_present|in|not_in``;
enum ``is|is_not|in|not_in``; timestamp ``after|before|on|between``;
number ``is|is_not|lt|lte|gt|gte|between``; boolean ``is``.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox import errors

OPS: dict[str, frozenset[str]] = {
    "text": frozenset({"is", "is_not", "starts_with", "is_present", "in", "not_in"}),
    "enum": frozenset({"is", "is_not", "in", "not_in"}),
    "timestamp": frozenset({"after", "before", "on", "between"}),
    "number": frozenset({"is", "is_not", "lt", "lte", "gt", "gte", "between"}),
    "boolean": frozenset({"is"}),
}
"""Operators each filter kind accepts."""

_UNIX = re.compile(r"^\d{10}$")
"""Filter timestamps are Unix seconds of exactly 10 digits (the spec's ``^\\d{10}$``)."""
_NUMBER = re.compile(r"^-?\d{1,18}$")


def parse_list(param: str, raw: str) -> list[str]:
    """``["a","b"]`` (JSON), ``['a', 'b']`` (the Python SDK's repr) or ``[a,b]`` → list of text."""
    text = raw.strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise errors.wrong_value(param, 'must be a list like ["a","b"]')
    for loader in (json.loads, ast.literal_eval):
        try:
            value = loader(text)
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, list):
            return [str(v) for v in value]
    inner = text[1:-1].strip()
    return [part.strip().strip("\"'") for part in inner.split(",")] if inner else []


def _unix(param: str, raw: str) -> int:
    if not _UNIX.match(raw.strip()):
        raise errors.wrong_value(param, "must be a Unix timestamp in seconds (10 digits)")
    return int(raw)


def _member(param: str, value: str, allowed: tuple[str, ...] | None) -> str:
    if allowed is not None and value not in allowed:
        raise errors.wrong_value(param, f"invalid value {value!r}; allowed: {', '.join(allowed)}")
    return value


def _number(param: str, raw: str) -> int:
    if not _NUMBER.match(raw.strip()):
        raise errors.wrong_value(param, "must be an integer")
    return int(raw)


@dataclass(frozen=True, slots=True)
class Filter:
    """One parsed condition: ``field`` ``op`` ``value`` (value already typed)."""

    field: str
    op: str
    value: Any

    def matches(self, order: dict[str, Any]) -> bool:
        """Does ``order`` satisfy this condition? A missing field only matches negations."""
        actual = order.get(self.field)
        return _TESTS[self.op](actual, self.value)


def _between(a: Any, v: Any) -> bool:
    return a is not None and v[0] <= a <= v[1]


_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "is": lambda a, v: a == v,
    "is_not": lambda a, v: a != v,
    "starts_with": lambda a, v: isinstance(a, str) and a.startswith(v),
    "is_present": lambda a, v: (a not in (None, "")) == v,
    "in": lambda a, v: a in v,
    "not_in": lambda a, v: a not in v,
    "after": lambda a, v: a is not None and a > v,
    "before": lambda a, v: a is not None and a < v,
    "on": lambda a, v: a is not None and a // 86400 == v // 86400,
    "between": _between,
    "lt": lambda a, v: a is not None and a < v,
    "lte": lambda a, v: a is not None and a <= v,
    "gt": lambda a, v: a is not None and a > v,
    "gte": lambda a, v: a is not None and a >= v,
}


def parse_filter(
    param: str,
    field: str,
    kind: str,
    op: str,
    raw: str,
    allowed: tuple[str, ...] | None = None,
) -> Filter:
    """Type one ``field[op]=raw`` condition; ``allowed`` lists an enum field's values.

    Raises:
        SandboxError: unsupported operator or malformed value (400, ``param`` set).
    """
    if op not in OPS[kind]:
        raise errors.unknown_param(param)
    value: Any
    if op in ("in", "not_in"):
        items = parse_list(param, raw)
        if kind == "number":
            value = frozenset(_number(param, i) for i in items)
        elif allowed is None:
            value = frozenset(items)
        else:
            value = frozenset(_member(param, i, allowed) for i in items)
    elif op == "between":
        items = parse_list(param, raw)
        if len(items) != 2:
            raise errors.wrong_value(param, "between takes exactly two values [from,to]")
        conv = _unix if kind == "timestamp" else _number
        value = (conv(param, items[0]), conv(param, items[1]))
    elif op == "is_present" or kind == "boolean":
        if raw not in ("true", "false"):
            raise errors.wrong_value(param, "must be true or false")
        value = raw == "true"
    elif kind == "timestamp":
        value = _unix(param, raw)
    elif kind == "number":
        value = _number(param, raw)
    else:
        value = _member(param, raw, allowed)
    return Filter(field, op, value)
