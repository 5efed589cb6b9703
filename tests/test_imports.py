"""No import cycles inside the package: every import statement of mobilevit_np/ and kernels/ (module level,
inside functions, under TYPE_CHECKING) is an edge, and the graph must have no cycle.

kernels/ installs as mobilevit_np.kernels (setup.cfg), so its files are named that way here. Importing
`mobilevit_np.a.b` also runs the packages' __init__ files; those implicit edges are Python's, not the
code's, and are not counted (else every module would close a loop through mobilevit_np/__init__.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"mobilevit_np": ROOT / "mobilevit_np", "mobilevit_np.kernels": ROOT / "kernels"}


def module_files() -> dict[str, Path]:
    """{dotted module name: file} for every .py of the package."""
    modules = {}
    for package, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_modules(module: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """{package module: line of its first import} for every import statement of `path`, wherever it stands,
    and importlib.import_module("literal") calls."""
    edges: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..y import z
                parts = module.split(".")
                anchor = parts[: len(parts) - node.level + (path.name == "__init__.py")]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # `from pkg import name`: an edge to the submodule pkg.name if there is one, else to pkg
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        elif is_import_module_call(node):
            names = [node.args[0].value]
        else:
            continue
        for name in names:
            if name in modules and name != module:
                edges.setdefault(name, node.lineno)
    return edges


def is_import_module_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )


def import_graph() -> dict[str, dict[str, str]]:
    """{module: {imported package module: "file:line" of the import}}."""
    modules = module_files()
    return {
        module: {
            name: f"{path.relative_to(ROOT)}:{line}" for name, line in imported_modules(module, path, modules).items()
        }
        for module, path in modules.items()
    }


def reachable(graph: dict[str, dict[str, str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def shortest_loop(graph: dict[str, dict[str, str]], start: str) -> list[str] | None:
    """[start, ..., start] by the fewest imports (breadth first), or None when start is on no cycle."""
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node]):
                if nxt == start:
                    back = [node]  # node, its parent, ..., start
                    while back[-1] != start:
                        back.append(parent[back[-1]])
                    return [*reversed(back), start]
                if nxt not in parent:
                    parent[nxt] = node
                    following.append(nxt)
        frontier = following
    return None


def find_cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """One shortest cycle per group of modules that import each other (a strongly connected component)."""
    reach = {module: reachable(graph, module) for module in graph}
    cycles, covered = [], set()
    for module in sorted(graph):
        if module in reach[module] and module not in covered:
            covered |= {other for other in reach[module] if module in reach[other]}
            cycles.append(shortest_loop(graph, module))
    return cycles


def describe(cycle: list[str], graph: dict[str, dict[str, str]]) -> str:
    return "\n".join(f"  {a} -> {b}  ({graph[a][b]})" for a, b in zip(cycle, cycle[1:], strict=False))


def test_the_walk_sees_every_kind_of_import():
    graph = import_graph()
    assert "mobilevit_np.kernels.conv" in graph and "mobilevit_np.checkpoints.hub" in graph
    assert "mobilevit_np.image_processing" in graph["mobilevit_np.postprocess"]  # module level
    assert "mobilevit_np.checkpoints.hub" in graph["mobilevit_np.image_processing"]  # inside a method
    assert "mobilevit_np.losses" in graph["mobilevit_np.modeling"]  # from mobilevit_np import losses
    assert "mobilevit_np" not in graph["mobilevit_np.modeling"]  # ... names the submodule, not the package


def test_relative_imports_and_import_module_calls(tmp_path):
    init = tmp_path / "__init__.py"  # pkg/sub/__init__.py
    init.write_text(
        "from . import a\nfrom .b import thing\nfrom .. import top\nimport importlib\n"
        "def later():\n    importlib.import_module('pkg.c')\n"
    )
    modules = dict.fromkeys(["pkg", "pkg.sub", "pkg.sub.a", "pkg.sub.b", "pkg.c"], init)
    assert imported_modules("pkg.sub", init, modules) == {"pkg.sub.a": 1, "pkg.sub.b": 2, "pkg": 3, "pkg.c": 6}
    plain = tmp_path / "x.py"  # pkg/sub/x.py
    plain.write_text("from . import a\nfrom ..c import name\n")
    assert imported_modules("pkg.sub.x", plain, modules) == {"pkg.sub.a": 1, "pkg.c": 2}


def test_find_cycles_reports_every_loop_once():
    graph = {
        "a": {"b": "a.py:1"},
        "b": {"c": "b.py:2", "a": "b.py:3"},
        "c": {"a": "c.py:4"},
        "d": {"a": "d.py:5", "e": "d.py:6"},
        "e": {"d": "e.py:7"},
        "f": {},
    }
    assert find_cycles(graph) == [["a", "b", "a"], ["d", "e", "d"]]
    assert describe(["d", "e", "d"], graph) == "  d -> e  (d.py:6)\n  e -> d  (e.py:7)"
    assert find_cycles({"a": {"b": "a.py:1"}, "b": {}}) == []


def test_no_import_cycles():
    graph = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n\n".join(describe(cycle, graph) for cycle in cycles)
