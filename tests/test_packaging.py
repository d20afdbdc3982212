"""The wheel, installed where there is no checkout and no node: ``python -m sio_core serve`` brings
up the chat demo, with the official client bundle the wheel ships (setup.py, pyproject.toml), and
with ``--admin-ui`` the admin UI's page, which the wheel ships too.

How this works (once for the module):

- the build: the project's files (``git ls-files``, with the ones not yet committed) and the
  client's npm package from node_modules are copied to a temporary directory, and
  ``pip wheel --no-build-isolation`` builds there with this venv's setuptools (offline, and no
  stale ``build/`` of the checkout can slip into the wheel);
- the install: a fresh venv (``--without-pip``, no system site-packages) gets the wheel with this
  venv's pip (``pip --python``). Its dependencies (websockets, httptools, msgpack, redis: the
  wheel's own Requires-Dist, resolved with their markers) are made importable through a ``.pth``
  to a directory that links only those distributions out of this venv, since a test cannot
  download them; the checkout's editable sio_core is not among them, and the test checks that
  the venv imports sio_core from its own site-packages;
- the run: ``python -m sio_core serve`` of that venv, from an empty directory, with PATH holding
  only the venv's bin (no node).

Twice: the pure-Python wheel, and the compiled one (``SIO_CORE_MYPYC=1``: setup.py's hot
modules compiled by mypyc, what scripts/setup.sh installs for the demo), which must import
its extensions, serve the chat page and carry a chat in Chromium alike (the rest of the
suite runs the pure build, whose coverage it measures).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from packaging.requirements import Requirement

from tests.support import NODE_MODULES, REPO_ROOT, ServerProcess, scaled
from tests.test_chat_browser import browser, expect_messages, open_chat, send  # noqa: F401

if TYPE_CHECKING:
    from playwright.async_api import Browser

CLIENT_PACKAGE = NODE_MODULES / "socket.io-client"
ADMIN_UI_PACKAGE = NODE_MODULES / "@socket.io" / "admin-ui"
BUNDLE = ["socket.io.js", "socket.io.js.map", "socket.io.min.js", "socket.io.min.js.map",
          "socket.io.esm.min.js", "socket.io.esm.min.js.map"]


@dataclass(frozen=True)
class Installed:
    wheel: Path
    python: Path
    bin_dir: Path
    compiled: bool


def run(*argv: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=scaled(120), check=False,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{argv}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def build_wheel(work: Path, compiled: bool) -> Path:
    source = work / "source"
    listed = run("git", "ls-files", "--cached", "--others", "--exclude-standard", "-z",
                 cwd=REPO_ROOT)
    for name in filter(None, listed.split("\0")):
        if (REPO_ROOT / name).is_file():  # listed but deleted in the work tree: not a file
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, source / name)
    shutil.copytree(CLIENT_PACKAGE, source / "node_modules" / "socket.io-client", symlinks=True)
    shutil.copytree(ADMIN_UI_PACKAGE, source / "node_modules" / "@socket.io" / "admin-ui",
                    symlinks=True)
    out = work / "dist"
    run(sys.executable, "-m", "pip", "wheel", source, "--no-deps", "--no-build-isolation",
        "--no-index", "-q", "-w", out, env={"SIO_CORE_MYPYC": "1" if compiled else "0"})
    [wheel] = out.glob("sio_core-*.whl")
    return wheel


def requirements_closure(wheel: Path) -> list[importlib.metadata.Distribution]:
    """The installed distributions the wheel needs (its Requires-Dist, no extras, recursively)."""
    with zipfile.ZipFile(wheel) as archive:
        [metadata] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        wanted = [line.partition(":")[2].strip()
                  for line in archive.read(metadata).decode().splitlines()
                  if line.startswith("Requires-Dist:")]
    found: dict[str, importlib.metadata.Distribution] = {}
    while wanted:
        requirement = Requirement(wanted.pop())
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = requirement.name.lower()
        if name not in found:
            found[name] = importlib.metadata.distribution(requirement.name)
            wanted.extend(found[name].requires or [])
    return list(found.values())


def link_distributions(dists: list[importlib.metadata.Distribution], target: Path) -> None:
    """Symlink each distribution's top-level files and directories into target."""
    target.mkdir()
    for dist in dists:
        tops = {Path(str(f)).parts[0] for f in dist.files or []}
        for top in sorted(tops - {"..", "__pycache__"}):
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (target / top).exists():
                (target / top).symlink_to(source)


def can_compile() -> bool:
    include = Path(sysconfig.get_paths()["include"])
    return shutil.which("cc") is not None and (include / "Python.h").is_file()


@pytest.fixture(scope="module", params=["pure", "compiled"])
def installed(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    if not (CLIENT_PACKAGE / "dist" / "socket.io.js").is_file():
        pytest.skip("node_modules/socket.io-client is missing: run `bash scripts/setup.sh`")
    compiled = request.param == "compiled"
    if compiled and not can_compile():
        pytest.skip("no C compiler or no Python headers (apt-get install gcc python3-dev)")
    work = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(work, compiled)
    venv = work / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
        "-q", wheel)
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
                .strip())
    link_distributions(requirements_closure(wheel), work / "deps")
    (site / "sio_core_test_deps.pth").write_text(f"{work / 'deps'}\n")
    yield Installed(wheel, python, venv / "bin", compiled)


HANDLED_PROBE = """
import asyncio, sys
from sio_core.engine.server import EngineServer
from sio_core.exceptions import ServeError
from sio_core.stores.memory import MemoryStore
seen = []
def handled(): seen.append(repr(sys.exc_info()[1]))
class Unreachable(MemoryStore):
    async def start(self):
        loop = asyncio.get_running_loop()
        failed = loop.create_future()
        loop.call_soon(failed.set_exception, ConnectionRefusedError("refused"))
        try:
            await failed
        except OSError as exc:
            raise ConnectionError("cannot reach it") from exc
    async def close(self):
        asyncio.get_running_loop().call_soon(handled)
        await asyncio.sleep(0.01)
async def main():
    try:
        await EngineServer(None).start(store=Unreachable())
    except ServeError:
        pass
    asyncio.get_running_loop().call_soon(handled)
    await asyncio.sleep(0.01)
asyncio.run(main())
print(*seen)
"""


def test_the_wheel_ships_the_demo_and_the_client_bundle(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as archive:
        names = set(archive.namelist())
        for name in BUNDLE:
            assert archive.read(f"sio_core/client_dist/{name}") == \
                (CLIENT_PACKAGE / "dist" / name).read_bytes(), name
        assert archive.read("sio_core/client_dist/LICENSE") == \
            (CLIENT_PACKAGE / "LICENSE").read_bytes()
    assert {"sio_core/demo/__init__.py", "sio_core/demo/app.py",
            "sio_core/demo/static/index.html"} <= names
    assert "sio_core/py.typed" in names  # PEP 561: type checkers read the package's hints
    ui = ADMIN_UI_PACKAGE / "ui" / "dist"
    shipped = {n.removeprefix("sio_core/admin/ui_dist/") for n in names
               if n.startswith("sio_core/admin/ui_dist/")}
    assert shipped == {p.relative_to(ui).as_posix() for p in ui.rglob("*")
                       if p.is_file() and p.suffix != ".map"} | {"LICENSE"}
    with zipfile.ZipFile(installed.wheel) as archive:
        assert archive.read("sio_core/admin/ui_dist/index.html") == \
            (ui / "index.html").read_bytes()
        assert archive.read("sio_core/admin/ui_dist/LICENSE") == \
            (ADMIN_UI_PACKAGE / "LICENSE").read_bytes()
    assert not [n for n in names if n.startswith(("tests/", "web/", "node_modules/"))], names
    extensions = {n.split(".", 1)[0] for n in names if n.endswith(".so")}
    if installed.compiled:  # every module setup.py names, and mypyc's shared library
        assert {f"sio_core/{m}" for m in ("engine/socket", "protocol/socketio",
                                          "http/connection")} <= extensions
        assert any(n.endswith("__mypyc") for n in extensions)
        summary = run(installed.python, "-c", "from sio_core import build; print(build.summary())",
                      cwd=installed.bin_dir, env={"PYTHONPATH": ""})
        assert summary.strip() == f"compiled with mypyc ({len(extensions) - 1} modules)"
        # SIO_CORE_PURE=1: the sources run though the extensions are there
        probe = ("import sio_core, sio_core.engine.socket as s; "
                 "print(sio_core.build.summary()); print(s.__file__)")
        for pure, summary_start, suffix in (("1", "pure Python (SIO_CORE_PURE=1", ".py"),
                                            ("0", "compiled with mypyc", ".so")):
            said, where = run(installed.python, "-c", probe, cwd=installed.bin_dir,
                              env={"PYTHONPATH": "", "SIO_CORE_PURE": pure}).splitlines()
            assert said.startswith(summary_start) and where.endswith(suffix), (said, where)
        # a compiled Socket still has a __dict__ (socket.username = ...) and weak references
        # (test_socketio_socket.py's test of both runs on the sources)
        probe = ("from sio_core.socketio import socket as s; "
                 "print(s.__file__, s.Socket.__dictoffset__, s.Socket.__weakrefoffset__)")
        where, has_dict, has_weakrefs = run(installed.python, "-c", probe,
                                            cwd=installed.bin_dir,
                                            env={"PYTHONPATH": ""}).split()
        assert where.endswith(".so") and int(has_dict) and int(has_weakrefs), probe
        # a store that cannot start (its connect fails through a future, as Redis's does)
        # leaves no exception set as handled for what the loop runs later (test_build.py)
        said = run(installed.python, "-c", HANDLED_PROBE, cwd=installed.bin_dir,
                   env={"PYTHONPATH": ""})
        assert said.split() == ["None", "None"], said
    else:
        assert not extensions


@pytest.fixture
async def wheel_server(installed: Installed, tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """``python -m sio_core serve`` (no app: the demo) of the venv, from an empty directory, with
    no node on PATH."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {"PATH": str(installed.bin_dir), "PYTHONPATH": "", "VIRTUAL_ENV": ""}
    assert shutil.which("node", path=env["PATH"]) is None
    where = run(installed.python, "-c", "import sio_core; print(sio_core.__file__)", cwd=cwd,
                env=env)
    assert Path(where.strip()).is_relative_to(installed.python.parent.parent), where
    async with ServerProcess("--admin-ui", log_path=tmp_path / "server.log",
                             python=str(installed.python), cwd=cwd, env=env) as server:
        yield server


async def test_the_installed_wheel_serves_the_chat_page_and_the_client(
    wheel_server: ServerProcess,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(wheel_server.url + "/") as resp:
            page = await resp.text()
            assert resp.status == 200 and resp.content_type == "text/html", page
        assert "<title>sio_core chat</title>" in page
        assert '<script src="/socket.io/socket.io.js"></script>' in page
        for name in ("socket.io.js", "socket.io.min.js"):
            async with http.get(f"{wheel_server.url}/socket.io/{name}") as resp:
                assert resp.status == 200, name
                assert resp.content_type == "application/javascript", name
                assert await resp.read() == (CLIENT_PACKAGE / "dist" / name).read_bytes()
        # serve --admin-ui: the admin UI's page, from the wheel's copy
        async with http.get(wheel_server.url + "/admin/") as resp:
            page = await resp.text()
            assert resp.status == 200 and resp.content_type == "text/html", page
        assert "<title>Socket.IO Admin UI</title>" in page
        [script] = re.findall(r'<script src="(js/app\.[0-9a-f]+\.js)">', page)
        async with http.get(f"{wheel_server.url}/admin/{script}") as resp:
            assert resp.status == 200 and resp.content_type == "application/javascript"
            assert await resp.read() == (ADMIN_UI_PACKAGE / "ui" / "dist" / script).read_bytes()
    assert "Traceback" not in wheel_server.log_text()


@pytest.mark.browser
async def test_the_installed_wheel_chat_works_in_chromium(
    wheel_server: ServerProcess, browser: Browser, tmp_path: Path  # noqa: F811
) -> None:
    errors: list[str] = []
    page_a = await open_chat(browser, wheel_server.url + "/", errors, "A")
    page_b = await open_chat(browser, wheel_server.url + "/", errors, "B")
    await send(page_a, "from a wheel, without node")
    await expect_messages(page_a, ["from a wheel, without node"])
    await expect_messages(page_b, ["from a wheel, without node"])
    await page_b.screenshot(path=tmp_path / "wheel-chat.png", full_page=True)
    assert errors == []
    log: Any = wheel_server.log_text()
    assert "Traceback" not in log, log
