"""Hostile mapping files through the real CLI: exit 2, the mapping file and key named, no traceback.

The corpus is ``tests/hostile/mapping/cases.py``; ``mapping init --preset`` with a preset that
does not exist is here too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile.mapping.cases import CASES
from tests.test_cli_validate import _in_tmp_dir, _run  # noqa: F401  (an autouse fixture)

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "legacy_orders.csv"


@pytest.mark.parametrize(("name", "content", "needle"), CASES, ids=[c[0] for c in CASES])
def test_hostile_mapping_exits_2_naming_the_key(
    tmp_path: Path, name: str, content: bytes, needle: str
) -> None:
    """Each broken mapping stops validate before any row is judged, naming file and key."""
    mapping = tmp_path / f"{name}.toml"
    mapping.write_bytes(content)
    code, out = _run("validate", str(SAMPLE), "--mapping", str(mapping))
    assert code == 2, out
    assert "Traceback" not in out
    assert str(mapping) in out
    assert needle in out, out


def test_the_corpus_base_mapping_is_valid() -> None:
    """Without its one bad line, every case's mapping validates the sample file (exit 0)."""
    base = Path(__file__).resolve().parent.parent / "sample_data" / "legacy_orders.mapping.toml"
    code, out = _run("validate", str(SAMPLE), "--mapping", str(base))
    assert code == 0, out


def test_unknown_preset_exits_2_listing_the_presets(tmp_path: Path) -> None:
    """A preset name that does not exist is refused before the file is read."""
    code, out = _run(
        "mapping", "init", str(SAMPLE), "--preset", "shopfiy", "--out", str(tmp_path / "m.toml")
    )
    assert code == 2
    assert "no preset 'shopfiy'; the presets are: shopify, woocommerce, magento" in out
    assert not (tmp_path / "m.toml").exists()
