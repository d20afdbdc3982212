"""scripts/docs.sh builds the API reference with pdoc from the docstrings, without a warning,
and it documents what users import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import REPO_ROOT, scaled

USER_FACING = ["Server", "Socket", "Namespace", "BroadcastOperator", "Handshake", "Config",
               "Emitter", "ConnectionRefusedError", "AckTimeoutError", "DisconnectedError"]


def test_the_api_reference_builds_without_warnings(tmp_path: Path) -> None:
    out = tmp_path / "api"
    proc = subprocess.run(["bash", "scripts/docs.sh", str(out)], cwd=REPO_ROOT,
                          env={**os.environ, "PYTHON": sys.executable},
                          capture_output=True, text=True, timeout=scaled(120), check=False)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stdout + proc.stderr
    top = (out / "sio_core.html").read_text()
    for name in USER_FACING:
        assert f'id="{name}"' in top, name
    config = (out / "sio_core" / "config.html").read_text()
    for field in ("per_message_deflate", "http_compression", "parser", "forwarded_allow_ips"):
        assert f'id="Config.{field}"' in config, field
    assert (out / "sio_core" / "socketio.html").exists()
    assert (out / "index.html").exists()
