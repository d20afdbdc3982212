"""Which build runs (sio_core/build.py): the compiled modules' extensions found beside their
sources, and those whose source was edited after the build (the extension runs, not the
edit: ``serve`` warns). In a stand-in package directory; the real compiled build is
tests/test_packaging.py's."""

from __future__ import annotations

import ast
import dataclasses
import importlib.machinery
import os
import re
import sys
from pathlib import Path

import pytest

from sio_core import build
from sio_core.http import messages as http_messages
from sio_core.protocol import engineio
from sio_core.protocol import socketio as sio_protocol
from sio_core.socketio import adapter, handlers, socket

SUFFIX = next(s for s in importlib.machinery.EXTENSION_SUFFIXES if s.startswith(".cpython"))


def test_pure_compiled_and_stale_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "PACKAGE", tmp_path)
    (tmp_path / "engine").mkdir()
    for name in ("engine/socket", "engine/polling", "cli"):
        (tmp_path / f"{name}.py").write_text("")
    assert build.compiled() == [] and build.stale() == []
    assert build.summary().startswith("pure Python")

    for name in ("engine/socket", "engine/polling"):
        (tmp_path / f"{name}{SUFFIX}").write_bytes(b"")
        os.utime(tmp_path / f"{name}.py", (1_000, 1_000))
        os.utime(tmp_path / f"{name}{SUFFIX}", (2_000, 2_000))
    assert build.summary() == "compiled with mypyc (2 modules)"
    assert build.stale() == []
    os.utime(tmp_path / "engine/polling.py", (3_000, 3_000))  # edited after the build
    assert build.stale() == [tmp_path / "engine/polling.py"]


def test_serve_says_which_build_and_warns_of_an_edit_after_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(build, "PACKAGE", tmp_path / "sio_core")
    (tmp_path / "sio_core").mkdir()
    (tmp_path / "sio_core" / "cli.py").write_text("")
    caplog.set_level("INFO", logger="sio_core")
    build.announce()
    assert [r.getMessage() for r in caplog.records] == [build.summary()]
    caplog.clear()
    (tmp_path / "sio_core" / f"cli{SUFFIX}").write_bytes(b"")
    os.utime(tmp_path / "sio_core" / f"cli{SUFFIX}", (1_000, 1_000))
    monkeypatch.setenv(build.PURE, "1")  # the build is there, and not used
    build.announce()
    summary, warning = caplog.records
    assert summary.getMessage().startswith("pure Python (SIO_CORE_PURE=1")
    assert warning.levelname == "WARNING" and "sio_core/cli.py" in warning.getMessage()


def test_sio_core_pure_finds_the_sources_of_sio_core_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    finder = build._SourcesFirst
    engine = str(build.PACKAGE / "engine")
    spec = finder.find_spec("sio_core.engine.socket", [engine])
    assert spec is not None and spec.origin == str(build.PACKAGE / "engine" / "socket.py")
    package = finder.find_spec("sio_core.engine", [str(build.PACKAGE)])
    assert package is not None and package.submodule_search_locations == [engine]
    assert finder.find_spec("sio_core.engine.nothing", [engine]) is None
    assert finder.find_spec("json.decoder", [engine]) is None  # not ours
    assert finder.find_spec("sio_core", None) is None  # the top level: the usual finders
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    build.prefer_sources()
    build.prefer_sources()
    assert sum(isinstance(f, finder) for f in sys.meta_path) == 1
    assert isinstance(sys.meta_path[0], finder)


def compiled_sources() -> list[Path]:
    """setup.py's COMPILED: the modules mypyc compiles."""
    root = Path(__file__).resolve().parents[1]
    text = (root / "setup.py").read_text()
    listed = text.split("COMPILED = ", 1)[1].split(")]", 1)[0]
    return [root / "sio_core" / f"{name}.py" for name in re.findall(r'"([a-z_/]+)"', listed)]


def test_no_compiled_coroutine_awaits_in_an_except_or_finally_block() -> None:
    """A compiled coroutine that awaits in an except block, after an exception a future
    raised, leaves that exception set as the one being handled on the thread, for every
    callback the loop runs later (found: EngineServer.start with an unreachable Redis; then
    a header flood was answered 400, not 431, because Python made the leaked exception the
    __context__ httptools reports a refusal by). test_packaging's probe runs that case on
    the compiled wheel; this holds every compiled module to the rule that avoids it."""
    found = []
    sources = compiled_sources()
    assert len(sources) >= 10 and all(p.is_file() for p in sources), sources
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Try | ast.TryStar):
                blocks = [*node.finalbody, *(s for h in node.handlers for s in h.body)]
                found += [f"{path.name}:{inner.lineno}" for block in blocks
                          for inner in ast.walk(block)
                          if isinstance(inner, ast.Await | ast.AsyncWith | ast.AsyncFor)]
    assert found == []


#: a value for each field, none its default (typed: the compiled build checks the types)
WRITTEN_OUT: list[tuple[type, dict[str, object]]] = [
    (engineio.Packet, {"type": engineio.PacketType.NOOP, "data": "d", "ws_frame": b"f",
                       "ws_deflated": b"z", "compress": False}),
    (sio_protocol.Packet, {"type": sio_protocol.PacketType.EVENT, "namespace": "/n",
                           "data": ["x"], "id": 7}),
    (http_messages.Request, {"method": "PUT", "path": "/p", "query": {"q": "1"},
                             "headers": {"h": "v"}, "body": b"b", "client": ("h", 1),
                             "secure": True, "raw_headers": [(b"h", b"v")],
                             "raw_url": b"/p?q=1", "http_version": "1.0",
                             "keep_alive": False, "upgrade": True, "trailing": b"t"}),
    (http_messages.Response, {"status": 404, "headers": [("a", "b")], "body": b"x",
                              "close": True}),
    (handlers.Listener, {"fn": print, "once": True, "arity": 2, "ack": "ack"}),
    (adapter.BroadcastOptions, {"rooms": frozenset("r"), "except_rooms": frozenset("e"),
                                "volatile": True, "local": True, "timeout": 1.5,
                                "compress": False}),
    (socket.Handshake, {"headers": {"h": "v"}, "query": {"q": "1"}, "auth": {"a": 1},
                        "address": "::1", "time": "now", "issued": 1, "url": "/u",
                        "secure": True, "xdomain": True, "extra": {"e": 1}}),
]


@pytest.mark.parametrize(("cls", "given"), WRITTEN_OUT, ids=lambda v: getattr(v, "__module__", ""))
def test_a_written_out_init_sets_every_field(cls: type, given: dict[str, object]) -> None:
    """The packets' and HTTP messages' ``__init__`` is written out rather than generated
    (protocol/engineio.py's Packet says why): each field, given by keyword, is what the
    object holds, and each default is the dataclass's."""
    fields = dataclasses.fields(cls)
    assert [f.name for f in fields] == list(given)
    for made in (cls(**given), cls(*given.values())):  # by keyword, and in order
        assert {f.name: getattr(made, f.name) for f in fields} == given
    required = {f.name: given[f.name] for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    made = cls(**required)
    for f in fields:
        if f.name not in required:
            default = f.default if f.default is not dataclasses.MISSING \
                else f.default_factory()
            assert getattr(made, f.name) == default != given[f.name], f.name
