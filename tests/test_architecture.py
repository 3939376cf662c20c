"""Module boundaries (STYLE.md §3): who may import whom, and who owns which third-party edge."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = sorted((ROOT / "pipeline").glob("*.py"))
SANDBOX = sorted((ROOT / "sandbox").rglob("*.py"))
SCHEMAS = sorted((ROOT / "schemas").rglob("*.py"))

# Modules at the bottom of the stack and what they may import from the package.
LOW_LEVEL_ALLOWED = {
    "errors": set(),
    "keys": set(),
    "safety": set(),
    "models": {"errors"},
    "config": {"errors", "models"},
    "ratelimit": {"errors"},
    "encode": {"errors", "models"},
    "transport": set(),
}
MAX_MODULE_LINES = 450


def _runtime_imports(path: Path) -> set[str]:
    """Absolute module names imported by a file, skipping ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def _package_deps(path: Path, package: str = "pipeline") -> set[str]:
    return {
        name.split(".")[1]
        for name in _runtime_imports(path)
        if name.startswith(f"{package}.") and name.count(".") >= 1
    } - {"__version__"}


def test_sandbox_imports_nothing_from_pipeline():
    """The sandbox shares no code with the importer: its contract is HTTP only."""
    offenders = [
        p.name for p in SANDBOX if any(n.startswith("pipeline") for n in _runtime_imports(p))
    ]
    assert offenders == []


def test_schemas_import_nothing_from_pipeline():
    """schemas/ is a leaf package."""
    offenders = [
        p.name for p in SCHEMAS if any(n.startswith("pipeline") for n in _runtime_imports(p))
    ]
    assert offenders == []


def test_only_the_sandbox_command_starts_the_sandbox():
    """pipeline imports sandbox only in cli_sandbox."""
    offenders = [
        p.name
        for p in PIPELINE
        if p.name != "cli_sandbox.py" and any(n.startswith("sandbox") for n in _runtime_imports(p))
    ]
    assert offenders == []


@pytest.mark.parametrize("module", sorted(LOW_LEVEL_ALLOWED))
def test_low_level_modules_import_only_below_them(module):
    """errors/keys/safety/models/config/ratelimit/encode depend only on modules below them."""
    path = ROOT / "pipeline" / f"{module}.py"
    assert path.exists(), module
    assert _package_deps(path) <= LOW_LEVEL_ALLOWED[module]


def test_httpx_lives_in_the_client():
    """Only client.py touches httpx at run time."""
    offenders = [
        p.name
        for p in PIPELINE
        if p.name not in ("client.py", "transport.py")
        and any(n.split(".")[0] == "httpx" for n in _runtime_imports(p))
    ]
    assert offenders == []


def test_sql_lives_in_the_ledger():
    """Only the ledger modules import sqlite3."""
    offenders = [
        p.name
        for p in PIPELINE
        if not p.name.startswith("ledger")
        and any(n.split(".")[0] == "sqlite3" for n in _runtime_imports(p))
    ]
    assert offenders == []


def test_cli_modules_stay_thin():
    """cli_* modules import no pandas, httpx or sqlite3."""
    heavy = {"pandas", "httpx", "sqlite3", "pandera"}
    offenders = {
        p.name: sorted(n for n in _runtime_imports(p) if n.split(".")[0] in heavy)
        for p in PIPELINE
        if p.name.startswith("cli_") or p.name == "cli.py"
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_config_reads_the_environment():
    """os.environ / getenv appear only in config.py (settings are read once)."""
    offenders = [
        p.name
        for p in PIPELINE
        if p.name != "config.py"
        and ("os.environ" in p.read_text(encoding="utf-8") or "getenv(" in p.read_text("utf-8"))
    ]
    assert offenders == []


def test_modules_stay_small():
    """No module grows past the ~400-line budget (hard stop at 450)."""
    sizes = {
        p.relative_to(ROOT).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
        for p in [*PIPELINE, *SANDBOX, *SCHEMAS]
    }
    assert {k: v for k, v in sizes.items() if v > MAX_MODULE_LINES} == {}


def test_public_api_is_sorted_and_resolves():
    """pipeline.__all__ is sorted and every name in it can be imported."""
    import pipeline

    assert pipeline.__all__ == sorted(pipeline.__all__)
    for name in pipeline.__all__:
        assert getattr(pipeline, name) is not None, name
