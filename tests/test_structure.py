"""Structure: the layers docs/CONTRIBUTING.md describes are the layers of the code, no import cycle among
``virnucpro`` modules, and no module over 500 lines.

Every ``import`` statement counts, including those inside functions: a deferred import hides a cycle from the
interpreter, not from the reader (``models/esm.py`` ↔ ``models/convert.py`` was one).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import virnucpro

PACKAGE = Path(virnucpro.__file__).resolve().parent


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module → the ``virnucpro`` modules it imports (``from a import b`` counts ``a.b`` when that is a module)."""
    files = {_module_name(p, package): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        targets: set[str] = set()
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_cycle_finder_sees_deferred_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "virnucpro"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "models" / "__init__.py").write_text("")
    (pkg / "models" / "a.py").write_text("from virnucpro.models.b import x\n")
    (pkg / "models" / "b.py").write_text("def f():\n    from virnucpro.models import a\n")
    (pkg / "models" / "c.py").write_text("from . import a\n")
    graph = import_graph(pkg)
    assert graph["virnucpro.models.c"] == {"virnucpro.models.a"}
    assert find_cycle(graph) == ["virnucpro.models.a", "virnucpro.models.b", "virnucpro.models.a"]


def test_no_import_cycle_in_virnucpro() -> None:
    assert find_cycle(import_graph()) is None


def test_modules_stay_small() -> None:
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 500} == {}


CONTRIBUTING = PACKAGE.parent / "docs" / "CONTRIBUTING.md"


def documented_layers(text: str) -> dict[str, int]:
    """module → layer number, from the layer table of docs/CONTRIBUTING.md (``__init__`` is the package itself)."""
    layers: dict[str, int] = {}
    for number, modules in re.findall(r"^\|\s*(\d+) [^|]+\|\s*((?:`[\w.]+`\s*)+)\|", text, re.MULTILINE):
        for name in re.findall(r"`([\w.]+)`", modules):
            full = "virnucpro" if name == "__init__" else f"virnucpro.{name}"
            assert full not in layers, f"{name} is listed twice in the layer table"
            layers[full] = int(number)
    return layers


def layer_violations(graph: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    """Imports that go from a lower layer to a higher one."""
    return sorted(f"{a} (layer {layers[a]}) imports {b} (layer {layers[b]})"
                  for a, targets in graph.items() for b in targets if layers[b] > layers[a])


def test_layer_table_lists_every_module_once_and_the_imports_follow_it() -> None:
    graph = import_graph()
    layers = documented_layers(CONTRIBUTING.read_text())
    assert set(layers) == set(graph), (
        f"not in the table: {sorted(set(graph) - set(layers))}; no such module: {sorted(set(layers) - set(graph))}")
    assert layer_violations(graph, layers) == []


def test_layer_check_sees_an_import_against_the_order() -> None:
    text = "| 1 low | `a` |\n| 2 high | `b` |\n"
    layers = documented_layers(text)
    assert layers == {"virnucpro.a": 1, "virnucpro.b": 2}
    assert layer_violations({"virnucpro.a": {"virnucpro.b"}, "virnucpro.b": set()}, layers) == [
        "virnucpro.a (layer 1) imports virnucpro.b (layer 2)"]
    assert layer_violations({"virnucpro.b": {"virnucpro.a"}, "virnucpro.a": set()}, layers) == []
