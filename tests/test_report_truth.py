"""The sign-off report tells the truth: one rate everywhere, and report.html for four batch kinds.

Real CLI runs against the sandbox in one working folder: a canary batch (paused), a clean batch,
a batch with failures and a reconciled batch. The rate the terminal prints for a run is the rate
``status --json``, summary.json and report.html show, next to the limit that run used; headless
Chromium renders each report.html, whose next step matches the batch's state and never says None.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.server import SandboxServer
from tests import support
from tests.orders_factory import write_orders

pytestmark = [pytest.mark.slow, pytest.mark.browser]
CHROMIUM = shutil.which("chromium")
RATE = "120"


def _cli(folder: Path, server: SandboxServer, *args: str) -> subprocess.CompletedProcess[str]:
    result = support.run_cli(server, server.api_key, *args, cwd=folder)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def _visible_text(folder: Path, html: Path) -> str:
    """The text Chromium renders for report.html (scripts run, tags stripped)."""
    assert CHROMIUM is not None
    profile = folder / "chromium-profile"
    profile.mkdir(exist_ok=True)
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--dump-dom", html.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", dom.stdout, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


def _next_step_section(text: str) -> str:
    return text.split("Next step", 1)[1].split("Charts", 1)[0][:600]


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Four batches made by the real CLI in one folder (one sandbox), with their outputs."""
    from sandbox.config import SandboxConfig

    folder = tmp_path_factory.mktemp("truth")
    server = SandboxServer(
        SandboxConfig(rate_limit_per_minute=None, concurrency_limit=None)
    ).start()
    try:
        out: dict[str, Any] = {"folder": folder}
        made = (("canary", 5, "CAN"), ("clean", 6, "CLN"), ("bad", 4, "BAD"), ("rec", 3, "REC"))
        for name, count, prefix in made:
            path = write_orders(folder / f"{name}.csv", count, prefix=prefix,
                                bad={1: {"status": "lost"}} if name == "bad" else None)  # fmt: skip
            # Invoices of their own per batch: one ledger refuses a second order on an invoice.
            path.write_text(path.read_text("utf-8").replace("INV-", f"INV-{prefix}-"), "utf-8")
        out["canary"] = _cli(folder, server, "run", "canary.csv", "--batch", "canary",
                             "--canary", "2", "--rate", RATE)  # fmt: skip
        out["clean"] = _cli(folder, server, "run", "clean.csv", "--batch", "clean", "--rate", RATE)
        out["bad"] = _cli(folder, server, "run", "bad.csv", "--batch", "bad", "--rate", RATE)
        _cli(folder, server, "run", "rec.csv", "--batch", "reconciled", "--rate", RATE)
        out["reconcile"] = _cli(folder, server, "reconcile", "--batch", "reconciled")
        out["status"] = {
            name: json.loads(_cli(folder, server, "status", "--batch", name, "--json").stdout)
            for name in ("canary", "clean", "bad")
        }
        yield out
    finally:
        server.stop()


def test_one_rate_in_terminal_status_summary_and_report(batches: dict[str, Any]) -> None:
    """The clean run's rate text is the same in every output, and no 60 s window held more
    requests than the limit the run used."""
    folder = batches["folder"]
    assert batches["clean"].returncode == 0, batches["clean"].stdout
    printed = re.search(r"this run: .*?; (.*)$", batches["clean"].stdout, re.M)
    assert printed is not None, batches["clean"].stdout
    status = batches["status"]["clean"]["rate"]
    summary = json.loads((folder / "reports" / "clean" / "summary.json").read_text("utf-8"))
    assert summary["rate"] == status
    assert status["limits"] == [float(RATE)]
    assert status["max_in_window"] <= status["limit"]
    # 6 imports plus the pre-flight look-ups, which spend the same budget and count alike.
    requests = 6 + summary["preflight_requests"]
    assert summary["preflight_requests"] >= 1
    assert status["requests"] == requests
    # A run of a few seconds is too short to extrapolate: every output shows counts.
    assert status["per_minute"] is None
    assert printed.group(1).startswith(f"{requests} requests in ")
    assert f"most in any 60 s: {status['max_in_window']}; limit {RATE}" in printed.group(1)
    run = summary["runs"][-1]
    assert run["rate"] == status
    assert run["rate_text"] == printed.group(1)
    html = (folder / "reports" / "clean" / "report.html").read_text("utf-8")
    card = re.search(r'id="rate-card"><b>([^<]*)</b><span>([^<]*)</span>', html)
    assert card is not None
    assert card.group(1) == str(requests)
    assert f"most in any 60 s {status['max_in_window']}" in card.group(2)
    assert f"limit {RATE}" in card.group(2)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (.ci/run installs it)")
@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        ("canary", "paused after a canary: review the orders it sent in Chargebee (CAN-"),
        ("clean", "compare the batch with what Chargebee holds: order-import reconcile"),
        ("bad", "then retry them: order-import retry --batch bad reports/bad/failures.csv"),
        ("reconciled", "done: every row is in Chargebee and reconciliation is clean"),
    ],
)
def test_report_html_next_step_in_chromium(batches: dict[str, Any], batch: str, expected: str):
    """Each batch's report.html, rendered by Chromium, names the next step its state calls
    for, shows the run's own limit on the rate card and never prints None."""
    folder = batches["folder"]
    text = _visible_text(folder, folder / "reports" / batch / "report.html")
    assert expected in _next_step_section(text), _next_step_section(text)
    assert "None" not in text
    assert f"limit {RATE}" in text
    if batch == "canary":
        sent = batches["canary"].stdout
        ids = re.search(r"canary: paused after 2 order\(s\): (\S+), (\S+)$", sent, re.M)
        assert ids is not None, sent
        assert ids.group(1) in text
        assert ids.group(2) in text
    if batch == "bad":
        with (folder / "reports" / "bad" / "failures.csv").open(encoding="utf-8-sig") as handle:
            assert len(list(csv.DictReader(handle))) == 1
