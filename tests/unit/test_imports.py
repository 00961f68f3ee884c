"""The import graph: layers import downwards only. No cycle among jobq's modules, counting
imports inside functions (which only hide a cycle until someone moves one to the top); the
store and the worker never import the app or the shell runner; the library never imports
the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.helpers import ROOT


def _modules() -> dict[str, Path]:
    found = {}
    for base, package in ((ROOT / "jobq", "jobq"), (ROOT / "cli", "jobq.cli")):
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The jobq modules ``name`` imports when it runs (not under TYPE_CHECKING)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                targets.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - child.level + 1]
                    source = ".".join(base + ([child.module] if child.module else []))
                else:
                    source = child.module or ""
                for alias in child.names:
                    # A submodule is imported itself; any other name comes from the package.
                    submodule = f"{source}.{alias.name}"
                    targets.add(submodule if submodule in modules else source)
            visit(child)

    visit(ast.parse(path.read_text()))
    return {target for target in targets if target in modules and target != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_no_import_cycle_among_jobqs_modules() -> None:
    graph = _graph()
    assert len(graph) > 40  # the walk found the modules
    assert _cycles(graph) == []


def test_layers_import_downwards_only() -> None:
    graph = _graph()
    for name, targets in graph.items():
        if name.startswith(("jobq.store", "jobq.worker")):
            assert not targets & {"jobq.app", "jobq.shell"}, (name, targets)
        if not name.startswith("jobq.cli"):
            assert not any(target.startswith("jobq.cli") for target in targets), name
        if name.startswith("jobq.store"):
            assert not any(target.startswith("jobq.worker") for target in targets), name
