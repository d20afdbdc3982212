"""The import rule of sio_core: imports point one way, down the layers, and never in a circle.

::

    cli, supervisor, control, echo, demo/, sio_core/__init__  (and any other top module)
      socketio/     the user API
        engine/     the per-worker Engine.IO server
          http/     HTTP/1.1: nothing of Engine.IO
          stores/   the bus between workers (beside http: neither imports the other)
            protocol/   sans-I/O codecs and the session state machine
              config.py, exceptions.py

A module may import its own layer and the layers below it (``ALLOWED``), never one above.
Every import counts, wherever it stands (in a function too), read from the source with
``ast``. Circles are looked for among all of them, with one exception: an import under
``if TYPE_CHECKING:`` between two modules of ``socketio/`` may close a circle. Namespace,
socket, client, adapter, broadcast and cluster name each other's types (a Socket has its
Namespace, a Namespace its Sockets); at run time none of those imports happens. Anywhere
else a type-only import counts like any other, and a type-only import that points up is
refused too.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

PACKAGE = "sio_core"

#: each layer, and the layers it may import besides its own
ALLOWED: dict[str, frozenset[str]] = {
    "base": frozenset(),
    "protocol": frozenset({"base"}),
    "stores": frozenset({"base", "protocol"}),
    "http": frozenset({"base", "protocol"}),
    "engine": frozenset({"base", "protocol", "stores", "http"}),
    "socketio": frozenset({"base", "protocol", "stores", "http", "engine"}),
    "top": frozenset({"base", "protocol", "stores", "http", "engine", "socketio"}),
}
#: the package's modules and subpackages that are a layer of their own; anything else is top
LAYERS = {"config": "base", "exceptions": "base", "protocol": "protocol", "stores": "stores",
          "http": "http", "engine": "engine", "socketio": "socketio"}
#: where a type-only import may close a circle (see the module's docstring)
TYPE_CIRCLES_ALLOWED = "socketio"


@dataclass(frozen=True)
class Import:
    source: str  # dotted module names
    target: str
    line: int
    type_only: bool  # under ``if TYPE_CHECKING:``

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} (line {self.line})"


def modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module of the package under ``root``."""
    found = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def layer_of(module: str) -> str:
    parts = module.split(".")
    return LAYERS.get(parts[1], "top") if len(parts) > 1 else "top"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(module: str, path: Path, known: set[str]) -> list[Import]:
    """The package-internal imports of one module, each resolved to the module it loads
    (``from . import polling`` is the module ``...engine.polling``; ``from .socket import
    EngineSocket`` is ``...engine.socket``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def resolve(base: str, names: list[str], line: int, type_only: bool) -> None:
        for name in names:
            target = f"{base}.{name}" if f"{base}.{name}" in known else base
            if target in known and target != module:
                found.append(Import(module, target, line, type_only))

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known and alias.name != module:
                    found.append(Import(module, alias.name, node.lineno, type_only))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            if base == PACKAGE or base.startswith(PACKAGE + "."):
                resolve(base, [alias.name for alias in node.names], node.lineno, type_only)
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


def all_imports(root: Path) -> list[Import]:
    found = modules(root)
    known = set(found)
    return [imp for module, path in found.items() for imp in imports_of(module, path, known)]


def upward(imports: list[Import]) -> list[str]:
    """The imports that run back up (or sideways between http and stores)."""
    bad = []
    for imp in imports:
        source, target = layer_of(imp.source), layer_of(imp.target)
        if source != target and target not in ALLOWED[source]:
            bad.append(f"{imp}: {source} may not import {target}")
    return bad


def circles(imports: list[Import]) -> list[list[str]]:
    """Every group of modules that import each other in a loop (Tarjan's strongly connected
    components), type-only imports inside TYPE_CIRCLES_ALLOWED left out."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.type_only and layer_of(imp.source) == layer_of(imp.target) \
                == TYPE_CIRCLES_ALLOWED:
            continue
        graph.setdefault(imp.source, set()).add(imp.target)
        graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return groups


# --- the rule, on sio_core -----------------------------------------------------------------------


def test_every_module_is_read() -> None:
    found = modules(REPO_ROOT)
    for name in ("sio_core.engine.server", "sio_core.http.connection", "sio_core.socketio.server",
                 "sio_core.stores.base", "sio_core.protocol.session", "sio_core.cli"):
        assert name in found, sorted(found)
    imports = all_imports(REPO_ROOT)
    # a few arrows that must be seen, or the reading is broken
    arrows = {(imp.source, imp.target) for imp in imports}
    assert ("sio_core.engine.server", "sio_core.engine.polling") in arrows  # from . import x
    assert ("sio_core.engine.polling", "sio_core.engine.socket") in arrows  # from .x import y
    assert ("sio_core.socketio.server", "sio_core.engine.server") in arrows  # from ..x.y import
    assert ("sio_core.cli", "sio_core.engine.server") in arrows  # inside a function


def test_no_import_runs_back_up() -> None:
    assert upward(all_imports(REPO_ROOT)) == []


def test_no_import_circle() -> None:
    assert circles(all_imports(REPO_ROOT)) == []


# --- the checks themselves, on a small package of each fault -------------------------------------


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / PACKAGE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for directory in {p.parent for p in (root / PACKAGE).rglob("*.py")}:
        (directory / "__init__.py").touch()
    return root


@pytest.mark.parametrize(("files", "up", "loops"), [
    ({"engine/a.py": "from ..http import b\n", "http/b.py": ""}, [], []),
    # the engine reaching up into the Socket.IO layer, at run time or only for types
    ({"engine/a.py": "def f():\n    from ..socketio.b import X\n", "socketio/b.py": "X = 1\n"},
     ["sio_core.engine.a -> sio_core.socketio.b"], []),
    ({"engine/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                     "    from ..socketio import b\n", "socketio/b.py": ""},
     ["sio_core.engine.a -> sio_core.socketio.b"], []),
    # sideways: a store that knows HTTP
    ({"stores/a.py": "import sio_core.http.b\n", "http/b.py": ""},
     ["sio_core.stores.a -> sio_core.http.b"], []),
    # a circle inside a layer (the old forwarding <-> server)
    ({"engine/a.py": "from .b import X\n", "engine/b.py": "from . import a\nX = 1\n"},
     [], [["sio_core.engine.a", "sio_core.engine.b"]]),
    # type-only imports may close a circle inside socketio/, nowhere else
    ({"socketio/a.py": "from .b import X\n",
      "socketio/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import Y\n"
                       "X = 1\n"}, [], []),
    ({"engine/a.py": "from .b import X\n",
      "engine/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import Y\n"
                     "X = 1\n"}, [], [["sio_core.engine.a", "sio_core.engine.b"]]),
])  # fmt: skip
def test_the_checks_find_each_fault(tmp_path: Path, files: dict[str, str], up: list[str],
                                    loops: list[list[str]]) -> None:
    imports = all_imports(write(tmp_path, files))
    assert [line.split(" (")[0] for line in upward(imports)] == up
    assert circles(imports) == loops
