"""Fixtures for the real peers (server process, redis, chromium) and the CI rule on skips.

The CI rule: with CI=true, a test that needs a real peer (marked ``interop``, ``redis`` or
``browser``, or using the ``redis_url`` / ``chromium_path`` fixtures) and is skipped is reported as
a failure instead, with the skip's reason. On a developer's machine a missing peer is a skip; in CI
it means the setup is broken and the suite is not testing what it claims to.

Limitation: a skip raised while *collecting* a module (``pytest.importorskip`` at module level,
``pytest.skip(allow_module_level=True)``) happens before there are tests to mark; such modules
escape the rule, so skip inside a fixture or the test instead.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping
from pathlib import Path

import pytest

from tests.support import (
    CHROMIUM_PATH,
    NODE_MODULES,
    RedisClusterServers,
    RedisServer,
    ServerProcess,
    redis_server_binary,
)

IN_CI = os.environ.get("CI") == "true"
PEER_MARKERS = ("interop", "redis", "browser")
PEER_FIXTURES = (
    "redis_url", "redis_prefix", "redis_cluster_url", "redis_cluster_prefix", "chromium_path"
)


def _needs_a_peer(item: pytest.Item) -> bool:
    if any(item.get_closest_marker(name) is not None for name in PEER_MARKERS):
        return True
    return any(name in PEER_FIXTURES for name in getattr(item, "fixturenames", ()))


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if IN_CI and report.skipped and not hasattr(report, "wasxfail") and _needs_a_peer(item):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped under CI=true, which counts as a failure for a test that needs a real peer"
            f" ({', '.join(PEER_MARKERS)}): {_skip_reason(report)}"
        )
    return report


def node_missing_reason() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed: run `bash scripts/setup.sh`"
    if not (NODE_MODULES / "engine.io-client" / "package.json").is_file():
        return "node_modules/engine.io-client is missing: run `npm ci` (or `bash scripts/setup.sh`)"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("interop") is not None:
        reason = node_missing_reason()
        if reason is not None:
            pytest.skip(reason)


# --- the server under test -----------------------------------------------------------------------

ServerFactory = Callable[..., Awaitable[ServerProcess]]


@pytest.fixture
async def server_factory(tmp_path: Path) -> AsyncIterator[ServerFactory]:
    """``srv = await server_factory("sio_core.demo.app:io", "--workers", "2", env={...})``: a
    started ServerProcess (log in tmp_path/server-N.log), stopped at teardown if the test did
    not."""
    servers: list[ServerProcess] = []

    async def factory(
        *args: str,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 10.0,
        stop_timeout: float = 10.0,
    ) -> ServerProcess:
        server = ServerProcess(
            *args,
            log_path=tmp_path / f"server-{len(servers)}.log",
            port=port,
            env=env,
            startup_timeout=startup_timeout,
            stop_timeout=stop_timeout,
        )
        servers.append(server)
        return await server.start()

    yield factory
    for server in reversed(servers):
        await server.stop()


# --- redis ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """REDIS_URL if set; else a private redis-server on a free port for this session; else skip.

    Tests share the server: keep to your own keys and channels with ``redis_prefix``, and never
    FLUSHALL / FLUSHDB (REDIS_URL may point at a server that other things use)."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    binary = redis_server_binary()
    if binary is None:
        pytest.skip("no redis: set REDIS_URL or install redis-server")
    with RedisServer(binary, tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private 3-master Redis Cluster for this session (``redis+cluster://`` URL with every
    node as a seed); else skip. Shared like ``redis_url``: keep to your own key prefix."""
    binary = redis_server_binary()
    if binary is None or shutil.which("redis-cli") is None:
        pytest.skip("no redis-server or redis-cli: run `bash scripts/setup.sh --dev`")
    with RedisClusterServers(binary, tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster.url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key/channel prefix of this test's own, e.g. ``sio-test-3f2a...``; at teardown the keys
    under it are deleted (by SCAN, one by one: nothing else on the server is touched)."""
    prefix = unique_redis_prefix()
    yield prefix
    delete_redis_keys(redis_url, prefix)


@pytest.fixture
def redis_cluster_prefix(redis_cluster_url: str) -> Iterator[str]:
    """``redis_prefix`` on the session's Redis Cluster (its keys deleted on every node)."""
    prefix = unique_redis_prefix()
    yield prefix
    delete_redis_keys(redis_cluster_url, prefix)


def unique_redis_prefix() -> str:
    return f"sio-test-{uuid.uuid4().hex}"


def delete_redis_keys(redis_url: str, prefix: str) -> None:
    """Delete the keys under ``prefix`` (by SCAN, one by one: nothing else is touched); a
    ``redis+cluster://`` URL: on every node."""
    import redis
    from redis.cluster import ClusterNode, RedisCluster

    client: redis.Redis | RedisCluster
    if redis_url.startswith("redis+cluster://"):
        seeds = redis_url.split("://", 1)[1].split(",")
        client = RedisCluster(
            startup_nodes=[ClusterNode(*seed.rsplit(":", 1)) for seed in seeds]
        )
    else:
        client = redis.Redis.from_url(redis_url)
    try:
        for key in list(client.scan_iter(match=f"{prefix}*", count=1000)):
            client.delete(key)
    finally:
        client.close()


# --- browser -------------------------------------------------------------------------------------


@pytest.fixture
def chromium_path() -> str:
    """Debian's chromium (the browser tests never download a browser of their own)."""
    if not (CHROMIUM_PATH.is_file() and os.access(CHROMIUM_PATH, os.X_OK)):
        pytest.skip(
            f"no browser: {CHROMIUM_PATH} is missing (apt-get install chromium, or"
            " `bash scripts/setup.sh --dev`)"
        )
    return str(CHROMIUM_PATH)
