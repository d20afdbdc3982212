"""Build the API reference from the docstrings with pdoc: ``scripts/docs.sh [OUT]`` (default
docs/api/, git-ignored). Every pdoc warning (a name in ``__all__`` that does not resolve, a
docstring link to nothing) is printed and fails the build (exit 1)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pdoc
import pdoc.render

#: what users import and read about; the internals' docstrings are for the source
MODULES = [
    "sio_core",
    "sio_core.config",
    "sio_core.exceptions",
    "sio_core.socketio",
    "sio_core.emitter",
    "sio_core.admin",
    "sio_core.engine.server",
    "sio_core.stores",
    "sio_core.protocol.parsers",
    "sio_core.cli",
]


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else "docs/api")
    import sio_core

    sio_core.Emitter  # noqa: B018  # imported on first use: pdoc reads the module's dict
    pdoc.render.configure(docformat="restructuredtext", search=True, show_source=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*MODULES, output_directory=out)
    for warning in caught:
        print(f"docs: {warning.message}", file=sys.stderr)
    if caught:
        return 1
    print(f"docs: {out}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
