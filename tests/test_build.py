"""Which build runs (sio_core/build.py): the compiled modules' extensions found beside their
sources, and those whose source was edited after the build (the extension runs, not the
edit: ``serve`` warns). In a stand-in package directory; the real compiled build is
tests/test_packaging.py's."""

from __future__ import annotations

import importlib.machinery
import os
from pathlib import Path

import pytest

from sio_core import build

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
