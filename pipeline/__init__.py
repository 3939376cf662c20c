"""order-import: migrate historical orders into Chargebee through import_order.

The library is the product; ``pipeline.cli`` is a thin adapter over it. The supported API is
listed in ``__all__`` and loaded lazily, so ``order-import --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ChargebeeClient": "pipeline.api.client",
    "Ledger": "pipeline.ledger.ledger",
    "PipelineError": "pipeline.errors",
    "RunRequest": "pipeline.send.runner",
    "RunSummary": "pipeline.models",
    "Settings": "pipeline.config",
    "SourceRow": "pipeline.models",
    "load_settings": "pipeline.config",
    "prepare_rows": "pipeline.prepare.prepare",
    "reconcile_batch": "pipeline.reconcile.reconcile",
    "run_batch": "pipeline.send.runner",
    "update_batch": "pipeline.update.update",
    "validate_file": "pipeline.prepare.prepare",
    "write_reports": "pipeline.report.write",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
