"""The layers of docs/code_map.md, enforced: no module imports a higher layer, no import circle.

Every import of every colorlib module is read with ``ast`` (also imports inside functions,
which run later but are dependencies all the same) and each module is placed in the layer
that docs/code_map.md's "Layers" list gives it. A module the list does not name fails, so a
new module must be placed before it can be merged.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "colorlib"
CODE_MAP = ROOT / "docs" / "code_map.md"

# Imports of a higher layer allowed for now, each (importer, imported) with its reason. Issue
# 21's refactor emptied it (the loop drew its validation images: now a teaching callback). An
# entry the code no longer needs fails the test below, so the list only ever shrinks.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


def module_files() -> dict[str, Path]:
    """Every module of the package by its dotted name inside colorlib ("train", "__init__")."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _package_of(name: str, path: Path) -> list[str]:
    """The package a module's relative imports start from, as parts inside colorlib."""
    parts = [] if name == "__init__" else name.split(".")
    return parts if path.name == "__init__.py" else parts[:-1]


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The colorlib modules that module ``name`` imports, anywhere in its source."""
    found: set[str] = set()

    def add(parts: list[str], names: list[str]) -> None:
        """``from <parts> import <names>``: each name that is a module, else the module itself."""
        base = ".".join(parts)
        subs = [f"{base}.{n}" if base else n for n in names]
        submodules = [sub for sub in subs if sub in modules]  # ``from . import distributed``
        found.update(submodules)
        if len(submodules) < len(names) or not names:
            found.add(base or "__init__")

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names]
            if node.level:
                parts = _package_of(name, path)
                parts = parts[: len(parts) - (node.level - 1)]
                parts += node.module.split(".") if node.module else []
            elif node.module and (node.module == "colorlib" or node.module.startswith("colorlib.")):
                parts = node.module.split(".")[1:]
            else:
                continue
            for cut in range(len(parts), -1, -1):  # the longest prefix that is a module
                if ".".join(parts[:cut]) in modules or cut == 0:
                    add(parts[:cut], names if cut == len(parts) else [])
                    break
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("colorlib."):
                    parts = alias.name.split(".")[1:]
                    while parts and ".".join(parts) not in modules:
                        parts.pop()
                    found.add(".".join(parts) or "__init__")
                elif alias.name == "colorlib":
                    found.add("__init__")
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def layers_of_code_map() -> tuple[list[str], dict[str, int]]:
    """(layer names in order, {module: layer index}) from code_map.md's "Layers" list.

    Each layer names its folder (`system/`): every module inside belongs to that layer, so the
    folder layout is the architecture. A module outside the folders (`cli`) is named itself.
    """
    text = CODE_MAP.read_text(encoding="utf-8")
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    modules = set(module_files())
    names, layer_of = [], {}
    for line in section.splitlines():
        match = re.match(r"\d+\. \*\*(.+?)\*\*: (.+)$", line)
        if not match:
            continue
        names.append(match.group(1))
        for entry in re.findall(r"`([\w.]+/?)`", match.group(2)):
            folder = entry.rstrip("/")
            members = ({m for m in modules if m == folder or m.startswith(folder + ".")}
                       if entry.endswith("/") else {entry})
            assert members, f"code_map.md names {entry}, which is no module or folder of colorlib"
            for module in members:
                assert module not in layer_of, f"code_map.md places {module} in two layers"
                layer_of[module] = len(names) - 1
    return names, layer_of


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def _path_within(graph: dict[str, set[str]], group: list[str]) -> str:
    """One circle through ``group``, written out: a -> b -> ... -> a."""
    start, members = group[0], set(group)
    previous = {start: None}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & members):
            if nxt == start:
                path = [node]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return " -> ".join([start, *reversed(path[:-1]), start]) if len(path) > 1 \
                    else f"{start} -> {start}"
            if nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    return ", ".join(group)


# ------------------------------------------------------------------ tests
def test_every_module_is_in_exactly_one_layer_of_the_code_map():
    names, layer_of = layers_of_code_map()
    assert len(names) >= 5, "code_map.md's Layers list was not found or is too short"
    modules = set(module_files())
    unassigned = sorted(modules - set(layer_of))
    assert not unassigned, (f"modules in no layer of docs/code_map.md: {unassigned}; add each "
                            "to the Layers list")
    unknown = sorted(set(layer_of) - modules)
    assert not unknown, f"docs/code_map.md's Layers list names modules that do not exist: {unknown}"


def test_no_module_imports_a_higher_layer():
    names, layer_of = layers_of_code_map()
    graph = import_graph()
    upward = []
    for importer, imported in sorted((a, b) for a, targets in graph.items() for b in targets):
        if importer not in layer_of or imported not in layer_of:
            continue  # reported by the test above
        if layer_of[imported] > layer_of[importer] and (importer, imported) not in KNOWN_EXCEPTIONS:
            upward.append(f"{importer} ({names[layer_of[importer]]}) imports {imported} "
                          f"({names[layer_of[imported]]})")
    assert not upward, "imports of a higher layer:\n" + "\n".join(upward)


def test_the_known_exceptions_still_exist_and_are_upward():
    """An exception the code no longer needs must leave the list (it only shrinks)."""
    _, layer_of = layers_of_code_map()
    graph = import_graph()
    for importer, imported in KNOWN_EXCEPTIONS:
        assert imported in graph.get(importer, set()), (
            f"{importer} no longer imports {imported}: remove it from KNOWN_EXCEPTIONS")
        assert layer_of[imported] > layer_of[importer], (
            f"{importer} -> {imported} is no longer upward: remove it from KNOWN_EXCEPTIONS")


def test_no_import_circles():
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import circles:\n" + "\n".join(
        f"{', '.join(group)} (e.g. {_path_within(graph, group)})" for group in found)


@pytest.mark.parametrize("source, expected", [
    ("from . import distributed\nfrom . import __version__\n", {"distributed", "__init__"}),
    ("def f():\n    from .checkpoint import load_checkpoint\n", {"checkpoint"}),
    ("import colorlib.photos.lab\nfrom colorlib.photos.image_files import load_rgb\n",
     {"photos.lab", "photos.image_files"}),
    ("from colorlib import metrics\nimport numpy\nfrom .. import x\n", {"metrics", "__init__"}),
])
def test_imports_are_read_inside_functions_and_in_every_form(tmp_path, source, expected):
    path = tmp_path / "train.py"
    path.write_text(source)
    modules = {"__init__", "distributed", "checkpoint", "photos.lab", "photos.image_files",
               "metrics", "train"}
    assert imports_of("train", path, modules) == expected


def test_a_circle_is_found_and_written_out():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert _path_within(graph, ["a", "b", "c"]) == "a -> b -> c -> a"
