"""The README's "First real run", walked literally with the real CLI.

A sandbox seeded with invoices stands in for the test site (``CHARGEBEE_BASE_URL`` points at it):
two of the file's invoices are not on it. Every command of the README block runs exactly as
written; at the block's two comments the test does what they ask (looks at the canary's orders;
imports the missing invoices by restarting the sandbox with the full seed and the same state).
What reached the site is counted from its request logs: every order exactly once, none for a row
whose invoice was missing until it was there.
"""

from __future__ import annotations

import shlex
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests import support
from tests.orders_factory import write_orders
from tests.sandbox_process import KEY, Running, python_sandbox, seed_invoices

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parent.parent / "README.md"
ROWS = 12
MISSING = (9, 11)  # late in the file: the canary's three rows have their invoices


def _readme_first_real_run() -> list[str]:
    """The lines of the README's "First real run" block (commands and comments)."""
    section = README.read_text(encoding="utf-8").split("## First real run", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def _cli(server: Running, work: Path, line: str) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(line, comments=True)
    assert argv[0] == "order-import", line
    result = support.run_cli(server, KEY, *argv[1:], cwd=work)
    support.assert_clean_exit(result, result.returncode)
    return result


def test_the_readme_first_real_run_block_runs_as_written(
    sandboxes: list[Running], tmp_path: Path
) -> None:
    write_orders(tmp_path / "orders.csv", ROWS, prefix="FR")
    state = tmp_path / "site-state.json"
    partial = seed_invoices(tmp_path / "site.csv", [i for i in range(ROWS) if i not in MISSING])
    site = python_sandbox(sandboxes, tmp_path, partial, state=state)
    init = support.run_cli(
        site, KEY, "mapping", "init", "orders.csv", "--out", "mapping.toml", cwd=tmp_path
    )
    support.assert_clean_exit(init)

    lines = _readme_first_real_run()
    commands = [line for line in lines if not line.startswith("#")]
    assert [shlex.split(c, comments=True)[1] for c in commands] == [
        "snapshot",
        "validate",
        "run",
        "run",
        "retry",
    ], lines
    posted: Counter[str] = Counter()
    codes: list[int] = []
    canary_ids: list[str] = []
    for line in lines:
        if line.startswith("# look at"):
            # The canary named its orders; they are on the site, and nothing else is.
            on_site = {o["id"] for o in site.state(events=False, requests=False)["orders"]}
            assert set(canary_ids) == on_site, (canary_ids, on_site)
            assert len(on_site) == 3, on_site
            continue
        if line.startswith("# import the invoices"):
            # What a person does on the real site: import the missing invoices.
            posted += support.import_posts(support.request_log(site))
            port = site.port
            site.stop()
            full = seed_invoices(tmp_path / "site-full.csv", range(ROWS))
            site = python_sandbox(sandboxes, tmp_path, full, state=state, port=port)
            continue
        assert not line.startswith("#"), line
        result = _cli(site, tmp_path, line)
        codes.append(result.returncode)
        if "--canary" in line:
            canary_ids = [f"FR-{i:06d}" for i in range(ROWS) if f"FR-{i:06d}" in result.stdout]
        if " run " in f" {line} " and "--canary" not in line:
            # The rest: the two rows whose invoice is missing are blocked, never sent.
            assert "invoice_not_found 2" in result.stdout, result.stdout
            sent = support.import_posts(support.request_log(site))
            assert not {f"FR-{i:06d}" for i in MISSING} & set(sent), sent
    posted += support.import_posts(support.request_log(site))

    # snapshot 0; validate --online 1 (pre-flight would hold 2 rows back); canary 0;
    # the rest 1 (2 rows blocked); retry 0.
    assert codes == [0, 1, 0, 1, 0], codes
    snapshot = (tmp_path / "invoices.csv").read_text(encoding="utf-8").splitlines()
    assert len(snapshot) == 1 + ROWS - len(MISSING)
    assert posted == Counter({f"FR-{i:06d}": 1 for i in range(ROWS)}), posted
    orders = {o["id"] for o in site.state(events=False, requests=False)["orders"]}
    assert orders == {f"FR-{i:06d}" for i in range(ROWS)}
