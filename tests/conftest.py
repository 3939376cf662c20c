"""Shared fixtures. The live sandbox fixture lives in ``tests/sandbox_server.py``."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Run anyio tests on asyncio only (the tool's runtime)."""
    return "asyncio"
