"""The package's layers, checked on the source: who may import whom, and no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "astrosnn"

# A layer may import itself and what is listed here (plus astrosnn.errors / runinfo / rundir, the leaves).
ALLOWED = {
    "core": set(),
    "data": set(),
    "nalsm": {"core", "data", "viz"},
    "lm": {"core", "data", "viz"},
    "viz": set(),
    "hf": {"lm", "core", "data"},
    "commands": {"core", "data", "nalsm", "lm", "viz", "hf"},
}
LEAVES = {"errors", "runinfo", "rundir", "_version"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every astrosnn module this file imports, at any depth, except under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("astrosnn"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if mod.startswith("astrosnn"):
                found.add(mod)
                found.update(f"{mod}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


MODULES = {_module_name(p): p for p in SRC.rglob("*.py")}
GRAPH = {
    name: {m for m in _imports(path) if m in MODULES and m != name} for name, path in MODULES.items()
}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_layers_import_only_what_lies_below(module):
    layer = _layer(module)
    if layer not in ALLOWED:
        return  # the top level (cli, __main__, errors, runinfo, the liquid alias) may import anything
    for target in GRAPH[module]:
        other = _layer(target)
        if other in (None, layer) or other in LEAVES:
            continue
        assert other in ALLOWED[layer], f"{module} imports {target}: {layer} must not depend on {other}"


def test_no_import_cycles():
    """Depth-first search over the import graph; a cycle is reported with its members."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if nxt.startswith("astrosnn.liquid"):
                continue  # the old name aliases the new one
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                if not _package_init_edge(cycle):
                    pytest.fail("import cycle: " + " -> ".join(cycle))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def _package_init_edge(cycle: list[str]) -> bool:
    """A package's ``__init__`` re-exporting (lazily) from its own modules is not a cycle of concern."""
    return any(b.startswith(a + ".") for a, b in zip(cycle, cycle[1:]))
