"""CLI: ``order-import validate FILE`` and ``order-import mapping init FILE`` (thin adapters)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pipeline.cli.common import handle_errors
from pipeline.config import load_settings
from pipeline.prepare.findings import render_summary
from pipeline.prepare.prepare import validate_file, write_starter_mapping


@click.command("validate")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--mapping", "mapping", type=click.Path(path_type=Path), help="TOML mapping file.")
@click.option(
    "--report-dir",
    type=click.Path(path_type=Path),
    help="Write validation.csv here (every finding, with line and column).",
)
@click.option("--encoding", help="Input encoding (default: detected; e.g. cp1252, utf-16).")
@click.option("--delimiter", help="CSV delimiter (default: sniffed among , ; TAB |).")
@click.option("--sheet", help="Worksheet name or 0-based index (default: the first sheet).")
@click.option("--config", "config", type=click.Path(path_type=Path), help="Config file (TOML).")
@handle_errors
def validate(
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
    summary = validate_file(file, settings, settings.report_dir)
    click.echo(render_summary(summary))
    sys.exit(summary.exit_code)


@click.group("mapping")
def mapping_group() -> None:
    """Work with mapping files (source columns → import_order parameters)."""


@mapping_group.command("init")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("mapping.toml"),
    show_default=True,
    help="Where to write the starter mapping.",
)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@click.option("--encoding", help="Input encoding (default: detected).")
@click.option("--delimiter", help="CSV delimiter (default: sniffed).")
@click.option("--sheet", help="Worksheet name or 0-based index.")
@handle_errors
def mapping_init(
    file: Path,
    out: Path,
    force: bool,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
) -> None:
    """Write a starter mapping for FILE by matching its headers to parameter names."""
    settings = load_settings({"encoding": encoding, "delimiter": delimiter, "sheet": sheet})
    result = write_starter_mapping(file, out, settings, overwrite=force)
    click.echo(
        f"Wrote {out}: {len(result.matched)} column(s) matched, "
        f"{len(result.unmatched)} left for you to map"
        + (f" ({', '.join(result.unmatched)})" if result.unmatched else "")
        + "."
    )
    if result.missing_required:
        click.echo("Still needed (required): " + ", ".join(result.missing_required))


COMMANDS: list[click.Command] = [validate, mapping_group]
