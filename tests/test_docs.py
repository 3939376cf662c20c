"""The README stays true: its config example loads, and every CLI command is documented."""

from __future__ import annotations

import re
from pathlib import Path

import click

from pipeline.cli import main
from pipeline.config import load_settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_config_example_loads(tmp_path):
    """The order-import.toml shown in the README is accepted by the settings loader."""
    block = re.search(r"```toml\n(# order-import.toml\n.*?)```", README, re.S)
    assert block is not None
    path = tmp_path / "order-import.toml"
    path.write_text(block.group(1), encoding="utf-8")
    settings = load_settings(config_file=path, environ={})
    assert settings.site == "acme-test"
    assert settings.validation.document_number_prefix == "ORDER"


def test_every_command_is_in_the_readme():
    """Each `order-import <command>` the CLI offers appears in the README's command table."""
    names = main.list_commands(click.Context(main))
    assert "run" in names
    missing = [name for name in names if f"`order-import {name}" not in README]
    assert missing == []


def test_every_doc_the_readme_links_exists():
    """Links to docs/*.md in the README point at files that exist."""
    links = re.findall(r"\((docs/[a-z_]+\.md)\)", README)
    assert links
    assert [link for link in links if not (ROOT / link).is_file()] == []
