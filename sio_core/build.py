"""Which build of sio_core runs: compiled or pure Python.

The compiled build is setup.py's ``COMPILED`` modules made into C extensions by mypyc
(``scripts/compile.sh``, which ``scripts/setup.sh`` and ``benchmarks/setup.sh`` run where a C
compiler and Python's headers are there). Python imports an extension before the ``.py`` file
beside it, so a module edited after the build still runs as it was built: :func:`stale`
names those, and ``serve`` says so at start. With ``SIO_CORE_PURE=1`` the sources run
though a compiled build is there (:func:`prefer_sources`): to compare the two in one
benchmark run, or to debug.
"""

from __future__ import annotations

import importlib.machinery
import logging
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

__all__ = ["PURE", "announce", "compiled", "prefer_sources", "stale", "summary"]

PACKAGE = Path(__file__).resolve().parent
#: the environment variable that makes the sources run though a compiled build is there
PURE = "SIO_CORE_PURE"


def compiled() -> list[Path]:
    """The compiled modules' extension files in this package."""
    return sorted(path for suffix in importlib.machinery.EXTENSION_SUFFIXES
                  if suffix.startswith(".cpython") for path in PACKAGE.rglob(f"*{suffix}"))


def stale() -> list[Path]:
    """The sources edited after their module was compiled."""
    found = []
    for extension in compiled():
        source = extension.with_name(extension.name.split(".", 1)[0] + ".py")
        if source.is_file() and source.stat().st_mtime > extension.stat().st_mtime:
            found.append(source)
    return found


def summary() -> str:
    """One line: which build this is."""
    modules = compiled()
    if not modules:
        return "pure Python (scripts/compile.sh compiles the hot modules)"
    if os.environ.get(PURE) == "1":
        return f"pure Python ({PURE}=1: the compiled build is there, not used)"
    return f"compiled with mypyc ({len(modules)} modules)"


def announce() -> None:
    """Say which build serves (``serve``, once it listens), and warn of the modules edited
    since they were compiled: their extensions run, not the edits."""
    logger = logging.getLogger("sio_core")
    logger.info("%s", summary())
    edited = stale()
    if edited:
        logger.warning("edited after the compiled build, and running as built: %s; run "
                       "`bash scripts/compile.sh` again (or `--remove`)",
                       ", ".join(str(p.relative_to(PACKAGE.parent)) for p in edited))


class _SourcesFirst:
    """Finds sio_core's modules as their sources, never as extensions."""

    @staticmethod
    def find_spec(fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None, /) -> ModuleSpec | None:
        if path is None or not fullname.startswith(f"{__package__}."):
            return None
        loaders = (importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES)
        for entry in path:
            spec = importlib.machinery.FileFinder(entry, loaders).find_spec(fullname)
            if spec is not None:
                return spec
        return None


def prefer_sources() -> None:
    """Import sio_core's modules from their sources from now on (``SIO_CORE_PURE=1``)."""
    if not any(isinstance(finder, _SourcesFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourcesFirst())
