"""A smoke run of the benchmark command (benchmarks/run.py --quick) against the real peers.

It checks that the harness works end to end (every server starts, the load generator speaks to
each, RESULTS.md is written with a row per server) and nothing about speed: the numbers of a
quick run mean nothing, and the test suite makes no timed assertions.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO_ROOT, scaled

pytestmark = pytest.mark.interop

SERVER_LABELS = ["sio_core", "socket.io (node)", "python-socketio (uvicorn)",
                 "sio_core ASGIApp (uvicorn)"]


def test_quick_run_writes_results_with_a_row_per_server(tmp_path: Path) -> None:
    missing = [m for m in ("uvicorn", "socketio") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: run `bash benchmarks/setup.sh`")
    out = tmp_path / "bench"
    # bcast100 takes the same path as bcast1000; the ceiling server is not a peer under test
    argv = [sys.executable, str(REPO_ROOT / "benchmarks" / "run.py"), "--quick",
            "--only", "bcast1000,echo,idle,polling,store", "--servers", "sio,js,pysio,asgi",
            "--out", str(out)]
    # the timeout only stops a hung run; the run takes about 40 s
    proc = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=scaled(240), stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"

    results = (out / "RESULTS.md").read_text()
    sections = results.split("\n## ")
    for name in ("Broadcast fan-out", "Echo with acks", "idle websocket connections",
                 "Long-polling echo"):
        section = next(s for s in sections if name in s.splitlines()[0])
        for label in SERVER_LABELS:
            row = next(
                (line for line in section.splitlines() if line.startswith(f"| {label} |")), None)
            assert row is not None, f"no row for {label} under {name!r}:\n{section}"
            assert row.endswith("| 1/1 |"), row
    store = next(s for s in sections if s.startswith("Store comparison"))
    assert "| 1 worker, in memory |" in store and "| 2 workers, master hub |" in store
    # the Redis Cluster's row (issue 16): sharded pub/sub, every master's CPU counted
    assert "| 2 nodes (1 worker each), Redis Cluster of 3 masters (sharded pub/sub) |" in store
    assert "Redis Cluster of 3 masters (sharded pub/sub) " in store.split(
        "Server CPU per delivery")[1]

    measurements = json.loads((out / "results.json").read_text())["measurements"]
    assert measurements and all(m["ok"] for m in measurements)
    assert all(m["value"] > 0 for m in measurements)
