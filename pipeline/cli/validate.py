"""CLI command ``order-import validate FILE``: load, map and validate; nothing is sent."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.cli.common import PATH, handle_errors

if TYPE_CHECKING:
    from pipeline.config import Settings


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
@click.option(
    "--online",
    is_flag=True,
    help="Also run the pre-flight look-ups for the valid rows (read-only; needs the key and "
    "site like run; writes preflight.csv).",
)
@click.option("--live", is_flag=True, default=None, help="Allow a LIVE Chargebee site (--online).")
@handle_errors
def validate_command(
    file: Path,
    mapping: Path | None,
    report_dir: Path | None,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
    config: Path | None,
    online: bool,
    live: bool | None,
) -> None:
    """Load, map and validate FILE; nothing is sent to Chargebee.

    Exit codes: 0 every row is valid, 1 some rows are invalid (see the summary and
    validation.csv), 2 the file, mapping or configuration is unusable. With --online, 1 also
    when pre-flight would hold rows back (see preflight.csv).
    """
    from pipeline.config import load_settings

    settings = load_settings(
        {
            "mapping_path": mapping,
            "report_dir": report_dir,
            "encoding": encoding,
            "delimiter": delimiter,
            "sheet": sheet,
            "live": live,
        },
        config_file=config,
    )
    from pipeline.prepare.findings import default_validation_dir, render_summary
    from pipeline.prepare.prepare import validate_file

    out = settings.report_dir or default_validation_dir(file)
    if online:  # before validate_file: a missing key stops here, exit 2, nothing written
        settings.check_target()
        settings.require_api_key()
    summary = validate_file(file, settings, out)
    click.echo(render_summary(summary))
    code = summary.exit_code
    if online:
        code = max(code, _online(file, settings, out / "preflight.csv"))
    sys.exit(code)


def _online(file: Path, settings: Settings, path: Path) -> int:
    """The pre-flight look-ups for the file's valid rows; prints what they found."""
    from pipeline.models import WorkItem
    from pipeline.preflight.online import check_online, write_preflight_csv
    from pipeline.prepare.prepare import prepare_rows, several_per_invoice
    from pipeline.send.verification import verified_outcome

    items = [
        WorkItem("", row.row_key, row.source_line, row.order_id, row.params, "", "pending", 0)
        for chunk in prepare_rows(file, settings)
        for row in chunk
        if row.is_valid and row.skip_reason is None
    ]
    result = check_online(
        settings,
        items,
        verify=lambda item, order: verified_outcome("", 0, item, order, "already_present"),
        several_per_invoice=several_per_invoice(settings),
    )
    write_preflight_csv(result, path)
    click.echo(result.stats.text())
    for item, outcome in result.held[:10]:
        what = outcome.error_code or outcome.resolution or outcome.state
        click.echo(f"  line {item.source_line}: {outcome.state} ({what}): {outcome.message or ''}")
    if len(result.held) > 10:
        click.echo(f"  ... {len(result.held) - 10:,} more")
    click.echo(f"  details: {path}")
    return 1 if any(o.state != "succeeded" for _, o in result.held) else 0
