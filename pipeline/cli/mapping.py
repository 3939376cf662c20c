"""CLI group ``order-import mapping`` and its ``init`` command (a starter mapping file)."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.common import PATH, handle_errors


@click.group("mapping")
def mapping_group() -> None:
    """Work with mapping files (source columns → import_order parameters)."""


@mapping_group.command("init")
@click.argument("file", type=PATH)
@click.option(
    "--out",
    type=PATH,
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
    from pipeline.config import load_settings

    settings = load_settings({"encoding": encoding, "delimiter": delimiter, "sheet": sheet})
    from pipeline.prepare.prepare import write_starter_mapping

    result = write_starter_mapping(file, out, settings, overwrite=force)
    click.echo(
        f"Wrote {out}: {len(result.matched)} column(s) matched, "
        f"{len(result.unmatched)} left for you to map"
        + (f" ({', '.join(result.unmatched)})" if result.unmatched else "")
        + "."
    )
    if result.missing_required:
        click.echo("Still needed (required): " + ", ".join(result.missing_required))
