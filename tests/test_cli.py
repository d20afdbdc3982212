"""``python -m sio_core serve`` refuses bad options: one clear line on stderr, exit 2, before it
loads an application or binds anything (sio_core/cli.py build_parser)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import REPO_ROOT, scaled

CASES = [
    # (options, what the one line must say)
    (["--port", "70000"], "argument --port: 70000 is not a TCP port (1-65535)"),
    (["--port", "0"], "argument --port: 0 is not a TCP port (1-65535)"),
    (["--port", "http"], "argument --port: 'http' is not a TCP port (1-65535)"),
    (["--ping-interval", "0"], "argument --ping-interval: must be a positive number of seconds"),
    (["--ping-interval", "nan"], "argument --ping-interval: must be a positive number of seconds"),
    (["--ping-timeout", "-1"], "argument --ping-timeout: must be a positive number of seconds"),
    (["--ping-timeout", "soon"], "argument --ping-timeout: 'soon' is not a number of seconds"),
    (["--transports", "foo"], "argument --transports: unknown transport 'foo'"),
    (["--transports", ","], "argument --transports: at least one transport is needed"),
    (["--path", "nope"], "argument --path: must start with '/'"),
    (["--path", "/a b/"], "argument --path: "),
    (["--max-payload", "-5"], "argument --max-payload: must be a whole number of at least 1"),
    (["--max-payload", "1.5"], "argument --max-payload: '1.5' is not a whole number"),
    (["--workers", "0"], "argument --workers: must be a whole number of at least 1, or 'auto'"),
    (["--workers", "many"], "argument --workers: 'many' is not a whole number, or 'auto'"),
    (["--shutdown-timeout", "-1"], "argument --shutdown-timeout: must be a number of seconds"),
    (["--gc-threshold", "-1"], "argument --gc-threshold: must be a whole number of at least 0"),
    (["--store", "memcached://x"], "argument --store: unsupported store URL 'memcached://x'"),
    (["--store", "redis+sentinel://h:26379"], "argument --store: store URL 'redis+sentinel://h:"
     "26379': name the master after the Sentinels, as in redis+sentinel://host:26379/mymaster/0"),
    (["--store", "redis+cluster://h:7000/2"], "a Redis Cluster has only db 0"),
    (["--store", "redis+cluster://h:7000,h:99999"], "'h:99999' is not host:port"),
    (["--node-id", "a.b"], "argument --node-id: "),
    (["--static", "/nonexistent-dir"], "argument --static: not a directory: '/nonexistent-dir'"),
    (["--metrics-path", "metrics"], "argument --metrics-path: must start with '/'"),
    (["--metrics-path", "/m", "--no-metrics"], "argument --no-metrics: not allowed with argument"
     " --metrics-path"),
    (["--log-level", "loud"], "argument --log-level: invalid choice: 'loud'"),
    (["--loop", "tokio"], "argument --loop: invalid choice: 'tokio'"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
]  # fmt: skip


@pytest.mark.parametrize(("options", "expected"), CASES, ids=lambda v: " ".join(v)
                         if isinstance(v, list) else None)
def test_bad_option_is_one_clear_line_and_exit_2(options: list[str], expected: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sio_core", "serve", *options, "--host", "127.0.0.1"],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=scaled(20), check=False,
    )  # fmt: skip
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == "", proc.stdout  # nothing started, nothing listening
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("python -m sio_core"), lines[0]
    assert ": error: " in lines[0], lines[0]
    assert expected in lines[0], lines[0]
