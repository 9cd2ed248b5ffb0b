"""The package's import graph runs one way: no cycles, not even through
imports inside functions, and no private (underscore) name imported from
another module. Also keeps torch and Qt out of the core's import time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import napari_colorize

PACKAGE = Path(napari_colorize.__file__).parent


def imports_of(path: Path) -> list[tuple[str, list[str]]]:
    """(module imported from the package, names imported) for every relative import in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.append((node.module, [a.name for a in node.names]))
            else:  # from . import x: a module, or the package's own __version__
                found += [(a.name, []) for a in node.names if a.name != "__version__"]
    return found


def graph() -> dict[str, set[str]]:
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    edges = {}
    for path in PACKAGE.glob("*.py"):
        targets = {module.split(".")[0] for module, _ in imports_of(path)}
        # "from . import __version__" is the package itself, not a module
        edges[path.stem] = {t for t in targets if t in modules and t != path.stem}
    return edges


def test_no_import_cycles():
    edges = graph()
    edges["__init__"] = set()  # the package entry imports the faces' core; modules take only __version__ from it
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(target) :] + [target]))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_no_private_name_is_imported_across_modules():
    offenders = []
    for path in PACKAGE.glob("*.py"):
        for module, names in imports_of(path):
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            if private or (module.startswith("_") and module not in ("__init__",)):
                offenders.append(f"{path.name}: from .{module} import {', '.join(names) or module}")
    assert not offenders, offenders


def test_the_core_imports_without_torch_or_qt():
    code = (
        "import sys, napari_colorize, napari_colorize.cli, napari_colorize.options, napari_colorize.jobs, napari_colorize.layer_geometry;"
        "bad = [m for m in ('torch', 'qtpy', 'PyQt5', 'PyQt6', 'PySide6', 'napari') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
