"""Helpers shared by the ``cli/`` modules: error handling, path options, the run summary text."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import click

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.models import RunSummary

P = ParamSpec("P")
R = TypeVar("R")

PATH = click.Path(path_type=Path)
"""A path argument or option (existence is checked by the library, with a clear message)."""


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Run a command body; a PipelineError becomes one clear line on stderr and its exit code.

    Never a traceback for an expected problem: the message names the file, line and column
    when the error carries them.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except PipelineError as err:
            click.echo(f"order-import: error: {err}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("order-import: interrupted", err=True)
            sys.exit(130)

    return wrapper


def render_summary(summary: RunSummary) -> str:
    """A few lines a person reads at the end of a run (``run``, ``retry``, ``update``)."""
    counts = summary.counts
    what = "dry run (nothing sent)" if summary.dry_run else f"{summary.operation} run"
    lines = [
        f"Batch {summary.batch!r}: {what} finished in {summary.duration_s:.1f}s",
        "  rows: "
        + ", ".join(f"{state} {counts.get(state, 0)}" for state in counts if counts.get(state)),
    ]
    if not summary.dry_run:
        lines.append(
            f"  this run: sent {summary.sent}, imported "
            f"{summary.succeeded - summary.already_present}, already present "
            f"{summary.already_present}, failed {summary.failed}, "
            f"429s {summary.throttled}; {summary.rate_text}"
        )
    if summary.canary_stopped:
        ids = ", ".join(summary.canary_order_ids) or "none"
        lines.append(f"  canary: paused after {len(summary.canary_order_ids)} order(s): {ids}")
    lines.extend(f"  note: {note}" for note in summary.notes)
    if summary.report_dir:
        lines.append(f"  reports: {summary.report_dir}")
    if summary.exit_code == 130:
        lines.append("  interrupted: run the same command again to resume")
    for text, command in summary.next_steps:
        lines.append(f"  next: {text}: {command}" if command else f"  next: {text}")
    return "\n".join(lines)


def finish(summary: RunSummary) -> None:
    """Print the summary and exit with the run's exit code."""
    click.echo(render_summary(summary))
    sys.exit(summary.exit_code)
