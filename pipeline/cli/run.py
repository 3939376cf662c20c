"""CLI commands ``run``, ``retry`` and ``status``: parse → settings → one library call → render."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from pipeline.cli.common import handle_errors
from pipeline.config import Settings, load_settings
from pipeline.models import RunSummary

_PATH = click.Path(path_type=Path)


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by run, retry and update (flags override env and the config file)."""
    options = [
        click.option("--batch", required=True, help="Batch name: the unit of resume and report."),
        click.option("--config", "config_file", type=_PATH, help="TOML config file."),
        click.option("--ledger", "ledger_path", type=_PATH, help="SQLite ledger file."),
        click.option("--rate", "rate_per_minute", type=float, help="Requests per minute."),
        click.option("--concurrency", type=int, help="Requests in flight at once."),
        click.option("--report-dir", type=_PATH, help="Where reports go (reports/<batch>/)."),
        click.option("--mapping", "mapping_path", type=_PATH, help="TOML mapping file."),
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
        click.option("--quiet", "-q", is_flag=True, default=None, help="No progress bar."),
        click.option("--log-json", is_flag=True, default=None, help="JSON-lines log on stderr."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_settings(options: dict[str, Any]) -> Settings:
    """Settings from the command's options (the config file and env underneath)."""
    from pipeline.update.update import refuse_create

    config_file = options.pop("config_file", None)
    refuse_create(config_file=config_file, mapping_path=options.get("mapping_path"))
    send_events = options.pop("send_events", False)
    options.pop("batch", None)
    if send_events:
        options["events_disabled"] = False
    return load_settings(options, config_file=config_file)


def render_summary(summary: RunSummary) -> str:
    """A few lines a person reads at the end of a run."""
    counts = summary.counts
    what = "dry run (nothing sent)" if summary.dry_run else f"{summary.operation} run"
    lines = [
        f"Batch {summary.batch!r}: {what} finished in {summary.duration_s:.1f}s",
        "  rows: "
        + ", ".join(f"{state} {counts.get(state, 0)}" for state in counts if counts.get(state)),
    ]
    if not summary.dry_run:
        lines.append(
            f"  this run: sent {summary.sent}, succeeded {summary.succeeded} "
            f"(already present {summary.already_present}), failed {summary.failed}, "
            f"429s {summary.throttled}, {summary.achieved_per_minute:.0f} requests/min"
        )
    lines.extend(f"  note: {note}" for note in summary.notes)
    if summary.report_dir:
        lines.append(f"  reports: {summary.report_dir}")
    done = "applied" if summary.operation == "update" else "imported"
    hints = {
        130: "interrupted: run the same command again to resume",
        3: "rows in doubt: run the same command again to reconcile them",
        1: f"some rows were not {done}: see failures.csv in the report directory",
    }
    if summary.exit_code in hints:
        lines.append(f"  {hints[summary.exit_code]}")
    return "\n".join(lines)


def _finish(summary: RunSummary) -> None:
    click.echo(render_summary(summary))
    sys.exit(summary.exit_code)


@click.command("run")
@click.argument("file", type=_PATH)
@common_options
@click.option("--dry-run", is_flag=True, help="Validate and plan; send nothing.")
@click.option("--canary", type=int, help="Send N rows, then stop for review.")
@handle_errors
def run_command(file: Path, dry_run: bool, canary: int | None, **options: Any) -> None:
    """Validate FILE and import it as batch --batch; the same command again resumes."""
    from pipeline.send.runner import RunRequest, run_batch

    batch = options["batch"]
    settings = build_settings(options)
    request = RunRequest("run", batch, source=file, dry_run=dry_run, canary=canary)
    _finish(run_batch(settings, request))


@click.command("retry")
@click.argument("file", type=_PATH, required=False)
@common_options
@handle_errors
def retry_command(file: Path | None, **options: Any) -> None:
    """Re-send the batch's failed rows, taking fixed values from FILE (e.g. failures.csv)."""
    from pipeline.send.runner import RunRequest, run_batch

    batch = options["batch"]
    settings = build_settings(options)
    _finish(run_batch(settings, RunRequest("retry", batch, source=file)))


@click.command("status")
@click.option("--batch", required=True, help="Batch name.")
@click.option("--ledger", "ledger_path", type=_PATH, help="SQLite ledger file.")
@click.option("--config", "config_file", type=_PATH, help="TOML config file.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def status_command(
    batch: str, ledger_path: Path | None, config_file: Path | None, as_json: bool
) -> None:
    """Show a batch's counts by state, runs and rates, from the ledger alone."""
    from pipeline.ledger.ledger import Ledger
    from pipeline.report.data import render_status_text, summarize

    settings = load_settings({"ledger_path": ledger_path}, config_file=config_file)
    with Ledger(settings.ledger_path) as ledger:
        summary = summarize(ledger, batch)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2, sort_keys=True, default=str))
    else:
        click.echo(render_status_text(summary))


COMMANDS: list[click.Command] = [run_command, retry_command, status_command]
