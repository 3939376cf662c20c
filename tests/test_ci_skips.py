"""Under ``CI=true`` a skipped test fails: in one process and on xdist workers (``make test``
runs the suite with ``-n``; the hook in tests/conftest.py runs in each worker and the failure it
writes must reach the controller's summary and exit code)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import pytest


def test_skipped():
    pytest.skip("no chromium here")


@pytest.mark.xfail(reason="a known gap", strict=True)
def test_expected_failure():
    assert False


def test_passes():
    pass
"""


def run_probe(tmp_path: Path, workers: str) -> subprocess.CompletedProcess[str]:
    """pytest under CI=true on a three-test file, tests/conftest.py loaded as a plugin
    (bounded)."""
    (tmp_path / "test_probe.py").write_text(PROBE, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CI"))}
    env.update({"PYTHONPATH": str(ROOT), "CI": "true"})
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-c", str(tmp_path / "pytest.ini"), "-q", "-rfsx", "-n", workers,
         str(tmp_path / "test_probe.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip


@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_skip_fails_under_ci_in_one_process_and_on_workers(tmp_path: Path, workers: str) -> None:
    """CI=true, in-process (``-n 0``) and on an xdist worker (``-n 1``): the skip is reported
    failed with its reason and the run exits 1; the xfail stays an xfail, the pass a pass."""
    result = run_probe(tmp_path, workers)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    failed = [line for line in out.splitlines() if line.startswith("FAILED test_probe.py::")]
    assert len(failed) == 1, out
    assert failed[0].startswith(
        "FAILED test_probe.py::test_skipped - skipped under CI=true, which must run every proof"
    ), out
    assert "no chromium here" in failed[0], out
    assert "1 failed, 1 passed, 1 xfailed" in out, out
