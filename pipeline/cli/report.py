"""CLI command ``order-import report``: rebuild a batch's reports from the ledger alone."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.common import PATH, handle_errors
from pipeline.errors import ConfigError


@click.command("report")
@click.option("--batch", required=True, help="The batch to report on.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for the report files (default: the configured report dir or reports/<batch>/).",
)
@click.option(
    "--ledger",
    "ledger_path",
    type=PATH,
    default=None,
    help="Ledger file (default: order-import.sqlite).",
)
@click.option("--config", "config_file", type=PATH, default=None, help="Config file (TOML).")
@handle_errors
def report_command(
    batch: str, out_dir: Path | None, ledger_path: Path | None, config_file: Path | None
) -> None:
    """Rebuild report.html, failures.csv/.xlsx, validation.csv and summaries from the ledger."""
    from pipeline.config import load_settings

    settings = load_settings({"ledger_path": ledger_path}, config_file=config_file)
    from pipeline.ledger.ledger import Ledger
    from pipeline.report.data import default_report_dir
    from pipeline.report.write import write_reports

    with Ledger.open_existing(settings.ledger_path) as ledger:
        if ledger.get_batch(batch) is None:
            known = ", ".join(b.name for b in ledger.batches()[:10]) or "none"
            raise ConfigError(
                f"{settings.ledger_path}: no batch named {batch!r} (batches: {known})"
            )
        target = out_dir or default_report_dir(settings, batch)
        paths = write_reports(ledger, batch, target, settings=settings)
    s = paths.summary
    click.echo(
        f"{batch}: {s.rows_read:,} rows, {s.succeeded:,} succeeded, {s.failed:,} failed, "
        f"{s.invalid:,} invalid, {s.in_doubt:,} in doubt"
    )
    click.echo(f"reports written to {paths.out_dir}/ (report.html, failures.csv, ...)")
