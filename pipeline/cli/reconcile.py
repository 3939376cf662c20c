"""CLI commands ``reconcile`` and ``update``: parse → settings → one library call → render."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from pipeline.cli.common import handle_errors
from pipeline.config import load_settings

_PATH = click.Path(path_type=Path)


@click.command("reconcile")
@click.option("--batch", required=True, help="Batch to reconcile.")
@click.option(
    "--via",
    type=click.Choice(["auto", "export", "list"]),
    default="auto",
    show_default=True,
    help="Read Chargebee through an orders export, GET /orders, or export with list fallback.",
)
@click.option("--out", "out_dir", type=_PATH, help="Where to write (default reports/<batch>/).")
@click.option("--ledger", "ledger_path", type=_PATH, help="SQLite ledger file.")
@click.option("--config", "config_file", type=_PATH, help="TOML config file.")
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
    from pipeline.reconcile.reconcile import reconcile_batch
    from pipeline.update.update import refuse_create

    config_file = options.pop("config_file")
    refuse_create(config_file=config_file)
    settings = load_settings(options, config_file=config_file)
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


@click.command("update")
@click.argument("file", type=_PATH)
@click.option("--batch", required=True, help="Update batch name (not the import batch's).")
@click.option("--mapping", "mapping_path", type=_PATH, help="TOML mapping ([columns], [dates]).")
@click.option("--ledger", "ledger_path", type=_PATH, help="SQLite ledger file.")
@click.option("--rate", "rate_per_minute", type=float, help="Requests per minute.")
@click.option("--concurrency", type=int, help="Requests in flight at once.")
@click.option("--report-dir", type=_PATH, help="Where reports go (reports/<batch>/).")
@click.option("--config", "config_file", type=_PATH, help="TOML config file.")
@click.option("--dry-run", is_flag=True, help="Validate and plan; send nothing.")
@click.option("--quiet", "-q", is_flag=True, default=None, help="No progress bar.")
@click.option("--log-json", is_flag=True, default=None, help="JSON-lines log on stderr.")
@click.option("--allow-drift", is_flag=True, default=None, help="Resume with a changed file.")
@click.option("--live", is_flag=True, default=None, help="Allow a LIVE Chargebee site.")
@click.option(
    "--operation",
    default="update",
    show_default=True,
    help="Only 'update' (POST /orders/{id}); 'create' is deprecated and refused.",
)
@handle_errors
def update_command(file: Path, batch: str, dry_run: bool, operation: str, **options: Any) -> None:
    """Apply corrections in FILE to imported orders (POST /orders/{id}), changed fields only."""
    from pipeline.cli.run import render_summary
    from pipeline.errors import ConfigError
    from pipeline.update.update import refuse_create, update_batch

    config_file = options.pop("config_file")
    refuse_create(operation, config_file=config_file, mapping_path=options.get("mapping_path"))
    if operation != "update":
        raise ConfigError(
            f"--operation {operation!r}: update only corrects orders",
            hint="import with `order-import run FILE --batch B`",
        )
    settings = load_settings(options, config_file=config_file)
    summary = update_batch(settings, file, batch, dry_run=dry_run)
    click.echo(render_summary(summary))
    sys.exit(summary.exit_code)


COMMANDS: list[click.Command] = [reconcile_command, update_command]
