"""A real browser (headless Chromium) opens report.html: it renders, with charts and table."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.report.write import write_reports
from tests.test_report import BATCH, build

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a throwaway profile; bounded by a timeout."""
    assert CHROMIUM is not None
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (.ci/run installs it)")
def test_report_renders_in_chromium_without_console_errors(tmp_path: Path) -> None:
    """report.html runs its script (no console output), shows 5 SVG charts and 13 table lines."""
    with build(tmp_path / "ledger.sqlite") as led:
        paths = write_reports(led, BATCH, tmp_path / "out")
    url = paths.html.resolve().as_uri()
    dom = chromium(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body is not None
    assert 'data-rendered="true"' in body.group(0)
    assert 'data-table-rows="13"' in body.group(0)
    assert 'data-visible-rows="13"' in body.group(0)
    assert 'data-charts="5"' in body.group(0)
    assert dom.stdout.count("<svg") == 5
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert console == []
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    result = chromium(tmp_path, "--window-size=1280,1800", f"--screenshot={shot}", url)
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.stat().st_size > 10_000


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (.ci/run installs it)")
def test_console_error_detection_works(tmp_path: Path) -> None:
    """The console scan used above does catch a page's script error (the check can fail)."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>nosuch();</script></body></html>")
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert any("CONSOLE" in line and "nosuch" in line for line in dom.stderr.splitlines())
