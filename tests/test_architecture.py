"""The house rules of lab/ (issue 9): layers only import downwards, no import cycle anywhere, no
lab import hidden inside a function, and few top-level packages.

The contracts live in pyproject.toml ([tool.importlinter]); ``lint-imports`` checks them here, in
``tox -e imports`` and in ``make lint``. Imports under ``if TYPE_CHECKING:`` count like any other.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "lab"
CONTRACTS = ("lab's packages import only downwards", "no import cycle between the modules of any package of lab")
MAX_TOP_LEVEL = 17  # the issue says "about 12"; errors, model, api, util: small shared foundations; executors: issue 16


def lab_graph() -> grimp.ImportGraph:
    return grimp.build_graph("lab", exclude_type_checking_imports=False, cache_dir=None)


def test_the_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in CONTRACTS:
        assert f"{name} KEPT" in result.stdout
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every group of modules that import each other, directly or through others (Tarjan's strongly
    connected components; a package's __init__ counts as a module of its own)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = [stack.pop()]
            while group[-1] != module:
                group.append(stack.pop())
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_no_two_modules_of_lab_import_each_other() -> None:
    # acyclic_siblings compares the children of each package; this also catches a package's
    # __init__ and one of its own modules importing each other
    assert import_cycles(lab_graph()) == []


def test_the_cycle_finder_finds_a_cycle_through_a_package_init() -> None:
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(module)
    graph.add_import(importer="p", imported="p.a")
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p")
    graph.add_import(importer="p.c", imported="p.a")
    assert import_cycles(graph) == [["p", "p.a", "p.b"]]


def test_no_lab_import_is_hidden_inside_a_function_or_a_type_checking_block() -> None:
    hidden = []
    for path in sorted(LAB.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        top = set(map(id, tree.body))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else ["." * node.level]
            else:
                continue
            if id(node) not in top and any(n == "lab" or n.startswith(("lab.", ".")) for n in names):
                hidden.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert hidden == []


def test_the_check_runner_shipped_to_sandboxes_imports_nothing_of_lab() -> None:
    assert lab_graph().find_modules_directly_imported_by("lab.checks.runner") == set()


def test_lab_has_few_top_level_modules_and_packages() -> None:
    names = sorted(p.stem for p in LAB.iterdir()
                   if (p.is_dir() and (p / "__init__.py").is_file())
                   or (p.suffix == ".py" and p.name not in ("__init__.py", "__main__.py")))
    assert "errors" in names and "model" in names and "cli" in names
    assert len(names) <= MAX_TOP_LEVEL, names
