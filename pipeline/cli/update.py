"""CLI command ``update``: corrections to imported orders through ``POST /orders/{id}``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipeline.cli.common import PATH, finish, handle_errors


@click.command("update")
@click.argument("file", type=PATH)
@click.option("--batch", required=True, help="Update batch name (not the import batch's).")
@click.option("--mapping", "mapping_path", type=PATH, help="TOML mapping ([columns], [dates]).")
@click.option("--ledger", "ledger_path", type=PATH, help="SQLite ledger file.")
@click.option("--rate", "rate_per_minute", type=float, help="Requests per minute.")
@click.option("--concurrency", type=int, help="Requests in flight at once.")
@click.option("--report-dir", type=PATH, help="Where reports go (reports/<batch>/).")
@click.option("--config", "config_file", type=PATH, help="TOML config file.")
@click.option("--dry-run", is_flag=True, help="Validate and plan; send nothing.")
@click.option("--quiet", "-q", is_flag=True, default=None, help="No progress bar.")
@click.option("--log-json", is_flag=True, default=None, help="JSON-lines log on stderr.")
@click.option("--allow-drift", is_flag=True, default=None, help="Resume with a changed file.")
@click.option("--live", is_flag=True, default=None, help="Allow a LIVE Chargebee site.")
@handle_errors
def update_command(file: Path, batch: str, dry_run: bool, **options: Any) -> None:
    """Apply corrections in FILE to imported orders (POST /orders/{id}), changed fields only.

    Orders are never created here: new orders are imported with order-import run.
    """
    from pipeline.config import load_settings

    config_file = options.pop("config_file")
    settings = load_settings(options, config_file=config_file)
    from pipeline.update.update import update_batch

    finish(update_batch(settings, file, batch, dry_run=dry_run))
