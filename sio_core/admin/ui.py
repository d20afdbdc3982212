"""The admin UI's page, served by this server (no hosted site): ``serve --admin-ui``.

How this works: the UI is the ``ui/dist`` folder of the npm package ``@socket.io/admin-ui``
(a single-page application with relative links, so it must be served under a path that ends
with "/"). :func:`ui_files` maps each of its files to a URL under ``mount``, for
``Config.static_files``. Where the folder is: ``ui_dir`` if given, else the copy a wheel of
sio_core ships (``sio_core/admin/ui_dist``, see setup.py), else ./node_modules, else the
sio_core checkout's. Source maps are left out (3 MB the page never loads). The page still
loads its fonts and icons from public CDNs, as the package's own index.html says.
"""

from __future__ import annotations

from pathlib import Path

#: where a wheel of sio_core has the UI (copied by setup.py at build time)
PACKAGED_UI = Path(__file__).resolve().parent / "ui_dist"
UI_DIST = Path("node_modules") / "@socket.io" / "admin-ui" / "ui" / "dist"


def ui_files(mount: str = "/admin/", ui_dir: str | Path | None = None) -> dict[str, str]:
    """URL path -> file for the UI under ``mount`` (``mount`` itself is its index.html).
    FileNotFoundError if no copy of the UI is found."""
    if not (mount.startswith("/") and mount.endswith("/")):
        raise ValueError(f"mount: a URL path that starts and ends with '/' (got {mount!r})")
    candidates = [Path(ui_dir)] if ui_dir is not None else [
        PACKAGED_UI, Path.cwd() / UI_DIST, Path(__file__).resolve().parents[2] / UI_DIST]
    for directory in candidates:
        if (directory / "index.html").is_file():
            files = {mount + path.relative_to(directory).as_posix(): str(path)
                     for path in sorted(directory.rglob("*"))
                     if path.is_file() and path.suffix != ".map"}
            files[mount] = str(directory / "index.html")
            return files
    raise FileNotFoundError(
        "the admin UI is not installed (the npm package @socket.io/admin-ui): run `npm ci`"
        " or `bash scripts/setup.sh`, or install a wheel of sio_core, which ships it")
