"""CLI command ``order-import validate FILE``: load, map and validate; nothing is sent."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pipeline.cli.common import PATH, handle_errors


@click.command("validate")
@click.argument("file", type=PATH)
@click.option("--mapping", "mapping", type=PATH, help="TOML mapping file.")
@click.option(
    "--report-dir",
    type=PATH,
    help="Write validation.csv here (default: reports/validate-<file name>/).",
)
@click.option("--encoding", help="Input encoding (default: detected; e.g. cp1252, utf-16).")
@click.option("--delimiter", help="CSV delimiter (default: sniffed among , ; TAB |).")
@click.option("--sheet", help="Worksheet name or 0-based index (default: the first sheet).")
@click.option("--config", "config", type=PATH, help="Config file (TOML).")
@handle_errors
def validate_command(
    file: Path,
    mapping: Path | None,
    report_dir: Path | None,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
    config: Path | None,
) -> None:
    """Load, map and validate FILE; nothing is sent to Chargebee.

    Exit codes: 0 every row is valid, 1 some rows are invalid (see the summary and
    validation.csv), 2 the file, mapping or configuration is unusable.
    """
    from pipeline.config import load_settings

    settings = load_settings(
        {
            "mapping_path": mapping,
            "report_dir": report_dir,
            "encoding": encoding,
            "delimiter": delimiter,
            "sheet": sheet,
        },
        config_file=config,
    )
    from pipeline.prepare.findings import default_validation_dir, render_summary
    from pipeline.prepare.prepare import validate_file

    summary = validate_file(file, settings, settings.report_dir or default_validation_dir(file))
    click.echo(render_summary(summary))
    sys.exit(summary.exit_code)
