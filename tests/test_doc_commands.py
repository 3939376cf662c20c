"""Every command the docs print is run exactly as printed, run by a named test, or excluded
for a stated reason; a command in none of the tables fails with its file and line named.

What counts as a printed command is in ``tests/doc_commands.py`` (and CONTRIBUTING.md). A command
in ``RUNS`` runs as ``bash -c "<the command>"`` (the printed line, trailing comment included) in
a prepared folder, the way a person who followed the docs' set-up would run it there:

* ``.venv/bin`` first on ``PATH`` (``source .venv/bin/activate``), ``CHARGEBEE_API_KEY`` the
  sandbox's test key and ``CHARGEBEE_BASE_URL`` a sandbox started for the folder (README: "point
  ``CHARGEBEE_BASE_URL`` at it"); an ``order-import.toml`` in the folder raising
  ``rate_per_minute`` to 60,000 (the sandbox's limits are off; a doc's site has its own);
* the checkout's ``.venv``, ``Makefile``, ``pyproject.toml`` and packages linked in (``make``,
  ``.venv/bin/…`` and ``python -m tests…`` commands are run from a checkout) and a copy of
  ``sample_data/`` (``make demo`` and ``python -m sample_data.generate`` write there);
* the files the docs name: ``legacy.csv`` (``sample_data/legacy_orders.csv``, 6 rows),
  ``orders.csv`` (``sample_data/api_columns.csv``, 5 rows), ``orders_export_1.csv`` (a Shopify
  export), ``auftraege.csv`` (the German ERP export of docs/mapping.md), ``invoices.csv`` (the
  seed format of docs/sandbox.md).

``export``/``source`` lines of a page stay in force for the page's later commands in the same
folder (one shell session per folder). The exit code is checked against ``Run.exit`` (what the
doc says: 0, or a documented 1/2), no output may hold a traceback, and the files the doc says a
command writes must be there (``Run.writes``, ``Run.reproduces``). A sandbox command
(``Run.server``) runs until it says where it listens and answers there, then gets Ctrl-C.

One test per folder (a folder's commands from every doc, in the docs' order, share its sandbox and
files). The ``quick``, ``servers`` and ``generate`` folders (make, sandboxes, generators: about
40 s on 2 workers) run in every suite; the folders whose commands import orders (a CLI
start takes seconds on 2 shared cores; ``make demo`` a minute or two) are drills (``-m drill``).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox.server import SandboxServer
from tests import doc_commands
from tests.doc_commands import DocCommand
from tests.exports import write_german_erp, write_shopify
from tests.support import cli_env, wait_until_answering

ROOT = doc_commands.ROOT
TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Run:
    """How a printed command is run: as printed, or with its placeholders filled in."""

    exit: int = 0
    """The exit code the doc gives it (0 unless it documents 1 or 2)."""
    run: str | None = None
    """The command with its placeholders (FILE, B, ``[--opt X]``) filled in; None: as printed."""
    folder: str = "work"
    """Where it runs: each folder starts with the prepared files and its ``FOLDERS`` set-up;
    a folder's commands, from every doc, run in the docs' order in one test."""
    server: bool = False
    """A sandbox: started, asked ``/__sandbox/config``, stopped with Ctrl-C."""
    timeout: float = TIMEOUT_S
    """Seconds it may take (bounded like every subprocess of the suite)."""
    writes: tuple[str, ...] = ()
    """Paths (in the folder) the doc says it writes: they must exist afterwards."""
    reproduces: tuple[str, ...] = ()
    """Files it writes that must be byte for byte the checkout's (seeded generators)."""


@dataclass(frozen=True)
class Covered:
    """A command another test runs exactly as printed."""

    test: str
    """The test file (from the repository root)."""
    needle: str
    """What that file contains: the command itself (placeholders filled in), or the heading of
    the doc section whose shell block it reads and runs line by line."""
    section_of: str | None = None
    """With a heading as needle: the doc holding that section (the command must be in its block)."""


def sandbox_port0(command: str) -> Run:
    """A sandbox command printed with the default port 8080: run with ``--port 0`` added (a
    fixed port may be held by another test or person on the machine)."""
    return Run(run=f"{command} --port 0", server=True, folder=SERVERS)


SAMPLES = tuple(
    f"sample_data/{name}"
    for name in ("legacy_orders.csv", "legacy_orders_with_errors.csv", "api_columns.csv")
)
"""The seeded sample files ``python -m sample_data.generate`` writes (the .xlsx it writes
differs byte for byte from the committed one, so it is not compared)."""
EXPORTS = (
    "shopify_orders.csv",
    "woocommerce_orders.xlsx",
    "magento_orders.csv",
    "erp_auftraege.csv",
)
QUICK = "quick"
"""The folder of the commands that take a few seconds (no import): not a drill."""
TABLE = "table"
"""The folder of README's command table: a batch imported with a mapping (see FOLDERS)."""
SERVERS = "servers"
"""The folder of the sandbox commands (seconds each): not a drill."""
BENCH = "a benchmark: minutes of full load on purpose, figures for bench/results.md; not a test"
SUITE = "runs the whole test suite (25+ minutes), this test included; CI (.ci/run) runs make test"

RUNS: dict[str, Run] = {
    # -- README.md --
    "make help": Run(folder=QUICK),
    "make install": Run(folder=QUICK),
    "make install && source .venv/bin/activate": Run(),
    "make demo": Run(
        folder="demo",
        writes=(".demo/reports/demo/report.html", ".demo/reports/demo-errors/failures.csv"),
    ),
    "export CHARGEBEE_SITE=acme-test": Run(),
    "export CHARGEBEE_API_KEY=...": Run(run="export CHARGEBEE_API_KEY=test_sandbox_key"),
    "order-import mapping init legacy.csv --out mapping.toml": Run(),
    "order-import validate legacy.csv --mapping mapping.toml": Run(),
    "order-import run legacy.csv --batch 2019-orders --mapping mapping.toml --canary 3": Run(),
    "order-import run legacy.csv --batch 2019-orders --mapping mapping.toml": Run(),
    "order-import status --batch 2019-orders": Run(),
    "order-import reconcile --batch 2019-orders": Run(),
    "order-import validate FILE [--mapping M] [--report-dir D] [--online]": Run(
        run="order-import validate legacy.csv --mapping mapping.toml --report-dir checked --online",
        folder=TABLE,
    ),
    "order-import mapping init FILE [--out M] [--preset P]": Run(
        run="order-import mapping init orders_export_1.csv --out shop.toml --preset shopify",
        folder=TABLE,
    ),
    "order-import run FILE --batch B [...]": Run(
        run="order-import run legacy.csv --batch 2019-orders --mapping mapping.toml --quiet",
        folder=TABLE,
    ),
    "order-import retry --batch B [FILE] [--missing]": Run(
        run="order-import retry --batch 2019-orders", folder=TABLE
    ),  # --missing needs a reconcile first (exit 2 says so): test_fix_loop runs that order
    "order-import status --batch B [--json]": Run(
        run="order-import status --batch b --json", folder="batch"
    ),
    "order-import report --batch B --out D": Run(
        run="order-import report --batch 2019-orders --out rebuilt", folder=TABLE
    ),
    "order-import reconcile --batch B": Run(
        run="order-import reconcile --batch 2019-orders", folder=TABLE
    ),
    "order-import update FILE --batch B [--mapping M]": Run(
        run="order-import update legacy.csv --batch 2019-fixes --mapping mapping.toml",
        folder=TABLE,
    ),
    "order-import snapshot FILE [--live]": Run(
        run="order-import snapshot invoices.csv", folder=TABLE
    ),
    "order-import sandbox --invoices FILE": Run(
        run="order-import sandbox --invoices invoices.csv --port 0", server=True, folder=SERVERS
    ),
    "order-import sandbox [...]": sandbox_port0("order-import sandbox"),
    "order-import mapping init FILE --preset shopify": Run(
        run="order-import mapping init orders_export_1.csv --preset shopify", folder="shopify"
    ),
    "order-import retry --batch B reports/B/failures.csv": Run(
        exit=1, run="order-import retry --batch b reports/b/failures.csv", folder="failed"
    ),  # the failed row is sent back unfixed: it fails again (exit 1)
    "order-import sandbox --invoices invoices.csv": sandbox_port0(
        "order-import sandbox --invoices invoices.csv"
    ),
    # -- docs/architecture.md, docs/ledger.md --
    "order-import snapshot FILE": Run(run="order-import snapshot invoices.csv"),
    "order-import run FILE --batch NEW": Run(run="order-import run orders.csv --batch new"),
    # -- docs/drills.md --
    # /tmp/hostile is shared by every checkout on the machine (two suites at once would race):
    # the same command into the folder's own hostile/; generating twice into one folder works.
    "python -m tests.hostile.generate /tmp/hostile": Run(
        run="python -m tests.hostile.generate hostile", folder=QUICK, writes=("hostile",)
    ),
    # -- docs/mapping.md --
    "order-import validate FILE [--mapping M] [--report-dir D] [--encoding E] [--delimiter D]"
    " [--sheet S] [--config C]": Run(
        run="order-import validate legacy.csv --mapping sample_data/legacy_orders.mapping.toml"
        " --report-dir checked --encoding utf-8 --delimiter , --config order-import.toml"
    ),
    "order-import mapping init FILE [--out mapping.toml] [--force]"
    " [--preset shopify|woocommerce|magento]": Run(
        run="order-import mapping init orders_export_1.csv --out mapping.toml --force"
        " --preset shopify",
        folder="preset",
    ),
    "order-import mapping init orders_export_1.csv --preset shopify": Run(
        folder="shop", writes=("mapping.toml",)
    ),
    "order-import validate FILE": Run(run="order-import validate orders.csv", folder="api"),
    "order-import mapping init FILE": Run(
        run="order-import mapping init legacy.csv", folder="mapping"
    ),
    "order-import validate FILE --mapping mapping.toml": Run(
        run="order-import validate legacy.csv --mapping mapping.toml", folder="mapping"
    ),
    "order-import run FILE --batch B --mapping mapping.toml": Run(
        run="order-import run legacy.csv --batch b --mapping mapping.toml", folder="mapping"
    ),
    "order-import mapping init FILE --preset NAME": Run(
        run="order-import mapping init orders_export_1.csv --preset shopify", folder="preset-name"
    ),
    "order-import mapping init auftraege.csv": Run(folder="erp", writes=("mapping.toml",)),
    "order-import mapping init FILE --out mapping.toml": Run(
        run="order-import mapping init legacy.csv --out mapping.toml", folder="starter"
    ),
    "python -m sample_data.generate": Run(folder="generate", reproduces=SAMPLES),
    "python -m tests.exports DIR --orders N": Run(
        run="python -m tests.exports exports --orders 3",
        folder=QUICK,
        writes=tuple(f"exports/{name}" for name in EXPORTS),
    ),
    # -- docs/preflight.md --
    "order-import retry --batch B": Run(run="order-import retry --batch b", folder="batch"),
    # -- docs/reconcile.md --
    "order-import reconcile --batch B [--via auto|export|list] [--out DIR] [--ledger L]"
    " [--config C] [--poll-seconds S] [--live]": Run(
        run="order-import reconcile --batch b --via list --out checked --ledger order-import.sqlite"
        " --config order-import.toml --poll-seconds 0.5",
        folder="batch",
    ),
    # -- docs/reports.md --
    "order-import report --batch B --out DIR": Run(
        run="order-import report --batch b --out rebuilt",
        folder="batch",
        writes=("rebuilt/report.html", "rebuilt/failures.csv"),
    ),
    "order-import report --batch NAME [--out DIR] [--ledger PATH] [--config FILE]": Run(
        run="order-import report --batch b --out again --ledger order-import.sqlite"
        " --config order-import.toml",
        folder="batch",
    ),
    "order-import run orders.csv --batch jan": Run(exit=1, folder="jan"),
    # -- docs/sandbox.md, docs/benchmarks.md --
    "order-import sandbox": sandbox_port0("order-import sandbox"),
    "order-import sandbox --port 0 --rate-limit 0 --concurrency-limit 0 --state rehearsal.state": (
        Run(server=True, folder=SERVERS)
    ),
    # Ctrl-C stops both entry points cleanly, exit 0 (docs/sandbox.md), whenever it comes.
    "python -m sandbox --port 0": Run(server=True, folder=SERVERS),
    "python -m sandbox": Run(run="python -m sandbox --port 0", server=True, folder=SERVERS),
    # -- docs/update.md --
    "order-import update FILE --batch NAME [--mapping M] [--ledger L] [--rate R] [--concurrency N]"
    " [--report-dir D] [--dry-run] [--quiet] [--log-json] [--allow-drift] [--config C] [--live]": (
        Run(
            run="order-import update fixes.csv --batch fixes --ledger order-import.sqlite"
            " --rate 6000 --concurrency 4 --report-dir fixes-reports --dry-run --quiet --log-json"
            " --allow-drift --config order-import.toml",
            folder="batch",
        )
    ),
    "order-import retry --batch NAME": Run(run="order-import retry --batch b", folder="batch"),
}
"""Commands this test runs (keyed by the printed command without its trailing comment)."""

FIRST_REAL_RUN = Covered("tests/test_first_real_run.py", "## First real run", "README.md")
FIX_LOOP = Covered("tests/test_fix_loop.py", "## The fix loop", "README.md")
SEEDING = Covered(
    "tests/test_sandbox_invoices.py",
    "A sandbox standing for a site whose invoices were imported",
    "docs/sandbox.md",
)

COVERED: dict[str, Covered] = {
    "order-import snapshot invoices.csv": FIRST_REAL_RUN,
    "order-import validate orders.csv --mapping mapping.toml --online": FIRST_REAL_RUN,
    "order-import run orders.csv --batch first --mapping mapping.toml --canary 3": FIRST_REAL_RUN,
    "order-import run orders.csv --batch first --mapping mapping.toml": FIRST_REAL_RUN,
    "order-import retry --batch first": FIRST_REAL_RUN,
    "order-import run orders.csv --batch jan --mapping mapping.toml": FIX_LOOP,
    "order-import retry --batch jan reports/jan/failures.csv": FIX_LOOP,
    "order-import reconcile --batch jan": FIX_LOOP,
    "order-import retry --batch jan --missing": FIX_LOOP,
    "order-import status --batch jan": FIX_LOOP,
    "order-import sandbox --port 0 --invoices invoices.csv --state rehearsal.state": SEEDING,
    "order-import sandbox --port 0 --generate-invoices 1000 --eu-vat": SEEDING,
    "python -m sandbox --port 0 --invoices invoices.csv": SEEDING,
    "order-import update reports/<batch>/corrections-for-update.csv --batch <batch>-corrections": (
        Covered(
            "tests/test_ledger_identity.py",
            "order-import update reports/b1/corrections-for-update.csv --batch b1-corrections",
        )
    ),
}
"""Commands another named test runs exactly as printed."""

EXCLUDED: dict[str, str] = {
    "make test": SUITE,
    "make test WORKERS=0": SUITE,
    "make test-fast": SUITE.replace("25+", "20+"),
    "make lint": "ruff and mypy over the whole tree (minutes on 2 cores): make test runs it "
    "first (lint is its prerequisite), in CI",
    ".venv/bin/pytest -m drill -q": "every drill (15+ minutes), each a test of the suite already",
    ".venv/bin/pytest tests/test_hostile_inputs.py tests/test_security.py -q": "two files of "
    "the suite, which runs them: 5+ minutes again under load (past pytest's 300 s timeout)",
    "order-import run --mapping M": "docs/update.md names how run reads --mapping, in a sentence: "
    "not a command line (run needs FILE and --batch)",
    "make bench": BENCH,
    "python -m bench": BENCH,
    "python -m bench --only import": BENCH,
    "python -m bench --only preflight": BENCH,
    ".venv/bin/python -m bench --quick": BENCH,
    ".venv/bin/python -m bench --only import --only rate": BENCH,
    ".venv/bin/python -m bench --quick --out /tmp/quick.md": BENCH,
    "python -m bench.bench_import --ab ../old [ROWS] [ROUNDS]": BENCH + " (needs an old checkout)",
    "python -m bench.bench_validate --baseline ../old": BENCH + " (needs an old checkout)",
    "python -m bench.bench_validate": BENCH,
    "python -m bench.bench_status": BENCH + " (builds a 10M-row ledger)",
    "BENCH_BASELINE=../old python -m bench.bench_status": BENCH + " (needs an old checkout)",
    "python -m bench.big_ledger PATH": BENCH + " (writes a multi-GB ledger)",
    "BENCH_BASELINE=../old python -m bench --only ledger": BENCH + " (needs an old checkout)",
    "python -m bench.bench_client": BENCH,
    "python -m bench.bench_transport": BENCH,
    "python -m bench.bench_ledger": BENCH,
    "python -m bench.bench_sandbox [--quick]": BENCH,
    "python -m bench.bench_sandbox --ab ../old": BENCH + " (needs an old checkout)",
}
"""Commands no test runs, and why."""

FIX_PENDING: dict[str, str] = {}
"""Printed commands that are wrong → the fix (run in their place; the lead applies the fixes
to the docs at merge and empties this table)."""


def account(commands: list[DocCommand]) -> list[str]:
    """One message per printed command that is in none of the tables (doc:line named)."""
    known = RUNS.keys() | COVERED.keys() | EXCLUDED.keys()
    return [
        f"{c.where}: `{c.text}` is run by no test: add it to RUNS (run as printed), COVERED (a "
        "named test runs it) or EXCLUDED (why not) in tests/test_doc_commands.py"
        for c in commands
        if FIX_PENDING.get(c.text, c.text) not in known
    ]


ALL = doc_commands.harvest_all()


def test_every_printed_command_is_run_covered_or_excluded():
    """A command printed in README.md, CONTRIBUTING.md or docs/*.md that no table names fails
    here with its doc and line."""
    assert len(ALL) > 50
    assert account(ALL) == []


def test_the_tables_hold_only_printed_commands():
    """No table keeps a command the docs no longer print (a renamed or fixed command moves)."""
    printed = {c.text for c in ALL}
    fixed = {FIX_PENDING[t] for t in printed if t in FIX_PENDING}
    stale = [
        f"`{t}`: no doc prints it any more; update or remove its row"
        for t in [*RUNS, *COVERED, *EXCLUDED]
        if t not in printed | fixed
    ]
    stale += [
        f"FIX_PENDING `{t}`: fixed in the docs? remove it" for t in FIX_PENDING if t not in printed
    ]
    assert stale == []
    assert RUNS.keys() & COVERED.keys() == set()
    assert (RUNS.keys() | COVERED.keys()) & EXCLUDED.keys() == set()


def _section_block(doc: str, heading: str) -> list[str]:
    """The commands of the first fenced block after ``heading`` in ``doc``."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    assert heading in text, f"{doc} has no {heading!r}"
    block = text.split(heading, 1)[1].split("```", 2)[1]
    return [doc_commands.strip_comment(line) for line in block.splitlines()[1:] if line.strip()]


@pytest.mark.parametrize("command", sorted(c for c in COVERED if c in {d.text for d in ALL}))
def test_covered_commands_are_in_their_named_test(command):
    """A command said to be run by another test is: that test file holds the command, or the
    doc heading whose block it reads, and the command is in that block."""
    covered = COVERED[command]
    source = (ROOT / covered.test).read_text(encoding="utf-8")
    assert covered.needle in source, f"{covered.test} does not contain {covered.needle!r}"
    if covered.section_of is not None:
        assert command in _section_block(covered.section_of, covered.needle)


# -- the harvester, on a page written here ---------------------------------------------------

PAGE = """\
Intro `order-import run` and `make help`, `order-import status --batch B` and `make_sandbox`.

```sh
# a comment line
order-import run a.csv --batch x   # trailing comment
order-import retry \\
  --batch x
```

```
order-import validate FILE [--mapping M]
                           [--config C]
order-import: error: not a command
```

```toml
order-import = "not a command"
```
"""


def test_the_harvester_reads_blocks_spans_and_continuations(tmp_path):
    """Shell-block lines (comments dropped, ``\\`` joined), untagged-block command lines (wrapped
    synopses joined, output skipped) and inline spans are commands, with their lines; a bare
    command name, other tags and words that only start alike are not."""
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text(PAGE, encoding="utf-8")
    found = [(c.where, c.text, c.inline) for c in doc_commands.harvest(page, tmp_path)]
    assert found == [
        ("docs/page.md:1", "make help", True),
        ("docs/page.md:1", "order-import status --batch B", True),
        ("docs/page.md:5", "order-import run a.csv --batch x", False),
        ("docs/page.md:6", "order-import retry --batch x", False),
        ("docs/page.md:11", "order-import validate FILE [--mapping M] [--config C]", False),
    ]
    assert doc_commands.harvest(page, tmp_path)[2].printed.endswith("# trailing comment")


def test_an_unlisted_command_is_named_with_its_doc_and_line(tmp_path):
    """A command added to a doc and in no table is reported as ``doc:line``."""
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text("Run `make help`, then\n\n```sh\norder-import frobnicate --all\n```\n")
    messages = account(doc_commands.harvest(page, tmp_path))
    assert len(messages) == 1
    assert messages[0].startswith("docs/page.md:4: `order-import frobnicate --all` is run by no")


# -- running them ----------------------------------------------------------------------------

LINKED = (".venv", "Makefile", "pyproject.toml", "pipeline", "schemas", "sandbox", "tests", "bench")
INVOICES = "id,customer_id,subscription_id,currency_code,total\nINV-1001,CUST-7,SUB-7,EUR,1999\n"


def _head(source: Path, target: Path, rows: int) -> None:
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    target.write_text("".join(lines[: rows + 1]), encoding="utf-8")


def prepare(folder: Path) -> None:
    """The checkout links, ``sample_data/`` and the files the docs name (module docstring)."""
    folder.mkdir(parents=True)
    for name in LINKED:
        (folder / name).symlink_to(ROOT / name)
    shutil.copytree(
        ROOT / "sample_data", folder / "sample_data", ignore=shutil.ignore_patterns("__pycache__")
    )
    _head(ROOT / "sample_data" / "legacy_orders.csv", folder / "legacy.csv", 6)
    _head(ROOT / "sample_data" / "api_columns.csv", folder / "orders.csv", 5)
    write_shopify(folder / "orders_export_1.csv", orders=3)
    write_german_erp(folder / "auftraege.csv", orders=4)
    (folder / "invoices.csv").write_text(INVOICES, encoding="utf-8")
    fixes = ["id,shipping_address[city]", *(f"API-500{i},Utrecht" for i in range(1, 6))]
    (folder / "fixes.csv").write_text("\n".join(fixes) + "\n", encoding="utf-8")
    (folder / "order-import.toml").write_text("rate_per_minute = 60000\n", encoding="utf-8")


def _bad_orders(folder: Path) -> None:
    """``orders.csv`` with one row missing its invoice id: the run exits 1 with a failure."""
    lines = (folder / "orders.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    header = lines[0].rstrip("\r\n").split(",")
    cells = lines[1].rstrip("\r\n").split(",")
    cells[header.index("invoice_id")] = ""
    lines[1] = ",".join(cells) + "\n"
    (folder / "orders.csv").write_text("".join(lines), encoding="utf-8")


@dataclass(frozen=True)
class Folder:
    """What a folder holds before a doc's commands run there."""

    setup: tuple[tuple[str, int], ...] = ()
    """Commands run first, with the exit code each must give."""
    files: Callable[[Path], None] | None = None
    """Changes to the prepared files."""
    drill: bool = True
    """Its commands import orders (a CLI start is seconds on 2 shared cores): a drill."""


def _without_samples(folder: Path) -> None:
    """The seeded sample files removed (``python -m sample_data.generate`` writes them anew)."""
    for path in SAMPLES:
        (folder / path).unlink()


FOLDERS: dict[str, Folder] = {
    QUICK: Folder(drill=False),
    SERVERS: Folder(drill=False),
    "generate": Folder(files=_without_samples, drill=False),
    "batch": Folder(setup=(("order-import run orders.csv --batch b", 0),)),
    TABLE: Folder(
        setup=(
            ("order-import mapping init legacy.csv --out mapping.toml", 0),
            ("order-import run legacy.csv --batch 2019-orders --mapping mapping.toml", 0),
        )
    ),
    "jan": Folder(files=_bad_orders),
    "failed": Folder(setup=(("order-import run orders.csv --batch b", 1),), files=_bad_orders),
}


def shell_env(base_url: str) -> dict[str, str]:
    """The environment after the docs' set-up (module docstring), no make job-server leftovers."""
    env = cli_env(base_url, "test_sandbox_key")
    for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VIRTUAL_ENV", "PYTHONPATH"):
        env.pop(name, None)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    return env


def _keeps_state(command: str) -> bool:
    return command.startswith(("export ", "cd ")) or "source " in command


@dataclass
class Shell:
    """One folder's shell session: its ``export``/``source`` lines run before each command."""

    folder: Path
    env: dict[str, str]
    prelude: list[str]
    served: str = ""
    """The output of the last sandbox command (``serving``), once it stopped."""

    def run(self, command: str, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        """``bash -c`` the command after the session's state lines; bounded, output captured."""
        script = "\n".join([*self.prelude, command])
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if _keeps_state(command):
            self.prelude.append(command)
        return result

    @contextlib.contextmanager
    def serving(self, command: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
        """Start a sandbox command; yield its base URL once it answers; Ctrl-C it (bounded)."""
        script = "\n".join([*self.prelude, command])
        process = subprocess.Popen(
            ["bash", "-c", script],
            cwd=self.folder,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            base_url = _listening_url(command, process)
            wait_until_answering(base_url, 20, command)
            yield base_url, process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
            try:
                self.served = process.communicate(timeout=20)[0]
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                self.served = process.communicate(timeout=10)[0]


def _listening_url(command: str, process: subprocess.Popen[str]) -> str:
    """The base URL from the sandbox's ``Sandbox listening on URL`` line (bounded wait; lines
    before it, such as make's, are skipped)."""
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    seen: list[str] = []
    while time.monotonic() < deadline and len(seen) < 20:
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        line = process.stdout.readline() if ready else ""
        if line.startswith("Sandbox listening on "):
            return line.split()[3]
        if not line:
            break
        seen.append(line)
    raise AssertionError(f"{command}: no 'Sandbox listening on' line: {''.join(seen)!r}")


def _check(command: DocCommand, run: Run, shell: Shell) -> str | None:
    """Run one printed command; None if it did what the doc says, else why not."""
    line = run.run or command.printed
    if run.server:
        with shell.serving(line) as (_url, process):
            pass
        out, code = shell.served, process.returncode
    else:
        result = shell.run(line, timeout=run.timeout)
        out, code = result.stdout + result.stderr, result.returncode
    missing = [path for path in run.writes if not (shell.folder / path).exists()]
    differ = [
        path
        for path in run.reproduces
        if not (shell.folder / path).is_file()
        or (shell.folder / path).read_bytes() != (ROOT / path).read_bytes()
    ]
    if code == run.exit and "Traceback" not in out and not missing and not differ:
        return None
    return (
        f"{command.where}: `{line}` exited {code}, the doc says {run.exit}; not written: "
        f"{missing}; not as in the checkout: {differ}:\n{out[-1500:]}"
    )


def _folders(drill: bool) -> list[str]:
    """The folders with commands to run (drills or not), in the order the docs first use them."""
    seen: dict[str, None] = {}
    for command in ALL:
        run = RUNS.get(FIX_PENDING.get(command.text, command.text))
        if run is not None and FOLDERS.get(run.folder, Folder()).drill == drill:
            seen[run.folder] = None
    return list(seen)


def _commands(folder: str) -> list[tuple[DocCommand, Run]]:
    """The printed commands that run in ``folder``: each text once, in the order README.md,
    CONTRIBUTING.md and docs/*.md print them."""
    found: dict[str, tuple[DocCommand, Run]] = {}
    for command in ALL:
        run = RUNS.get(FIX_PENDING.get(command.text, command.text))
        if run is not None and run.folder == folder:
            found.setdefault(command.text, (command, run))
    return list(found.values())


@pytest.fixture(scope="module")
def venv_is_current() -> None:
    """The checkout's .venv is installed from today's pyproject.toml (``make install`` run as
    printed must not reinstall it under the other worker's feet)."""
    stale = subprocess.run(
        ["make", "-q", "install"], cwd=ROOT, env=shell_env(""), capture_output=True, check=False
    )
    if stale.returncode != 0:
        pytest.fail(".venv is older than pyproject.toml: run `make install` first")


def _run_folder(folder: str, tmp_path: Path, make_sandbox: Callable[..., SandboxServer]) -> None:
    server = make_sandbox(export_delay_s=0.0)
    where = tmp_path / folder
    prepare(where)
    spec = FOLDERS.get(folder, Folder())
    if spec.files is not None:
        spec.files(where)
    shell = Shell(where, shell_env(server.base_url), [])
    for line, code in spec.setup:
        result = shell.run(line)
        assert result.returncode == code, result.stdout + result.stderr
    failures = [_check(command, run, shell) for command, run in _commands(folder)]
    assert [f for f in failures if f] == []


@pytest.mark.slow
@pytest.mark.parametrize("folder", _folders(drill=False))
def test_printed_commands_run_as_printed(folder, tmp_path, make_sandbox, venv_is_current):
    """Each quick command of RUNS (make, sandboxes, generators), run in document order in its
    prepared folder, exits as the doc says, with no traceback, and writes what it says."""
    _run_folder(folder, tmp_path, make_sandbox)


@pytest.mark.drill
@pytest.mark.timeout(900)
@pytest.mark.parametrize("folder", _folders(drill=True))
def test_drill_commands_run_as_printed(folder, tmp_path, make_sandbox, venv_is_current):
    """Each order-import command of RUNS (and ``make demo``), run in document order in its
    prepared folder against one sandbox, exits as the doc says, with no traceback, and writes
    what it says."""
    _run_folder(folder, tmp_path, make_sandbox)
