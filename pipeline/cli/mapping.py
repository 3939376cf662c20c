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
@click.option(
    "--preset",
    help="Write the complete mapping of a platform's standard export: shopify, woocommerce, "
    "magento (docs/mapping.md).",
)
@handle_errors
def mapping_init(
    file: Path,
    out: Path,
    force: bool,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
    preset: str | None,
) -> None:
    """Write a starter mapping for FILE: a platform preset, or its headers matched to
    parameters (English, German, French, Spanish, Dutch) with dates sniffed from the data."""
    from pipeline.config import load_settings

    settings = load_settings({"encoding": encoding, "delimiter": delimiter, "sheet": sheet})
    from pipeline.prepare.prepare import write_starter_mapping

    result = write_starter_mapping(file, out, settings, overwrite=force, preset=preset)
    click.echo(
        f"Wrote {out}: {len(result.matched)} column(s) matched, "
        f"{len(result.unmatched)} left for you to map"
        + (f" ({', '.join(result.unmatched)})" if result.unmatched else "")
        + "."
    )
    if result.missing_required:
        click.echo("Still needed (required): " + ", ".join(result.missing_required))
    for note in result.notes:
        click.echo(f"Check: {note}")
    for step in result.next_steps:
        click.echo(f"Next: {step}")
