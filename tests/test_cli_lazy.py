"""The CLI is lazy: ``--help`` and ``status`` import no pandas, pandera or matplotlib.

Each check runs the real ``order-import`` group in a fresh interpreter (a subprocess) and reads
that interpreter's ``sys.modules`` after the command finished.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from pipeline.cli import COMMANDS, main

HEAVY = ("pandas", "pandera", "matplotlib", "numpy", "pyarrow", "httpx", "jinja2")
PROBE = """
import json, sys
from pipeline.cli import main
codes = []
for args in json.loads(sys.argv[1]):
    try:
        main(args, prog_name="order-import")
    except SystemExit as exit:
        codes.append(exit.code)
print("\\nPROBE " + json.dumps({
    "codes": codes,
    "heavy": sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules),
    "cli": sorted(m for m in sys.modules if m.startswith("pipeline.cli.")),
}))
"""


def probe(tmp_path: Path, *invocations: list[str]) -> tuple[dict[str, list[Any]], str]:
    """Run invocations of ``order-import`` in one fresh interpreter; (what it loaded, output)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(invocations)), json.dumps(HEAVY)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    output, _, line = done.stdout.rpartition("\nPROBE ")
    return json.loads(line), output + done.stderr


def test_help_imports_no_command_module(tmp_path):
    """``order-import --help`` lists every command with its help and imports none of them."""
    loaded, output = probe(tmp_path, ["--help"])
    assert loaded["codes"] == [0]
    assert loaded["heavy"] == []
    assert loaded["cli"] == []
    for name in COMMANDS:
        assert f"  {name} " in output
    assert "Load, map and validate FILE; nothing is sent to Chargebee." in output


def test_each_command_help_imports_nothing_heavy(tmp_path):
    """``order-import CMD --help`` for every command: its own module only, nothing heavy."""
    loaded, output = probe(tmp_path, *([name, "--help"] for name in sorted(COMMANDS)))
    assert loaded["codes"] == [0] * len(COMMANDS)
    assert loaded["heavy"] == []
    assert {m.rsplit(".", 1)[1] for m in loaded["cli"]} >= {"run", "status", "validate"}
    assert "--batch" in output


def test_status_without_a_ledger_imports_nothing_heavy_and_creates_nothing(tmp_path):
    """``status`` in a folder without a ledger: a clear exit 2, light imports, no file made."""
    loaded, output = probe(tmp_path, ["status", "--batch", "X"])
    assert loaded["codes"] == [2]
    assert loaded["heavy"] == []
    assert "order-import.sqlite" in output
    assert "Traceback" not in output
    assert list(tmp_path.iterdir()) == []


def test_status_of_a_real_batch_imports_nothing_heavy(tmp_path, monkeypatch):
    """``status`` of a planned batch (text and JSON, and an unknown batch) stays light."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHARGEBEE_BASE_URL", "http://127.0.0.1:9/api/v2")
    source = Path(__file__).resolve().parent.parent / "sample_data" / "api_columns.csv"
    planned = CliRunner().invoke(main, ["run", str(source), "--batch", "b", "--dry-run", "-q"])
    assert planned.exit_code == 0, planned.output
    loaded, output = probe(
        tmp_path,
        ["status", "--batch", "b"],
        ["status", "--batch", "b", "--json"],
        ["status", "--batch", "X"],
    )
    assert loaded["codes"] == [0, 0, 2]
    assert loaded["heavy"] == []
    assert "batch b (import)" in output
    assert "next: 60 row(s) are still pending" in output
    assert '"batch": "b"' in output
    assert "no batch named 'X'" in output


def test_the_lazy_table_matches_each_commands_own_help():
    """The short help ``--help`` shows comes from the table; it must say what the command says."""
    ctx = click.Context(main)
    assert main.list_commands(ctx) == sorted(COMMANDS)
    for name, entry in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None
        assert command.name == name
        for limit in (45, 70, 200):
            shown = click.Command(name, help=entry.short_help).get_short_help_str(limit)
            assert shown == command.get_short_help_str(limit), name


def test_unknown_command_is_a_usage_error(tmp_path):
    """A command that is not in the table: click's usage error, exit 2."""
    loaded, output = probe(tmp_path, ["import-everything"])
    assert loaded["codes"] == [2]
    assert "No such command 'import-everything'" in output


@pytest.mark.parametrize("removed", ["--operation"])
def test_update_has_no_dead_options(removed):
    """``update --operation`` is gone (orders are never created by update)."""
    command = main.get_command(click.Context(main), "update")
    assert command is not None
    assert removed not in {opt for p in command.params for opt in getattr(p, "opts", [])}
