"""Shared plumbing for sio_core's tests: ports, timing, and the real peers the tests drive.

- ``TIME_FACTOR`` / ``scaled()``: every timeout in the tests goes through ``scaled`` so a slow
  machine can set ``SIO_TEST_TIME_FACTOR=3`` instead of the tests growing sleeps.
- ``ServerProcess``: ``python -m sio_core serve ...`` in a child process, its output in a log file,
  ready once its port accepts TCP connections; SIGTERM at the end, SIGKILL if it does not go.
- ``run_node`` / ``start_node``: the official JavaScript clients (and the reference server) from
  ``./node_modules``. Scripts talk back by printing one JSON object per line on stdout.
- ``RedisServer``: a private, throw-away redis-server (used by the ``redis_url`` fixture).

Nothing here imports sio_core: the server is only ever driven from outside, as a user would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = REPO_ROOT / "node_modules"
CHROMIUM_PATH = Path("/usr/bin/chromium")

TIME_FACTOR = float(os.environ.get("SIO_TEST_TIME_FACTOR", "1"))

# Seconds between checks of a log file or a port; not scaled (it is a cadence, not a deadline).
_POLL_INTERVAL = 0.02

JsonObject = dict[str, Any]
EventMatch = Callable[[JsonObject], bool] | Mapping[str, Any]


def scaled(seconds: float) -> float:
    """A timeout multiplied by SIO_TEST_TIME_FACTOR (default 1)."""
    return seconds * TIME_FACTOR


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the usual race applies)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _kill_group(pgid: int, sig: signal.Signals) -> bool:
    """Signal a whole process group; False when it has no process left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


# --- the server under test -----------------------------------------------------------------------


class ServerStartError(RuntimeError):
    """The server exited, or never listened, before its port accepted a connection."""


class ServerProcess:
    """``python -m sio_core serve *args --host 127.0.0.1 --port PORT`` as an async context manager.

    stdout and stderr go to ``log_path``; read them with ``log_text()`` or
    ``await wait_for_log(...)``. The child runs in a session (process group) of its own: SIGTERM
    goes to the main process only (a supervisor is expected to drain its workers), the SIGKILL
    fallback goes to the whole group, and whatever is left of the group after the main process
    exits is killed too (``leftovers_killed`` tells whether there was anything: a supervisor that
    leaks workers).

    "Ready" means the port accepts TCP connections; a test that needs more (every worker up) waits
    for a log line.
    """

    def __init__(
        self,
        *args: str,
        log_path: Path,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 10.0,
        stop_timeout: float = 10.0,
        module: str = "sio_core",
        python: str = sys.executable,
        cwd: Path = REPO_ROOT,
    ) -> None:
        self.args = args
        self.log_path = log_path
        self.port = free_port() if port is None else port
        self.host = "127.0.0.1"
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.module = module
        #: another interpreter (a venv with sio_core installed from a wheel), run from cwd
        self.python = python
        self.cwd = cwd
        self.leftovers_killed = False
        self._extra_env = dict(env or {})
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def argv(self) -> list[str]:
        return [
            self.python, "-m", self.module, "serve", *self.args,
            "--host", self.host, "--port", str(self.port),
        ]  # fmt: skip

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("server not started")
        return self._proc.pid

    @property
    def workers(self) -> int:
        """How many processes serve its clients (its ``--workers``; 1 without)."""
        args = list(self.args)
        return int(args[args.index("--workers") + 1]) if "--workers" in args else 1

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def start(self) -> Self:
        if self._proc is not None:
            raise RuntimeError("server already started")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self._extra_env}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            await self._wait_listening()
        except BaseException:
            await self.stop()
            raise
        return self

    async def _wait_listening(self) -> None:
        assert self._proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + scaled(self.startup_timeout)
        while True:
            if self._proc.returncode is not None:
                raise ServerStartError(
                    f"{' '.join(self.argv)} exited with {self._proc.returncode} before listening;"
                    f" log:\n{_tail(self.log_text())}"
                )
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                pass
            else:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return
            if loop.time() >= deadline:
                raise ServerStartError(
                    f"{' '.join(self.argv)} did not listen on {self.host}:{self.port} within"
                    f" {scaled(self.startup_timeout):.1f}s; log:\n{_tail(self.log_text())}"
                )
            await asyncio.sleep(_POLL_INTERVAL)

    async def wait_for_log(
        self, pattern: str | re.Pattern[str], timeout: float = 5.0
    ) -> re.Match[str]:
        """Wait until the log matches ``pattern`` (re.search over the whole log, MULTILINE)."""
        regex = re.compile(pattern, re.MULTILINE) if isinstance(pattern, str) else pattern
        loop = asyncio.get_running_loop()
        deadline = loop.time() + scaled(timeout)
        while True:
            exited = self.returncode is not None  # read before the log, so no line is missed
            match = regex.search(self.log_text())
            if match is not None:
                return match
            if exited:
                raise AssertionError(
                    f"server exited ({self.returncode}) and its log never matched"
                    f" {regex.pattern!r}; log:\n{_tail(self.log_text())}"
                )
            if loop.time() >= deadline:
                raise TimeoutError(
                    f"log did not match {regex.pattern!r} within {scaled(timeout):.1f}s;"
                    f" log:\n{_tail(self.log_text())}"
                )
            await asyncio.sleep(_POLL_INTERVAL)

    def send_signal(self, sig: signal.Signals) -> None:
        if self._proc is None:
            raise RuntimeError("server not started")
        self._proc.send_signal(sig)

    async def stop(self) -> int | None:
        """SIGTERM, wait up to ``stop_timeout`` (scaled), then SIGKILL the group. The exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), scaled(self.stop_timeout))
            except TimeoutError:
                _kill_group(proc.pid, signal.SIGKILL)
                await proc.wait()
        # The group id is the child's pid (start_new_session): anything still in it is a leak.
        if _kill_group(proc.pid, signal.SIGKILL):
            self.leftovers_killed = True
        return proc.returncode

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def health_of_each_worker(server: ServerProcess) -> dict[str, dict[str, Any]]:
    """Each worker's health answer, by owner (a request lands on any worker: ask until each
    answered)."""
    import aiohttp

    owners: dict[str, dict[str, Any]] = {}
    # a new connection each time, so the kernel may pick another worker
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        for _ in range(200):
            async with http.get(f"{server.url}/_sio_core/health") as response:
                assert response.status == 200, (response.status, await response.text())
                body = await response.json()
            owners[body["owner"]] = body
            if len(owners) == server.workers:
                return owners
    raise AssertionError(f"only {len(owners)} workers answered")


async def wait_sessions_gone(*servers: ServerProcess, timeout: float = 10.0) -> None:
    """Until every worker of every server has no session left (its health answer)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(timeout)
    while True:
        left = {owner: health["sessions"] for server in servers
                for owner, health in (await health_of_each_worker(server)).items()
                if health["sessions"]}
        if not left:
            return
        if loop.time() > deadline:
            raise AssertionError(f"sessions left, by worker: {left}")
        await asyncio.sleep(0.2)  # a cadence, not a deadline


# --- node peers ----------------------------------------------------------------------------------


async def disconnect_python_client(client: Any) -> None:
    """``client.disconnect()`` of python-socketio's AsyncClient, once every packet it sent
    was answered. Its engine drops the close when disconnect() comes while a POST is in
    flight (its write loop checks its state once the POST returns, and leaves); a forwarded
    POST's "ok" can come after the ack it caused (sent on the pending GET), and the client
    would then wait for the next ping (25 s) to end. Its queue is joined once every packet
    sent was answered."""
    if client.connected and client.eio.current_transport == "polling":
        await client.eio.queue.join()
    await client.disconnect()


def node_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a node script: NODE_PATH points at the repo's node_modules, so a script
    written to tmp_path can ``require("engine.io-client")`` (CommonJS only: ESM ``import`` ignores
    NODE_PATH)."""
    merged = dict(os.environ)
    node_path = [str(NODE_MODULES)]
    if merged.get("NODE_PATH"):
        node_path.append(merged["NODE_PATH"])
    merged["NODE_PATH"] = os.pathsep.join(node_path)
    merged.update(env or {})
    return merged


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        raise FileNotFoundError("node is not installed: run `bash scripts/setup.sh`")
    return node


def parse_json_lines(text: str) -> list[JsonObject]:
    """One JSON object per line; anything else (other JSON values, plain text) is skipped."""
    objects = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            objects.append(value)
    return objects


@dataclass(frozen=True)
class NodeResult:
    """What a node script printed. ``timed_out``: the harness had to end it (it did not exit on its
    own in time); ``returncode`` is then negative (the signal)."""

    argv: list[str]
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool

    def lines(self) -> list[JsonObject]:
        return parse_json_lines(self.stdout)

    def check(self) -> Self:
        """Raise AssertionError (with the output) unless the script exited 0 on its own."""
        if self.timed_out or self.returncode != 0:
            raise AssertionError(self.describe())
        return self

    def describe(self) -> str:
        how = "timed out and was killed" if self.timed_out else f"exited with {self.returncode}"
        return (
            f"{' '.join(self.argv)} {how}\n--- stdout ---\n{_tail(self.stdout)}"
            f"\n--- stderr ---\n{_tail(self.stderr)}"
        )


async def _stop_process(proc: asyncio.subprocess.Process, grace: float) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), scaled(grace))
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def run_node(
    script: str | Path,
    *args: str,
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> NodeResult:
    """Run ``node script *args`` from the repo root to completion, or kill it after ``timeout``
    (scaled) seconds; either way return what it printed."""
    argv = [node_binary(), str(script), *args]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=REPO_ROOT,
        env=node_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # so a timeout can kill anything it spawned, which holds the pipes
    )
    communicate = asyncio.ensure_future(proc.communicate())
    timed_out = False
    try:
        done, _ = await asyncio.wait({communicate}, timeout=scaled(timeout))
        if not done:
            timed_out = True
            _kill_group(proc.pid, signal.SIGKILL)
        stdout, stderr = await communicate
    finally:
        if not communicate.done():  # cancelled from outside
            _kill_group(proc.pid, signal.SIGKILL)
            await asyncio.gather(communicate, return_exceptions=True)
    return NodeResult(
        argv=argv,
        returncode=proc.returncode,
        stdout=stdout.decode(errors="replace"),
        stderr=stderr.decode(errors="replace"),
        timed_out=timed_out,
    )


class NodeExited(AssertionError):
    """A long-running node script ended while a test still waited for an event from it."""


def _matches(match: EventMatch | None, event: JsonObject) -> bool:
    if match is None:
        return True
    if callable(match):
        return bool(match(event))
    return all(key in event and event[key] == value for key, value in match.items())


class NodeProcess:
    """A node script that keeps running while the test talks to it.

    Each JSON object the script prints on stdout becomes an event. ``await next_event(match)`` takes
    the oldest pending event that matches (a predicate, or a dict whose items must all be present),
    leaving the others pending; ``async for event in handle`` takes them all in order, until the
    script exits. ``send(obj)`` writes one JSON line to the script's stdin. ``events`` keeps every
    event seen, in order. Use it as ``async with await start_node(...) as node:`` (or call
    ``aclose``).
    """

    def __init__(self, proc: asyncio.subprocess.Process, argv: list[str]) -> None:
        self.argv = argv
        self.events: list[JsonObject] = []
        self._proc = proc
        self._pending: list[JsonObject] = []
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._changed = asyncio.Event()
        self._eof = False
        assert proc.stdout is not None and proc.stderr is not None
        self._readers = [
            asyncio.ensure_future(self._read_stdout(proc.stdout)),
            asyncio.ensure_future(self._read_stderr(proc.stderr)),
        ]

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    @property
    def stdout(self) -> str:
        return "".join(self._stdout)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    async def _read_stdout(self, stream: asyncio.StreamReader) -> None:
        try:
            while line := (await stream.readline()).decode(errors="replace"):
                self._stdout.append(line)
                for event in parse_json_lines(line):
                    self.events.append(event)
                    self._pending.append(event)
                self._changed.set()
        finally:
            self._eof = True
            self._changed.set()

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            self._stderr.append(chunk.decode(errors="replace"))

    def _describe(self) -> str:
        return (
            f"{' '.join(self.argv)} (returncode {self.returncode})\n"
            f"--- events ---\n{_tail(chr(10).join(map(json.dumps, self.events)), 30)}\n"
            f"--- stderr ---\n{_tail(self.stderr)}"
        )

    async def next_event(self, match: EventMatch | None = None, timeout: float = 5.0) -> JsonObject:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + scaled(timeout)
        while True:
            for index, event in enumerate(self._pending):
                if _matches(match, event):
                    del self._pending[index]
                    return event
            if self._eof:
                raise NodeExited(
                    f"script ended before an event matched {match!r}: {self._describe()}"
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"no event matched {match!r} within {scaled(timeout):.1f}s: {self._describe()}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def __aiter__(self) -> AsyncIterator[JsonObject]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[JsonObject]:
        while True:
            while self._pending:
                yield self._pending.pop(0)
            if self._eof:
                return
            self._changed.clear()
            await self._changed.wait()

    async def send(self, obj: Any) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        stdin.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
        await stdin.drain()

    async def close_stdin(self) -> None:
        """End the script's stdin (a script that reads it sees EOF)."""
        stdin = self._proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
            with contextlib.suppress(OSError):
                await stdin.wait_closed()

    async def wait(self, timeout: float = 10.0) -> NodeResult:
        """Wait for the script to exit on its own (TimeoutError after ``timeout``, scaled)."""
        await asyncio.wait_for(self._proc.wait(), scaled(timeout))
        return await self.aclose()

    async def aclose(self, grace: float = 5.0) -> NodeResult:
        """Close stdin, SIGTERM, SIGKILL after ``grace`` (scaled) seconds; what it printed."""
        await self.close_stdin()
        timed_out = self._proc.returncode is None
        await _stop_process(self._proc, grace)
        await asyncio.gather(*self._readers, return_exceptions=True)
        return NodeResult(
            argv=self.argv,
            returncode=self._proc.returncode,
            stdout=self.stdout,
            stderr=self.stderr,
            timed_out=timed_out,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def start_node(
    script: str | Path,
    *args: str,
    env: Mapping[str, str] | None = None,
) -> NodeProcess:
    """Start ``node script *args`` from the repo root and return a handle (see NodeProcess)."""
    argv = [node_binary(), str(script), *args]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=REPO_ROOT,
        env=node_env(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        limit=1 << 24,  # one JSON line may carry a large payload
    )
    return NodeProcess(proc, argv)


# --- redis ---------------------------------------------------------------------------------------


def redis_server_binary() -> str | None:
    """The server the Redis tests start: SIO_TEST_REDIS_SERVER if set (e.g. a valkey-server,
    which speaks the same protocol and takes the same options), else redis-server on PATH."""
    return os.environ.get("SIO_TEST_REDIS_SERVER") or shutil.which("redis-server")


def redis_ping(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if a redis server answers PING at host:port (RESP, no client library)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class _Started:
    """``with X(...) as x``: ``x.start()``, then ``x.stop()`` at the end."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class RedisServer(_Started):
    """A private redis-server for one test session: no persistence, loopback only, its own port.

    ``options(port)`` adds command-line options (a cluster node's, a replica's). Synchronous on
    purpose: it lives in session-scoped fixtures too, outside any test's event loop.
    """

    def __init__(
        self,
        binary: str,
        workdir: Path,
        startup_timeout: float = 10.0,
        *,
        name: str = "redis",
        options: Callable[[int], Mapping[str, str]] | None = None,
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.startup_timeout = startup_timeout
        self.name = name
        self.port = 0
        self._extra = options
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def _options(self) -> list[str]:
        options = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "save": "",  # no RDB snapshots
            "appendonly": "no",
            "dir": str(self.workdir),
            "daemonize": "no",
            **(self._extra(self.port) if self._extra is not None else {}),
        }
        return [arg for name, value in options.items() for arg in (f"--{name}", value)]

    def _argv(self) -> list[str]:
        return [self.binary, *self._options()]

    def start(self) -> Self:
        # free_port() can race with another process; a port taken in between shows up as an early
        # exit, so try a few ports.
        for _attempt in range(3):
            self.port = free_port()
            with self.log_path.open("ab") as log:
                self._proc = subprocess.Popen(
                    self._argv(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            deadline = time.monotonic() + scaled(self.startup_timeout)
            while self._proc.poll() is None and time.monotonic() < deadline:
                if redis_ping("127.0.0.1", self.port):
                    return self
                time.sleep(0.05)
            self.stop()
        text = self.log_path.read_text(errors="replace")
        raise RuntimeError(f"{self.name} did not answer PING; log:\n{_tail(text)}")

    @property
    def pid(self) -> int | None:
        """The running server's process id (None when not running)."""
        return self._proc.pid if self._proc is not None else None

    def send_signal(self, sig: signal.Signals) -> None:
        """E.g. SIGSTOP: the server hangs, its connections open and silent (SIGCONT ends it)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a stopped server would not hear the SIGTERM
            proc.terminate()
            try:
                proc.wait(scaled(10))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def redis_cli(*args: str, timeout: float = 10.0) -> str:
    """``redis-cli ARGS`` (its output; CalledProcessError if it fails)."""
    result = subprocess.run(
        ["redis-cli", *args], capture_output=True, text=True, timeout=scaled(timeout), check=True
    )
    return result.stdout


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` (synchronous) until it is true; AssertionError naming ``what`` if not."""
    deadline = time.monotonic() + scaled(timeout)
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(_POLL_INTERVAL * 5)


class RedisClusterServers(_Started):
    """A private Redis Cluster of ``masters`` masters (no replicas) on loopback: one
    redis-server per master with ``cluster-enabled yes`` (its bus port free too), joined by
    ``redis-cli --cluster create``, ready once every node says ``cluster_state:ok``."""

    def __init__(self, binary: str, workdir: Path, masters: int = 3) -> None:
        self.nodes = [
            RedisServer(
                binary, workdir, name=f"cluster-{i}", options=self._cluster_options(workdir, i)
            )
            for i in range(masters)
        ]

    @staticmethod
    def _cluster_options(workdir: Path, index: int) -> Callable[[int], Mapping[str, str]]:
        def options(port: int) -> Mapping[str, str]:
            return {
                "cluster-enabled": "yes",
                "cluster-config-file": str(workdir / f"nodes-{index}-{port}.conf"),
                "cluster-port": str(free_port()),
                "cluster-node-timeout": "2000",
            }

        return options

    @property
    def url(self) -> str:
        """The store URL: every node is a seed."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def _state_ok(self) -> bool:
        infos = [redis_cli("-p", str(n.port), "cluster", "info") for n in self.nodes]
        return all("cluster_state:ok" in info for info in infos)

    def start(self) -> Self:
        try:
            for node in self.nodes:
                node.start()
            addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
            redis_cli("--cluster", "create", *addresses, "--cluster-yes", timeout=30)
            wait_until(self._state_ok, 20, "cluster_state:ok on every node")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class SentinelServer(RedisServer):
    """A Redis Sentinel (``redis-server <conf> --sentinel``) watching the master ``service`` at
    127.0.0.1:``master_port``: a quorum of 1, the master down after 1 s without an answer."""

    def __init__(self, binary: str, workdir: Path, service: str, master_port: int) -> None:
        super().__init__(binary, workdir, name="sentinel")
        self.service = service
        self.master_port = master_port

    def _argv(self) -> list[str]:
        # Sentinel rewrites its configuration file: one of its own, per port
        conf = self.workdir / f"sentinel-{self.port}.conf"
        conf.write_text(
            f"sentinel monitor {self.service} 127.0.0.1 {self.master_port} 1\n"
            f"sentinel down-after-milliseconds {self.service} 1000\n"
            f"sentinel failover-timeout {self.service} 10000\n"
        )
        return [self.binary, str(conf), "--sentinel", *self._options()]

    def _options(self) -> list[str]:
        return [
            arg
            for name, value in {"port": str(self.port), "bind": "127.0.0.1",
                                "dir": str(self.workdir), "daemonize": "no"}.items()
            for arg in (f"--{name}", value)
        ]  # fmt: skip

    def master_port_now(self) -> int:
        """The port of the master that this Sentinel names now."""
        port = str(self.port)
        answer = redis_cli("-p", port, "sentinel", "get-master-addr-by-name", self.service)
        return int(answer.split()[1])
