"""CLI command ``status``: a batch's counts, runs and rates, read from the ledger alone."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipeline.cli.common import PATH, handle_errors


@click.command("status")
@click.option("--batch", required=True, help="Batch name.")
@click.option("--ledger", "ledger_path", type=PATH, help="SQLite ledger file.")
@click.option("--config", "config_file", type=PATH, help="TOML config file.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def status_command(
    batch: str, ledger_path: Path | None, config_file: Path | None, as_json: bool
) -> None:
    """Show a batch's counts by state, runs and rates, from the ledger alone."""
    from pipeline.config import load_settings
    from pipeline.ledger.ledger import Ledger
    from pipeline.report.data import batch_next_steps, render_status_text, summarize

    settings = load_settings({"ledger_path": ledger_path}, config_file=config_file)
    with Ledger.open_existing(settings.ledger_path) as ledger:
        # The text shows neither warnings by rule nor currency totals: skip their full scans.
        summary = summarize(ledger, batch, full=as_json)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2, sort_keys=True, default=str))
    else:
        steps = batch_next_steps(summary, settings)
        click.echo(render_status_text(summary, steps))
