"""The package's dependencies point inward, and stay so.

Read from the source (every import, function-level ones too; `if TYPE_CHECKING:` blocks aside):
each subpackage imports only from layers below its own, nothing but the CLI and the demo imports
the emulator, and no modules import each other in a cycle. Then, in fresh interpreters: every
module imports alone, and what `token-exchange serve` loads holds no emulator or demo module.
(aiohttp's tests/test_circular_imports.py is the model.)
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "appwrite_token_exchange"
SOURCE = Path(__file__).resolve().parent.parent / "service" / PACKAGE
# Lowest first: a part may import from its own layer's parts only if it is that part itself.
LAYERS: list[set[str]] = [
    {"(root)", "problems", "paths", "rate_limit", "lifecycle", "keys"},
    {"env", "capacity", "process_memory"},
    {"observability"},
    {"state"},
    {"settings"},
    {"appwrite"},
    {"access"},
    {"edge", "relay", "exchange", "revocation"},
    {"app", "check_config"},
    {"demo"},
    {"cli"},
    {"__main__"},
]
# The emulator stands beside the service, not under it: only these parts may import it.
EMULATOR_USERS = {"cli", "demo", "emulator"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    """The subpackage or top-level module a module belongs to ('(root)' for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(root)"


class _Imports(ast.NodeVisitor):
    def __init__(self, modules: set[str]) -> None:
        self.modules = modules
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            for statement in node.orelse:
                self.visit(statement)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found |= {alias.name for alias in node.names if alias.name.startswith(PACKAGE)}

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.module.startswith(PACKAGE):
            submodules = {f"{node.module}.{alias.name}" for alias in node.names}
            # `from package import a, b` with a and b modules reaches those modules; anything else
            # (a name defined in the package's __init__) reaches the package itself.
            self.found |= submodules if submodules <= self.modules else {node.module}


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in SOURCE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        visitor = _Imports(set(modules))
        visitor.visit(ast.parse(path.read_text()))
        graph[module] = {name for name in visitor.found if name in modules and name != module}
    return graph


GRAPH = import_graph()


def layer_of(part: str) -> int:
    return next(index for index, layer in enumerate(LAYERS) if part in layer)


def test_every_part_has_a_layer() -> None:
    parts = {part_of(module) for module in GRAPH} - {"emulator"}
    assert sorted(parts - set().union(*LAYERS)) == []


def layering_violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, imports in sorted(graph.items()):
        part = part_of(module)
        for imported in sorted(imports):
            target = part_of(imported)
            if target == part:
                continue
            if target == "emulator" or part == "emulator":
                if part not in EMULATOR_USERS:
                    found.append(f"{module} imports the emulator ({imported})")
                elif part == "emulator" and target != "(root)":
                    found.append(f"the emulator imports the service ({module} -> {imported})")
            elif layer_of(target) >= layer_of(part):
                found.append(f"{module} ({part}) imports {imported} ({target}), which is not below it")
    return found


def test_dependencies_point_inward() -> None:
    assert layering_violations(GRAPH) == []


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
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
            visit(node)
    return found


def test_no_modules_import_each_other_in_a_cycle() -> None:
    # A package's __init__ importing its own modules is no cycle of concern; its modules importing
    # the package __init__ back would be, and is caught.
    assert cycles(GRAPH) == []


def test_the_checks_catch_what_they_guard() -> None:
    broken = {**GRAPH}
    broken[f"{PACKAGE}.state.store"] = GRAPH[f"{PACKAGE}.state.store"] | {f"{PACKAGE}.access.limits"}
    broken[f"{PACKAGE}.observability.metrics"] = GRAPH[f"{PACKAGE}.observability.metrics"] | {
        f"{PACKAGE}.emulator.config"}
    violations = layering_violations(broken)
    assert any("state.store (state) imports" in line for line in violations)
    assert any("observability.metrics imports the emulator" in line for line in violations)
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.subprocess
def test_every_module_imports_alone() -> None:
    # One interpreter, the package forgotten before each import: an import that works only after
    # another module was loaded first (a hidden cycle, a missing import) fails here.
    code = f"""
import importlib, json, sys
failed = {{}}
for name in {sorted(set(GRAPH) - {f"{PACKAGE}.__main__"})!r}:  # __main__ runs the CLI
    for loaded in [m for m in sys.modules if m == {PACKAGE!r} or m.startswith({PACKAGE + '.'!r})]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as error:
        failed[name] = repr(error)
print(json.dumps(failed))
"""
    assert json.loads(run_python(code)) == {}


def loaded_by(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    return {name for name in json.loads(run_python(code)) if name.startswith(PACKAGE)}


def _parts(modules: set[str]) -> Iterator[str]:
    return (part_of(module) for module in modules)


@pytest.mark.subprocess
def test_serve_loads_no_emulator_or_demo_module() -> None:
    # What `token-exchange serve` imports: the CLI module and what it loads at the top.
    loaded = loaded_by(f"import {PACKAGE}.cli")
    assert f"{PACKAGE}.app" in loaded and f"{PACKAGE}.edge.http_server" in loaded
    assert sorted(module for module in loaded if part_of(module) in ("emulator", "demo")) == []


@pytest.mark.subprocess
def test_the_log_configuration_loads_neither_redis_nor_a_route() -> None:
    loaded = loaded_by(f"import {PACKAGE}.observability.logs")
    # `keys` names what the access log reads from a request (the client IP); it loads no route.
    assert set(_parts(loaded)) <= {"(root)", "observability", "paths", "problems", "keys"}
    code = f"import {PACKAGE}.observability.logs, {PACKAGE}.settings, sys; print('redis' in sys.modules)"
    assert run_python(code).strip() == "False"


@pytest.mark.subprocess
@pytest.mark.parametrize("part", ["emulator", "demo"])
def test_the_demo_and_emulator_still_load_where_they_are_used(part: str) -> None:
    # The CLI loads them for `demo` and `emulator` (lazily), so the rules above hide no breakage.
    loaded = loaded_by(f"import {PACKAGE}.cli\nimport {PACKAGE}.demo.run")
    assert any(part_of(module) == part for module in loaded)
