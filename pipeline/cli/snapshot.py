"""CLI command ``snapshot``: the site's invoices, read-only, into a sandbox seed file."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click

from pipeline.cli.common import PATH, handle_errors


@click.command("snapshot")
@click.argument("file", type=PATH)
@click.option("--config", "config_file", type=PATH, help="TOML config file.")
@click.option("--live", is_flag=True, default=None, help="Allow a LIVE Chargebee site.")
@click.option("--quiet", "-q", is_flag=True, default=None, help="No progress.")
@handle_errors
def snapshot_command(file: Path, **options: Any) -> None:
    """Read the site's invoices (read-only) into FILE, a seed file for the sandbox."""
    from pipeline.config import load_settings

    config_file = options.pop("config_file")
    settings = load_settings(options, config_file=config_file)
    from pipeline.preflight.snapshot import snapshot_invoices

    result = snapshot_invoices(settings, file)
    click.echo(
        f"snapshot: {result.invoices:,} invoice(s) written to {result.path} "
        f"({result.requests:,} request(s))"
    )
    click.echo(
        "  next: rehearse against a sandbox that knows exactly these invoices: "
        f"order-import sandbox --invoices {shlex.quote(str(result.path))}"
    )
