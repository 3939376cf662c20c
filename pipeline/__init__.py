"""order-import: migrate historical orders into Chargebee through import_order.

The library is the product; ``pipeline.cli`` is a thin adapter over it.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
