"""CLI commands ``run`` and ``retry``: parse → settings → one library call → render."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pipeline.cli.common import PATH, finish, handle_errors

if TYPE_CHECKING:
    from pipeline.config import Settings


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by run and retry (flags override env and the config file)."""
    options = [
        click.option("--batch", required=True, help="Batch name: the unit of resume and report."),
        click.option("--config", "config_file", type=PATH, help="TOML config file."),
        click.option("--ledger", "ledger_path", type=PATH, help="SQLite ledger file."),
        click.option("--rate", "rate_per_minute", type=float, help="Requests per minute."),
        click.option("--concurrency", type=int, help="Requests in flight at once."),
        click.option("--report-dir", type=PATH, help="Where reports go (reports/<batch>/)."),
        click.option("--mapping", "mapping_path", type=PATH, help="TOML mapping file."),
        click.option("--encoding", help="Input encoding (default: detected)."),
        click.option("--delimiter", help="CSV delimiter (default: sniffed)."),
        click.option("--sheet", help="Excel sheet name or 0-based index."),
        click.option("--live", is_flag=True, default=None, help="Allow a LIVE Chargebee site."),
        click.option(
            "--send-events",
            "send_events",
            is_flag=True,
            default=False,
            help="Let Chargebee send emails/webhooks (default: all-disabled).",
        ),
        click.option("--allow-drift", is_flag=True, default=None, help="Resume a changed file."),
        click.option(
            "--preflight/--no-preflight",
            default=None,
            help="Check invoices, ids and document numbers on the site before sending "
            "(default: on; docs/preflight.md).",
        ),
        click.option("--quiet", "-q", is_flag=True, default=None, help="No progress bar."),
        click.option("--log-json", is_flag=True, default=None, help="JSON-lines log on stderr."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_settings(options: dict[str, Any]) -> Settings:
    """Settings from the command's options (the config file and env underneath)."""
    from pipeline.config import load_settings

    config_file = options.pop("config_file", None)
    send_events = options.pop("send_events", False)
    options.pop("batch", None)
    if send_events:
        options["events_disabled"] = False
    return load_settings(options, config_file=config_file)


@click.command("run")
@click.argument("file", type=PATH)
@common_options
@click.option("--dry-run", is_flag=True, help="Validate and plan; send nothing.")
@click.option("--canary", type=int, help="Send N rows, then stop for review.")
@handle_errors
def run_command(file: Path, dry_run: bool, canary: int | None, **options: Any) -> None:
    """Validate FILE and import it as batch --batch; the same command again resumes."""
    batch = options["batch"]
    settings = build_settings(options)
    from pipeline.send.runner import RunRequest, run_batch

    request = RunRequest("run", batch, source=file, dry_run=dry_run, canary=canary)
    finish(run_batch(settings, request))


@click.command("retry")
@click.argument("file", type=PATH, required=False)
@click.option(
    "--missing", is_flag=True, help="Also send again the orders the last reconcile found missing."
)
@common_options
@handle_errors
def retry_command(file: Path | None, missing: bool, **options: Any) -> None:
    """Re-send the batch's failed rows, taking fixed values from FILE (e.g. failures.csv)."""
    batch = options["batch"]
    settings = build_settings(options)
    from pipeline.send.runner import RunRequest, run_batch

    salt = ""
    if missing:
        from pipeline.reconcile.missing import reopen_missing

        reopened = reopen_missing(settings, batch)
        salt = reopened.key_salt
        click.echo(
            f"{reopened.reopened} order(s) the last reconciliation found missing: "
            "looked up first, sent again only if Chargebee still lacks them"
        )
    finish(run_batch(settings, RunRequest("retry", batch, source=file, key_salt=salt)))
