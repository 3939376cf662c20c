"""Param-name helpers shared by the send path and reconciliation: nested ↔ dotted names.

A leaf: imports nothing from the package. ``shipping_address[city]`` in the API is
``shipping_address.city`` in the ledger, reports and comparisons.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ADDRESS_KINDS = ("shipping_address", "billing_address")
"""The nested address objects of an order."""


def flatten(params: Mapping[str, Any]) -> dict[str, Any]:
    """Nested params → dotted names (``shipping_address.city``); lists are left as they are."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, Mapping):
            for sub, inner in value.items():
                out[f"{name}.{sub}"] = inner
        else:
            out[name] = value
    return out
