"""CLI command ``reconcile``: compare what Chargebee holds with the ledger, then render."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from pipeline.cli.common import PATH, handle_errors


@click.command("reconcile")
@click.option("--batch", required=True, help="Batch to reconcile.")
@click.option(
    "--via",
    type=click.Choice(["auto", "export", "list"]),
    default="auto",
    show_default=True,
    help="Read Chargebee through an orders export, GET /orders, or export with list fallback.",
)
@click.option("--out", "out_dir", type=PATH, help="Where to write (default reports/<batch>/).")
@click.option("--ledger", "ledger_path", type=PATH, help="SQLite ledger file.")
@click.option("--config", "config_file", type=PATH, help="TOML config file.")
@click.option(
    "--poll-seconds",
    "export_poll_seconds",
    type=float,
    help="Seconds between export polls (at least 10 on a real Chargebee site).",
)
@click.option("--live", is_flag=True, default=None, help="Allow a LIVE Chargebee site.")
@handle_errors
def reconcile_command(batch: str, via: str, out_dir: Path | None, **options: Any) -> None:
    """Compare what Chargebee holds for --batch with the ledger; exit 0 clean, 1 findings."""
    from pipeline.config import load_settings

    config_file = options.pop("config_file")
    settings = load_settings(options, config_file=config_file)
    from pipeline.reconcile.reconcile import reconcile_batch

    result = reconcile_batch(settings, batch, via=via, out_dir=out_dir)  # type: ignore[arg-type]
    verdict = "clean" if result.clean else "FINDINGS"
    click.echo(
        f"Batch {batch!r}: reconciliation {verdict} (via {result.source}): "
        f"expected {result.expected}, matched {result.matched}, missing {result.missing}, "
        f"extra {result.extra}, duplicate {result.duplicate}, field mismatches {result.mismatched}"
    )
    for note in result.notes:
        click.echo(f"  note: {note}")
    click.echo(f"  details: {result.csv_path}")
    sys.exit(result.exit_code)
