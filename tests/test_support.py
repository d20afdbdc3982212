"""The test plumbing itself: ports, the server harness, node scripts, redis, the CI skip rule."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import (
    REPO_ROOT,
    TIME_FACTOR,
    NodeExited,
    ServerProcess,
    ServerStartError,
    free_port,
    parse_json_lines,
    run_node,
    scaled,
    start_node,
)


def test_scaled_multiplies_by_the_time_factor() -> None:
    assert scaled(2.5) == 2.5 * TIME_FACTOR


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 0 < port < 65536
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ('{"a":1}\n', [{"a": 1}]),
        ('{"a":1}\nplain text\n[1,2]\n3\n{"b":"x"}', [{"a": 1}, {"b": "x"}]),
        ("", []),
        ('{"a":\n', []),
    ],
)
def test_parse_json_lines_keeps_only_objects(
    stdout: str, expected: list[dict[str, object]]
) -> None:
    assert parse_json_lines(stdout) == expected


# --- ServerProcess, against a stand-in for `python -m sio_core serve` ---------------------------

FAKE_SERVER = """
import signal, socket, sys

args = sys.argv[1:]
host = args[args.index("--host") + 1]
port = int(args[args.index("--port") + 1])
print("argv", " ".join(args))
if "--fail" in args:
    print("boom: bad flag", file=sys.stderr)
    sys.exit(3)
if "--stubborn" in args:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    def on_term(signum, frame):
        print("stopping on SIGTERM")
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
server = socket.create_server((host, port))
print(f"listening on {host}:{port}")
while True:
    conn, _ = server.accept()
    conn.close()
"""


def fake_server(tmp_path: Path, *args: str, stop_timeout: float = 10.0) -> ServerProcess:
    (tmp_path / "fakeserve.py").write_text(FAKE_SERVER)
    return ServerProcess(
        *args,
        log_path=tmp_path / "server.log",
        env={"PYTHONPATH": str(tmp_path)},
        module="fakeserve",
        stop_timeout=stop_timeout,
    )


async def test_server_process_starts_logs_and_stops_with_sigterm(tmp_path: Path) -> None:
    async with fake_server(tmp_path, "app:io", "--workers", "1") as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.returncode is None
        match = await server.wait_for_log(r"^listening on 127\.0\.0\.1:(\d+)$")
        assert int(match.group(1)) == server.port
        assert (
            f"argv serve app:io --workers 1 --host 127.0.0.1 --port {server.port}"
            in server.log_text()
        )
    assert server.returncode == 0
    assert "stopping on SIGTERM" in server.log_text()
    assert not server.leftovers_killed


async def test_server_process_reports_an_early_exit_with_its_log(tmp_path: Path) -> None:
    server = fake_server(tmp_path, "--fail")
    with pytest.raises(ServerStartError, match="boom: bad flag"):
        await server.start()
    assert server.returncode == 3


async def test_server_process_kills_a_server_that_ignores_sigterm(tmp_path: Path) -> None:
    server = fake_server(tmp_path, "--stubborn", stop_timeout=0.3)
    await server.start()
    assert await server.stop() == -signal.SIGKILL


async def test_wait_for_log_times_out_with_the_log(tmp_path: Path) -> None:
    async with fake_server(tmp_path) as server:
        with pytest.raises(TimeoutError, match="listening on"):
            await server.wait_for_log("never printed", timeout=0.2)


# --- node ----------------------------------------------------------------------------------------


@pytest.mark.interop
async def test_run_node_parses_json_lines(tmp_path: Path) -> None:
    script = tmp_path / "lines.js"
    script.write_text(
        textwrap.dedent(
            """
            console.log(JSON.stringify({argv: process.argv.slice(2)}));
            console.log("not json");
            console.log(JSON.stringify([1, 2]));
            console.log(JSON.stringify({done: true}));
            console.error("a warning");
            process.exitCode = 2;
            """
        )
    )
    result = await run_node(script, "one", "two", timeout=10)
    assert result.returncode == 2
    assert not result.timed_out
    assert result.lines() == [{"argv": ["one", "two"]}, {"done": True}]
    assert "a warning" in result.stderr
    with pytest.raises(AssertionError, match="exited with 2"):
        result.check()


@pytest.mark.interop
async def test_run_node_kills_a_script_that_overruns(tmp_path: Path) -> None:
    script = tmp_path / "hang.js"
    script.write_text(
        "console.log(JSON.stringify({started: true})); setInterval(() => {}, 1000);\n"
    )
    result = await run_node(script, timeout=0.5)
    assert result.timed_out
    assert result.returncode == -signal.SIGKILL
    assert result.lines() == [{"started": True}]


@pytest.mark.interop
async def test_start_node_streams_events_and_takes_input(tmp_path: Path) -> None:
    script = tmp_path / "echo.js"
    script.write_text(
        textwrap.dedent(
            """
            const rl = require("readline").createInterface({input: process.stdin});
            console.log(JSON.stringify({ready: true}));
            rl.on("line", (line) => console.log(JSON.stringify({echo: JSON.parse(line)})));
            rl.on("close", () => console.log(JSON.stringify({bye: true})));
            """
        )
    )
    async with await start_node(script) as node:
        assert await node.next_event({"ready": True}) == {"ready": True}
        await node.send({"n": 1})
        await node.send({"n": 2})
        # Matching takes the event it wants and leaves the earlier one pending.
        assert await node.next_event(lambda e: e.get("echo") == {"n": 2}) == {"echo": {"n": 2}}
        assert await node.next_event() == {"echo": {"n": 1}}
        await node.close_stdin()
        assert [event async for event in node] == [{"bye": True}]
        with pytest.raises(NodeExited):
            await node.next_event(timeout=1)
        result = await node.wait()
    assert result.returncode == 0
    assert not result.timed_out
    assert node.events == [{"ready": True}, {"echo": {"n": 1}}, {"echo": {"n": 2}}, {"bye": True}]


@pytest.mark.interop
async def test_start_node_times_out_and_is_terminated(tmp_path: Path) -> None:
    script = tmp_path / "quiet.js"
    script.write_text("setInterval(() => {}, 1000);\n")
    node = await start_node(script)
    with pytest.raises(TimeoutError, match="no event matched"):
        await node.next_event(timeout=0.2)
    result = await node.aclose()
    assert result.timed_out
    assert result.returncode == -signal.SIGTERM


@pytest.mark.interop
async def test_node_modules_resolve_from_a_script_outside_the_repo(tmp_path: Path) -> None:
    script = tmp_path / "versions.js"
    script.write_text(
        textwrap.dedent(
            """
            const names = ["engine.io-client", "socket.io-client", "socket.io",
                           "@socket.io/redis-adapter", "@socket.io/redis-emitter", "redis"];
            for (const name of names) {
              const mod = require(name);
              const version = require(name + "/package.json").version;
              console.log(JSON.stringify({name, version, exports: Object.keys(mod).length}));
            }
            """
        )
    )
    result = (await run_node(script, timeout=20)).check()
    found = {line["name"]: line for line in result.lines()}
    assert set(found) == {
        "engine.io-client", "socket.io-client", "socket.io",
        "@socket.io/redis-adapter", "@socket.io/redis-emitter", "redis",
    }  # fmt: skip
    assert found["engine.io-client"]["version"].startswith("6.")
    assert found["socket.io-client"]["version"].startswith("4.")
    assert found["socket.io"]["version"].startswith("4.")
    assert all(line["exports"] > 0 for line in found.values())


# --- redis ---------------------------------------------------------------------------------------


@pytest.mark.redis
async def test_redis_answers_ping_and_keeps_to_the_prefix(
    redis_url: str, redis_prefix: str
) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        assert await client.ping() is True
        await client.set(f"{redis_prefix}:k", b"v")
        assert await client.get(f"{redis_prefix}:k") == b"v"
    finally:
        await client.aclose()


# --- the CI rule (tests/conftest.py) -------------------------------------------------------------

INNER_TESTS = """
import pytest

@pytest.mark.redis
def test_needs_redis():
    pytest.skip("no peer in this test")

def test_plain_skip():
    pytest.skip("a plain skip")

@pytest.mark.browser
@pytest.mark.xfail(reason="expected to fail")
def test_xfail():
    raise RuntimeError
"""

INNER_INI = """
[pytest]
markers =
    interop: x
    redis: x
    browser: x
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


@pytest.mark.parametrize(("ci", "expected_rc"), [("true", 1), ("", 0)])
def test_peer_skips_fail_only_under_ci(tmp_path: Path, ci: str, expected_rc: int) -> None:
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    (tmp_path / "pytest.ini").write_text(INNER_INI)
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_runtest_makereport, pytest_runtest_setup  # noqa: F401\n"
    )
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-c", "pytest.ini", "."],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == expected_rc, out
    assert "SKIPPED" in out and "a plain skip" in out, out
    assert "XFAIL" in out, out
    if ci == "true":
        assert "FAILED test_inner.py::test_needs_redis" in out, out
        assert "skipped under CI=true" in out and "no peer in this test" in out, out
    else:
        assert "no peer in this test" in out and "FAILED" not in out, out
