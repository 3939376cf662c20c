"""The ``order-import`` command: a thin adapter over the library (parse → config → call → render).

Each command lives in its own ``cli_<name>`` module, which exports ``COMMANDS``; this module only
assembles the group. No SQL, no httpx and no pandas here or in any ``cli_*`` module.
"""

from __future__ import annotations

import importlib

import click

from pipeline import __version__

COMMAND_MODULES = ("sandbox", "validate", "run", "report", "reconcile")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="order-import")
def main() -> None:
    """Migrate historical orders into Chargebee: validate, import exactly once, report.

    The API key is read from CHARGEBEE_API_KEY or the config file (order-import.toml), never
    from a flag. Exit codes: 0 done, 1 rows invalid or failed, 2 unusable input or
    configuration (nothing sent), 3 rows in doubt, 130 interrupted (resumable).
    """


for _name in COMMAND_MODULES:
    _module = importlib.import_module(f"pipeline.cli.{_name}")
    for _command in _module.COMMANDS:
        main.add_command(_command)
