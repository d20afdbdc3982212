"""``python -m sio_core serve`` refuses bad options: one clear line on stderr, exit 2, before it
loads an application or binds anything (sio_core/cli.py build_parser)."""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys

import pytest

from sio_core import __version__
from sio_core.cli import GC_THRESHOLD, GC_THRESHOLD_1, build_parser, tune_gc
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
    (["--parser", "json"], "argument --parser: invalid choice: 'json'"),
    (["--log-format", "xml"], "argument --log-format: invalid choice: 'xml'"),
    (["--uds", "/tmp/" + "x" * 120], "argument --uds: must be a path of 1-107 bytes"),
    (["--ssl-certfile", "/nonexistent.pem"], "argument --ssl-certfile: not a file:"),
    (["--ssl-keyfile", "README.md"], "argument --ssl-keyfile: needs --ssl-certfile"),
    (["--ssl-certfile", "README.md"], "argument --ssl-certfile: cannot load the certificate"),
    (["--forwarded-allow-ips", "10.0.0.0/8,proxy"], "argument --forwarded-allow-ips: 'proxy' is"
     " not an IP address or network, 'unix' or '*'"),
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


def test_every_option_has_help() -> None:
    """Walks the parser: every option and positional of every command says what it is."""
    parser = build_parser()
    commands = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            commands.extend(action.choices.values())
    assert len(commands) > 1
    missing = [f"{command.prog} {'/'.join(action.option_strings) or action.dest}"
               for command in commands for action in command._actions
               if not isinstance(action, argparse._SubParsersAction)
               and (not action.help or action.help == argparse.SUPPRESS)]
    assert missing == []


def test_version() -> None:
    proc = subprocess.run([sys.executable, "-m", "sio_core", "--version"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=scaled(20), check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"sio_core {__version__}\n", "")


def test_serve_sets_the_collectors_first_two_thresholds(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    set_to: list[tuple[int, ...]] = []
    monkeypatch.setattr(gc, "set_threshold", lambda *values: set_to.append(values))
    tune_gc(0)  # Python's own, untouched
    assert set_to == []
    tune_gc(GC_THRESHOLD)
    assert set_to == [(10_000, 100, gc.get_threshold()[2])] and GC_THRESHOLD_1 == 100
