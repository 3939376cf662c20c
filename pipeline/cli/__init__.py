"""The ``order-import`` command: a thin adapter over the library (parse → config → call → render).

Each command group lives in its own module (``cli/run.py``, ``cli/status.py``, ...). ``main`` is a
``LazyGroup``: it imports a command's module only when that command is invoked, and ``--help``
lists commands from the table below, so ``order-import --help`` imports nothing heavy (no pandas,
pandera, matplotlib). No SQL, no httpx and no pandas at module level in any ``cli/`` module;
a command reads its settings before it imports the library, so a bad config fails at once.
"""

from __future__ import annotations

import atexit
import gc
import importlib
from typing import NamedTuple

import click

from pipeline import __version__

# At exit, Python's last garbage collection walks every object still alive (pandas, pyarrow,
# matplotlib, a run's rows): 0.5-1 s after a run's last request on a busy machine, for memory the
# process is handing back anyway. Freezing them first leaves that walk nothing to do; atexit
# handlers (registered later, so run earlier) and module teardown still run (issue 16).
atexit.register(gc.freeze)


class LazyCommand(NamedTuple):
    """Where a command lives and the one line ``order-import --help`` shows for it."""

    module: str
    attribute: str
    short_help: str


COMMANDS: dict[str, LazyCommand] = {
    "mapping": LazyCommand(
        "pipeline.cli.mapping",
        "mapping_group",
        "Work with mapping files (source columns → import_order parameters).",
    ),
    "reconcile": LazyCommand(
        "pipeline.cli.reconcile",
        "reconcile_command",
        "Compare what Chargebee holds for --batch with the ledger; exit 0 clean, 1 findings.",
    ),
    "report": LazyCommand(
        "pipeline.cli.report",
        "report_command",
        "Rebuild report.html, failures.csv/.xlsx, validation.csv and summaries from the ledger.",
    ),
    "retry": LazyCommand(
        "pipeline.cli.run",
        "retry_command",
        "Re-send the batch's failed rows, taking fixed values from FILE (e.g. failures.csv).",
    ),
    "run": LazyCommand(
        "pipeline.cli.run",
        "run_command",
        "Validate FILE and import it as batch --batch; the same command again resumes.",
    ),
    "sandbox": LazyCommand(
        "pipeline.cli.sandbox",
        "sandbox_command",
        "Run the local Chargebee sandbox (order endpoints) until Ctrl-C.",
    ),
    "snapshot": LazyCommand(
        "pipeline.cli.snapshot",
        "snapshot_command",
        "Read the site's invoices (read-only) into FILE, a seed file for the sandbox.",
    ),
    "status": LazyCommand(
        "pipeline.cli.status",
        "status_command",
        "Show a batch's counts by state, runs and rates, from the ledger alone.",
    ),
    "update": LazyCommand(
        "pipeline.cli.update",
        "update_command",
        "Apply corrections in FILE to imported orders (POST /orders/{id}), changed fields only.",
    ),
    "validate": LazyCommand(
        "pipeline.cli.validate",
        "validate_command",
        "Load, map and validate FILE; nothing is sent to Chargebee.",
    ),
}
"""Every command by name. A test checks each ``short_help`` against the command's own help."""


class LazyGroup(click.Group):
    """A click group that imports a command's module only when the command is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Command names, sorted, without importing any command module."""
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import the module that defines ``cmd_name`` and return its command (None: unknown)."""
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        command = getattr(importlib.import_module(entry.module), entry.attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{entry.module}.{entry.attribute} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help``, from the table (no command module is imported)."""
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [
            (name, click.Command(name, help=COMMANDS[name].short_help).get_short_help_str(limit))
            for name in self.list_commands(ctx)
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="order-import")
def main() -> None:
    """Migrate historical orders into Chargebee: validate, import exactly once, report.

    The API key is read from CHARGEBEE_API_KEY or the config file (order-import.toml), never
    from a flag. Exit codes: 0 done, 1 rows invalid or failed, 2 unusable input or
    configuration (nothing sent), 3 rows in doubt, 130 interrupted (resumable).
    """
