"""The layout is the architecture: which package may import which, and no import cycles.

``pipeline/`` keeps its shared leaves at the root (``errors``, ``models``, ``config``, ``keys``,
``progress``, ``safety``, ``params``) and gives every stage a package. The rules below are the
whole contract; CONTRIBUTING.md shows them as a picture. A module is as long as its one job: there
is no line cap, the rules are what keep modules small.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "pipeline"

ROOT_LEAVES = {"errors", "models", "config", "keys", "progress", "safety", "params"}
STAGES = {
    "cli",
    "load",
    "prepare",
    "ledger",
    "api",
    "preflight",
    "send",
    "report",
    "reconcile",
    "update",
}

# What each stage package may import besides the root leaves and itself.
ALLOWED: dict[str, set[str]] = {
    "load": set(),
    "ledger": set(),
    "api": set(),
    "preflight": {"api"},
    "prepare": {"load"},
    "report": {"ledger", "prepare"},
    "send": {"api", "ledger", "load", "preflight", "prepare", "report"},
    "reconcile": {"api", "ledger", "report"},
    "update": {"api", "ledger", "load", "prepare", "reconcile", "report", "send"},
    "cli": STAGES - {"cli"},
}
# Third-party edges owned by one package each.
OWNERS = {"httpx": {"api"}, "sqlite3": {"ledger"}, "sandbox": {"cli"}}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PIPELINE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


MODULES = dict(_modules())


def _imports(path: Path, *, runtime_only: bool) -> set[str]:
    """Absolute module names a file imports (``from x import y`` yields x and x.y)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if runtime_only and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        for sub in ast.iter_child_nodes(node):
            visit(sub)

    visit(tree)
    return names


def _unit(module: str) -> str:
    """The package a pipeline module belongs to: a stage name, or ``root``."""
    parts = module.split(".")
    if module == "pipeline.__main__":
        return "main"
    if len(parts) >= 2 and parts[1] in STAGES:
        return parts[1]
    return "root"


def _pipeline_targets(module: str, *, runtime_only: bool = True) -> set[str]:
    """The pipeline modules a module imports (names resolved to existing modules)."""
    found: set[str] = set()
    for name in _imports(MODULES[module], runtime_only=runtime_only):
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name.startswith("pipeline") and name != module:
            found.add(name)
    return found


def test_every_package_is_known():
    """Every folder under pipeline/ is a stage named in the rules."""
    folders = {p.name for p in PIPELINE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders - {"templates"} <= STAGES
    assert {m.split(".")[1] for m in MODULES if m.count(".") == 1} - STAGES <= ROOT_LEAVES | {
        "__main__"
    }


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _unit(m) == "root"))
def test_root_leaves_import_only_each_other(module):
    """errors/models/config/keys/progress/safety/params import no stage package."""
    stages = {_unit(t) for t in _pipeline_targets(module)} - {"root"}
    assert stages == set(), f"{module} imports stage packages {stages}"


@pytest.mark.parametrize("stage", sorted(ALLOWED))
def test_stage_imports_follow_the_rules(stage):
    """A stage imports only the root leaves, itself and the stages ALLOWED names."""
    offenders = {
        module: sorted(
            t for t in _pipeline_targets(module) if _unit(t) not in ALLOWED[stage] | {"root", stage}
        )
        for module in MODULES
        if _unit(module) == stage
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_nothing_imports_cli():
    """The CLI is the top: only pipeline.__main__ and the cli package import it."""
    offenders = [
        module
        for module in MODULES
        if _unit(module) != "cli"
        and module != "pipeline.__main__"
        and any(_unit(t) == "cli" for t in _pipeline_targets(module, runtime_only=False))
    ]
    assert offenders == []


@pytest.mark.parametrize("library", sorted(OWNERS))
def test_third_party_edges_have_one_owner(library):
    """httpx only in api/, sqlite3 only in ledger/, the sandbox only in cli/."""
    offenders = [
        module
        for module, path in MODULES.items()
        if _unit(module) not in OWNERS[library]
        and any(n.split(".")[0] == library for n in _imports(path, runtime_only=True))
    ]
    assert offenders == []


def test_no_import_cycles():
    """No cycle among pipeline modules, counting imports inside functions and for types."""
    graph = {m: _pipeline_targets(m, runtime_only=False) for m in MODULES}
    # A package's __init__ is imported with each of its modules; it may re-export them.
    for module, targets in graph.items():
        graph[module] = {t for t in targets if not module.startswith(t + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == []


def test_no_package_cycles():
    """Stage packages form a DAG (the rules above allow no cycle, this checks the code)."""
    edges = {
        (_unit(m), _unit(t))
        for m in MODULES
        for t in _pipeline_targets(m, runtime_only=False)
        if _unit(m) != _unit(t)
    }
    mutual = sorted((a, b) for a, b in edges if (b, a) in edges and a < b)
    assert mutual == []


def test_sandbox_and_schemas_import_nothing_from_pipeline():
    """The sandbox shares no code with the importer (its contract is HTTP); schemas is a leaf."""
    offenders = [
        p.relative_to(ROOT).as_posix()
        for folder in ("sandbox", "schemas")
        for p in sorted((ROOT / folder).rglob("*.py"))
        if any(n.startswith("pipeline") for n in _imports(p, runtime_only=False))
    ]
    assert offenders == []


def test_cli_modules_stay_thin():
    """cli/ imports no pandas, pandera, httpx or sqlite3 at module level."""
    heavy = {"pandas", "httpx", "sqlite3", "pandera", "matplotlib"}
    offenders = {}
    for module, path in MODULES.items():
        if _unit(module) != "cli":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top: set[str] = set()
        for node in tree.body:
            if isinstance(node, ast.Import):
                top.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                top.add(node.module.split(".")[0])
        if top & heavy:
            offenders[module] = sorted(top & heavy)
    assert offenders == {}


def test_only_config_reads_the_environment():
    """os.environ / getenv appear only in config.py (settings are read once)."""
    offenders = [
        module
        for module, path in MODULES.items()
        if module != "pipeline.config"
        and ("os.environ" in (text := path.read_text(encoding="utf-8")) or "getenv(" in text)
    ]
    assert offenders == []


def test_public_api_is_sorted_and_resolves():
    """pipeline.__all__ is sorted and every name in it can be imported."""
    import pipeline

    assert pipeline.__all__ == sorted(pipeline.__all__)
    for name in pipeline.__all__:
        assert getattr(pipeline, name) is not None, name


def test_tests_never_import_bench():
    """bench may import ``tests.support`` (and the fixtures' factories); nothing under tests/
    imports ``bench``: shared helpers live in ``tests/support.py``, so the two never import each
    other."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(bench)
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if (bench := {n for n in _imports(path, runtime_only=False) if n.split(".")[0] == "bench"})
    }
    assert offenders == {}
