"""RedisStore speaking on its connections itself (sio_core/stores/redis_wire.py): commands
packed here, replies and pub/sub pushes parsed by hiredis a read at a time; redis-py only
connects.

In process: a stand-in for redis-py's connected connection (a StreamReader we feed), for how
reads are cut. Against a real redis-server: the packing Redis accepts (binary data, a
channel that is not ASCII), the publisher made again when Redis drops it, and PUBLISHes that
Redis refuses counted (an ACL user on a private server).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import hiredis
import pytest
import redis.asyncio as aioredis

from sio_core.stores.redis import RedisStore
from sio_core.stores.redis_wire import Wire, command, open_wire, publish
from tests.support import RedisServer, redis_server_binary, scaled


class _Writer:
    def __init__(self) -> None:
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data


class _Connection:
    """What Wire uses of a connected redis-py connection."""

    def __init__(self, stream: bool = True) -> None:
        self._reader = asyncio.StreamReader() if stream else None
        self._writer = _Writer()
        self.connected = False

    async def connect(self) -> None:
        self.connected = True

    async def disconnect(self) -> None:
        self.connected = False


def test_commands_are_packed_as_resp_arrays_of_bulk_strings() -> None:
    assert command(b"SUBSCRIBE", b"a", b"") == b"*3\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n$0\r\n\r\n"
    assert publish("r\u00e9", b"x\r\ny") == (
        b"*3\r\n$7\r\nPUBLISH\r\n$3\r\nr\xc3\xa9\r\n$4\r\nx\r\ny\r\n")
    for channel, data in (("", b""), ("k#/#r#", bytes(range(256)) * 3)):
        assert publish(channel, data) == command(b"PUBLISH", channel.encode(), data)


async def test_a_reply_cut_across_reads_waits_for_its_end() -> None:
    connection = _Connection()
    wire = Wire(connection)
    assert connection._reader is not None
    connection._reader.feed_data(b"*3\r\n$7\r\nmessage\r\n$2\r\nab")
    reading = asyncio.ensure_future(wire.replies())
    await asyncio.sleep(0)  # one loop turn: the first part is read, and is not a reply
    assert not reading.done()
    connection._reader.feed_data(b"\r\n$3\r\nxyz\r\n:7\r\n")
    assert await reading == [[b"message", b"ab", b"xyz"], 7]


async def test_replies_of_one_read_come_together_and_errors_are_among_them() -> None:
    connection = _Connection()
    wire = Wire(connection)
    assert connection._reader is not None
    connection._reader.feed_data(b":1\r\n-NOPERM no\r\n")
    first = await wire.replies()
    assert first[0] == 1 and isinstance(first[1], hiredis.ReplyError)
    assert "NOPERM" in str(first[1])
    connection._reader.feed_data(b":2\r\n")
    reading = asyncio.ensure_future(wire.read(3))
    await asyncio.sleep(0)
    assert not reading.done()  # 1 of 3
    connection._reader.feed_data(b":3\r\n:4\r\n")
    assert await reading == [2, 3, 4]
    wire.send(b"PING")
    assert connection._writer.written == b"PING"


async def test_an_ended_connection_or_what_is_not_resp_raises_connection_error() -> None:
    connection = _Connection()
    wire = Wire(connection)
    assert connection._reader is not None
    connection._reader.feed_eof()
    with pytest.raises(ConnectionError, match="closed"):
        await wire.replies()
    connection = _Connection()
    wire = Wire(connection)
    assert connection._reader is not None
    connection._reader.feed_data(b"?what\r\n")
    with pytest.raises(ConnectionError, match="not RESP"):
        await wire.replies()


async def test_a_connection_without_a_stream_is_refused_and_closed() -> None:
    made: list[_Connection] = []

    def make() -> _Connection:
        made.append(_Connection(stream=False))
        return made[-1]

    with pytest.raises(RuntimeError, match="no stream"):
        await open_wire(make)
    assert len(made) == 1 and not made[0].connected
    connection = _Connection()
    wire = await open_wire(lambda: connection)
    assert connection.connected
    await wire.close()
    assert not connection.connected


# -- against a real redis-server --------------------------------------------------------------


async def _messages(wire: Wire, count: int) -> list[Any]:
    messages: list[Any] = []
    while len(messages) < count:
        messages += [r for r in await wire.replies() if r[0] in (b"message", b"pmessage")]
    return messages


@pytest.mark.redis
async def test_subscribe_and_publish_on_a_real_redis(redis_url: str, redis_prefix: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    make = client.connection_pool.make_connection
    sub, pub = await open_wire(make), await open_wire(make)
    try:
        channel = f"{redis_prefix}-r\u00e9"
        sub.send(command(b"SUBSCRIBE", channel.encode()) + command(
            b"PSUBSCRIBE", f"{redis_prefix}-p*".encode()))
        assert await asyncio.wait_for(sub.read(2), scaled(5)) == [
            [b"subscribe", channel.encode(), 1], [b"psubscribe", f"{redis_prefix}-p*".encode(), 2]]
        data = bytes(range(256)) + b"\r\n"
        pub.send(publish(channel, data) + publish(f"{redis_prefix}-p1", b"")
                 + publish(f"{redis_prefix}-none", b"z"))
        assert await asyncio.wait_for(pub.read(3), scaled(5)) == [1, 1, 0]
        assert await asyncio.wait_for(_messages(sub, 2), scaled(5)) == [
            [b"message", channel.encode(), data],
            [b"pmessage", f"{redis_prefix}-p*".encode(), f"{redis_prefix}-p1".encode(), b""]]
    finally:
        await sub.close()
        await pub.close()
        await client.aclose()


@contextlib.asynccontextmanager
async def _listening(url: str, channel: str) -> AsyncIterator[asyncio.Queue[bytes]]:
    """What arrives on ``channel``, read by redis-py's own pub/sub."""
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    # subscribed once Redis says so, not when the command is sent
    async with asyncio.timeout(scaled(5)):
        while (await pubsub.get_message(timeout=scaled(5)) or {}).get("type") != "subscribe":
            pass
    arrived: asyncio.Queue[bytes] = asyncio.Queue()

    async def read() -> None:
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is not None and message["type"] == "message":
                arrived.put_nowait(message["data"])

    task = asyncio.ensure_future(read())
    try:
        yield arrived
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
        await client.aclose()


@pytest.mark.redis
async def test_the_publisher_is_made_again_when_redis_drops_it(redis_url: str,
                                                                redis_prefix: str) -> None:
    store = RedisStore(redis_url, owner="w1", key=redis_prefix)
    await store.start()
    admin = aioredis.Redis.from_url(redis_url)
    channel = f"{redis_prefix}-out"
    try:
        async with _listening(redis_url, channel) as arrived:
            store.publish_raw(channel, b"one")
            assert await asyncio.wait_for(arrived.get(), scaled(5)) == b"one"
            publisher = store._publisher
            assert publisher is not None
            host, port = publisher._writer.get_extra_info("sockname")[:2]
            assert await admin.client_kill(f"{host}:{port}")
            store.publish_raw(channel, b"two")
            store.publish_raw(channel, b"three")
            assert [await asyncio.wait_for(arrived.get(), scaled(5)) for _ in range(2)] == [
                b"two", b"three"]
            assert store._publisher is not publisher
            assert store.health["publish_failed"] == 0
    finally:
        await store.close()
        await admin.aclose()


@pytest.mark.redis
async def test_publishes_redis_refuses_are_counted_and_the_rest_go_out(tmp_path: Path) -> None:
    binary = redis_server_binary()
    if binary is None:
        pytest.skip("no redis-server: run `bash scripts/setup.sh --dev`")
    with RedisServer(binary, tmp_path) as server:
        admin = aioredis.Redis.from_url(server.url)
        # a user who may use the channels of key "k" alone
        await admin.execute_command("ACL", "SETUSER", "sio", "on", ">pw", "~*", "+@all",
                                    "resetchannels", "&k*")
        # not started: its write loop, the publisher's one user, would publish meanwhile
        store = RedisStore(f"redis://sio:pw@127.0.0.1:{server.port}/0", owner="w1", key="k")
        try:
            async with _listening(server.url, "k-out") as arrived:
                refused = await store._publish([("k-out", b"a"), ("elsewhere", b"b"),
                                                ("k-out", b"c")])
                assert refused == 1
                assert "NOPERM" in str(store.health["last_error"])
                assert [await asyncio.wait_for(arrived.get(), scaled(5)) for _ in range(2)] == [
                    b"a", b"c"]
        finally:
            await store.close_clients()
            await admin.aclose()
