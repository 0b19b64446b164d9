"""radford's import graph, read statically: no cycle, and no import of radford hidden inside a function.

A cycle between modules works only in the order Python happens to meet them, and moving an import inside a
function to break one hides it rather than removing it. So the graph is read from the source: every import
statement of a module (module level, class bodies, ``try`` and ``if`` blocks, and function bodies too, since an
import deferred into a function is still a dependency; not ``if TYPE_CHECKING:``), with relative imports
resolved and ``from package import submodule`` counted as an import of the submodule. Importing ``a.b.c`` runs
``a`` and ``a.b`` first, but a module importing its own parent package is not a cycle Python trips on, so parents
are not edges.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

PACKAGE = "radford"
SOURCE = Path(__file__).resolve().parent.parent / PACKAGE

# Function-local imports of radford modules that stay, each for start-up speed: (module, function) patterns.
LAZY_IMPORTS = {
    ("radford", "__getattr__"): "`import radford` stays light: radford.load imports torch and Lightning on first use",
    ("radford.cli", "main"): "the training commands' LightningCLI (radford.lightning_cli) loads only when one runs",
    ("radford.commands.*", "*"): "`radford --help` imports every command module for its summary line, so a "
    "command's heavy imports wait until it runs",
    ("radford.lightning_cli", "_lightning_cli_class"): "the recipe pre-pass reports a mistake in a recipe before "
    "torch and Lightning load",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(SOURCE.rglob("*.py"))}


def is_type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): imports for type checkers, never run."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(node: ast.AST, function: str | None = None) -> Iterator[tuple[ast.Import | ast.ImportFrom, str | None]]:
    """Every import statement under ``node``, with the function it sits in (None: it runs at import time)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, function
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from imports(child, function or child.name)
        elif is_type_checking(child):
            for statement in child.orelse:
                yield from imports(ast.Module(body=[statement], type_ignores=[]), function)
        else:
            yield from imports(child, function)


def targets(module: str, statement: ast.Import | ast.ImportFrom) -> set[str]:
    """The radford modules an import statement in ``module`` imports."""
    if isinstance(statement, ast.Import):
        names = [alias.name for alias in statement.names]
    else:
        base = statement.module or ""
        if statement.level:
            package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
            for _ in range(statement.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in statement.names]
    return {name for name in names if name in MODULES}


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges[module] = {t for statement, _ in imports(tree) for t in targets(module, statement)}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The cycles of each strongly connected component (Tarjan's algorithm), as module lists ending where they
    start."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in sorted(edges[node]):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:  # node is the root of a component: the stack down to it
            component = set()
            while node not in component:
                component.add(stack.pop())
            if len(component) > 1 or node in edges[node]:
                found.extend(cycles_in(component, edges))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def cycles_in(component: set[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """A shortest cycle through each module of a strongly connected component, each cycle once."""
    found: list[list[str]] = []
    for start in sorted(component):
        cycle = shortest_cycle(start, component, edges)
        first = cycle.index(min(cycle))  # the same cycle read from another of its modules is not new
        rotated = cycle[first:-1] + cycle[:first] + [cycle[first]]
        if rotated not in found:
            found.append(rotated)
    return found


def shortest_cycle(start: str, component: set[str], edges: dict[str, set[str]]) -> list[str]:
    """Breadth-first from ``start`` back to it, inside its strongly connected component."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        successors = []
        for node in frontier:
            for successor in sorted(edges[node] & component):
                if successor == start:
                    return paths[node] + [start]
                if successor not in paths:
                    paths[successor] = paths[node] + [successor]
                    successors.append(successor)
        frontier = successors
    raise AssertionError(f"{start} is on no cycle of {component}")  # every module of a component is on one


def test_the_import_graph_has_no_cycle():
    assert len(MODULES) > 20 and "radford.models.gpt" in MODULES  # the walk found the package
    found = cycles(graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in found)


def lazy_import_allowed(module: str, function: str) -> bool:
    return any(fnmatch(module, m) and fnmatch(function, f) for m, f in LAZY_IMPORTS)


def test_radford_is_imported_in_functions_only_for_start_up_speed():
    hidden = []
    for module, path in MODULES.items():
        for statement, function in imports(ast.parse(path.read_text(encoding="utf-8"))):
            imported = targets(module, statement)
            if function is not None and imported and not lazy_import_allowed(module, function):
                hidden.append(
                    f"{path.relative_to(SOURCE.parent)}:{statement.lineno} in {function}(): "
                    f"{', '.join(sorted(imported))}"
                )
    assert not hidden, (
        "function-local imports of radford (import at module level, or justify in LAZY_IMPORTS):\n" + "\n".join(hidden)
    )


def test_the_walk_resolves_relative_and_submodule_imports():
    """The graph's reading of import statements, checked on statements a module of radford could hold."""

    def read(module: str, source: str) -> set[str]:
        return {t for statement, _ in imports(ast.parse(source)) for t in targets(module, statement)}

    assert read("radford.models.gpt", "from . import clip") == {"radford.models.clip"}
    assert read("radford.models.gpt", "from ..errors import RadfordError") == {"radford.errors"}
    assert read("radford.tokenizers", "from .clip import CLIPTokenizer") == {"radford.tokenizers.clip"}
    assert read("radford.cli", "from radford import recipes, __version__") == {"radford.recipes", "radford"}
    assert read("radford.cli", "import radford.models.gpt as gpt") == {"radford.models.gpt"}
    assert read("radford.cli", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import radford.io") == set()
    assert read("radford.cli", "try:\n    import radford.io\nexcept ImportError:\n    pass") == {"radford.io"}
    assert read("radford.cli", "def main():\n    from radford.io import write_atomically") == {"radford.io"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b", "c"}, "b": {"a"}, "c": {"a"}}) == [["a", "b", "a"], ["a", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
