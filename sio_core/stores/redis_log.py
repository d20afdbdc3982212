"""Connection state recovery's log in Redis: a stream of packets and a key per session.

How this works (the contract is :class:`~sio_core.stores.log.PacketLog`'s):

- **The log is a Redis Stream**, ``<key>-sio:log``: its entry ids are the offsets (``<ms>-<n>``,
  increasing), and it is trimmed by count (``MAXLEN ~ max_packets``) and by age
  (``MINID ~ <now - max_age>``, Redis's own clock) as it grows. A stream rather than a
  list per session: a broadcast to a room of 10,000 sockets is written once, not 10,000
  times, and a session needs no key of its own until it goes away; rather than a sorted
  set, the stream gives the ids and both trimmings for free.
- **An append is one script** (XADD, XTRIM, PUBLISH of ``<id> <entry>`` on
  ``<key>-sio#log#``): Redis runs it whole, so the order of the ids is the order in which
  every subscriber, the appending worker included, hears the entries. The cost per
  broadcast is that script where there was a PUBLISH: one round trip, the entry's bytes
  kept (bounded as above), and the worker that emits delivers to its own sockets when its
  entry comes back, like everyone else.
- **A session is a hash**, ``<key>-sio:session:<pid>`` (the session, its namespace and
  rooms, the stream's last id when it began), with a TTL of ``max_age``, refreshed while
  the socket is connected.
- **A restore is one script** that reads the session, checks that the stream still has
  the offset, gathers the entries after it that the session's rooms match (at most
  ``max_missed``) and PUBLISHes them on the asking worker's ``<key>-sio#<owner>#log#``:
  the answer arrives on the worker's one subscription, in order with the entries.

A worker's scripts go out in order through one queue (pipelined when they pile up), so
that what one worker broadcasts is logged in the order it was emitted. Not on a Redis
Cluster (the stream, the sessions and the channels would need one slot).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import msgpack

from .log import LogLimits, PacketLog, Restored, Status

T = TypeVar("T")


class RedisStore(Protocol):
    """What the log uses of the store it lives in (stores/redis.py's RedisStore; named
    here, not imported, so that the two modules do not import each other)."""

    @property
    def key(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def cmd(self) -> Any: ...

    def listen(self, channel: str, handler: Callable[[bytes], None]) -> None: ...

    def own_task(self, task: asyncio.Task[None],
                 flush: Callable[[], Awaitable[None]] | None = None) -> None: ...

    async def command(self, call: Awaitable[T]) -> T: ...

logger = logging.getLogger("sio_core.redis")

#: a stream id, as a client may send one back (anything else is not looked up)
_STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")

_APPEND = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
                      'n', ARGV[3], 'r', ARGV[4], 'x', ARGV[5], 'e', ARGV[6])
redis.call('XTRIM', KEYS[1], 'MINID', '~', now - tonumber(ARGV[2]))
redis.call('PUBLISH', KEYS[2], 'E' .. id .. ' ' .. ARGV[6])
return id
"""

_PERSIST = """
redis.call('HSET', KEYS[1], 's', ARGV[1], 'n', ARGV[2], 'r', ARGV[3])
if redis.call('HEXISTS', KEYS[1], 'o') == 0 then
  local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  redis.call('HSET', KEYS[1], 'o', last[1] and last[1][1] or '0-0')
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
"""

_RESTORE = """
local request = tonumber(ARGV[1])
local function answer(status, session, packets)
  redis.call('PUBLISH', KEYS[3], 'R' .. cmsgpack.pack({request, status, session, packets}))
end
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return answer('unknown', false, {}) end
local f = {}
for i = 1, #h, 2 do f[h[i]] = h[i + 1] end
local offset = ARGV[2]
if offset == '' then offset = f['o'] end
-- the entries after the offset are all there if the offset is (or, for the empty log a
-- session began with, if nothing was ever trimmed)
local kept = #redis.call('XRANGE', KEYS[2], offset, offset) > 0
if not kept and offset == '0-0' then
  local ok, info = pcall(redis.call, 'XINFO', 'STREAM', KEYS[2])
  if not ok then
    kept = true
  else
    for i = 1, #info, 2 do
      if info[i] == 'max-deleted-entry-id' then kept = info[i + 1] == '0-0' end
    end
  end
end
if not kept then return answer('gone', false, {}) end
local rooms = {}
for _, room in ipairs(cmsgpack.unpack(f['r'])) do rooms[room] = true end
local limit = tonumber(ARGV[3])
local out = {}
for _, item in ipairs(redis.call('XRANGE', KEYS[2], '(' .. offset, '+')) do
  local e = {}
  local kv = item[2]
  for i = 1, #kv, 2 do e[kv[i]] = kv[i + 1] end
  if e['n'] == f['n'] then
    local to = cmsgpack.unpack(e['r'])
    local included = #to == 0
    for _, room in ipairs(to) do if rooms[room] then included = true break end end
    if included then
      for _, room in ipairs(cmsgpack.unpack(e['x'])) do
        if rooms[room] then included = false break end
      end
    end
    if included then
      if #out >= limit then return answer('too_many', false, {}) end
      out[#out + 1] = {item[1], e['e']}
    end
  end
end
return answer('ok', f['s'], out)
"""


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


class RedisLog(PacketLog):
    """A worker's side of the log in Redis (see the module's docstring)."""

    def __init__(self, store: RedisStore, limits: LogLimits) -> None:
        super().__init__()
        self.store = store
        self.limits = limits
        prefix = store.key
        self.stream = f"{prefix}-sio:log"
        self.channel = f"{prefix}-sio#log#"
        self.mine = f"{prefix}-sio#{store.owner}#log#"
        self._session_prefix = f"{prefix}-sio:session:"
        cmd = store.cmd
        self._append = cmd.register_script(_APPEND)
        self._persist = cmd.register_script(_PERSIST)
        self._restore = cmd.register_script(_RESTORE)
        self._queue: list[tuple[Any, list[str], list[Any]]] = []
        self._wake: asyncio.Event | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        store.listen(self.channel, self._on_message)
        store.listen(self.mine, self._on_message)

    # -- the contract -----------------------------------------------------------------------

    def append(self, nsp: str, rooms: list[str], except_rooms: list[str], entry: bytes,
               *, here: bool = False) -> None:
        limits = self.limits
        self._call(self._append, [self.stream, self.mine if here else self.channel],
                   [limits.max_packets, int(limits.max_age * 1000), nsp, _pack(rooms),
                    _pack(except_rooms), entry])

    def persist(self, pid: str, nsp: str, rooms: list[str], session: bytes,
                ttl: float) -> None:
        self._call(self._persist, [self._session_prefix + pid, self.stream],
                   [session, nsp, _pack(rooms), int(ttl * 1000)])

    def restore(self, request: int, pid: str, offset: str | None) -> None:
        if offset is not None and not _STREAM_ID.fullmatch(offset):
            self.on_restored(Restored(request, Status.GONE))
            return
        self._call(self._restore, [self._session_prefix + pid, self.stream, self.mine],
                   [request, offset or "", self.limits.max_missed])

    # -- in order, through one queue --------------------------------------------------------

    def _call(self, script: Any, keys: list[str], args: list[Any]) -> None:
        self._queue.append((script, keys, args))
        self._idle.clear()
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())
            self.store.own_task(self._task, self.flush)
        assert self._wake is not None
        self._wake.set()

    async def flush(self) -> None:
        """Until what was queued has been sent (the sessions a drain persisted)."""
        await self._idle.wait()

    async def _run(self) -> None:
        assert self._wake is not None
        task = asyncio.current_task()
        # a client call may swallow a cancellation (the store's close is bounded for that):
        # it is seen here, between two batches
        while task is None or not task.cancelling():
            self._idle.set()
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    await self.store.command(self._send(batch))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # Redis is down: these are lost (a broadcast is not delivered, a session
                    # not kept, a restore not answered: its client gets a fresh session at
                    # its next attempt)
                    logger.warning("recovery log: %d command(s) failed: %s", len(batch), exc)
                    await asyncio.sleep(0.05)

    async def _send(self, batch: list[tuple[Any, list[str], list[Any]]]) -> None:
        if len(batch) == 1:
            script, keys, args = batch[0]
            await script(keys=keys, args=args)
            return
        pipe = self.store.cmd.pipeline(transaction=False)
        for script, keys, args in batch:
            await script(keys=keys, args=args, client=pipe)
        await pipe.execute()

    # -- from the subscription --------------------------------------------------------------

    def _on_message(self, data: bytes) -> None:
        if data[:1] == b"E":
            offset, _, entry = data[1:].partition(b" ")
            self.on_entry(offset.decode("ascii", "replace"), entry)
        elif data[:1] == b"R":
            restored = _restored(data[1:])
            if restored is not None:
                self.on_restored(restored)


def _restored(data: bytes) -> Restored | None:
    """The restore script's answer (cmsgpack packs Lua strings as msgpack str: read raw)."""
    with contextlib.suppress(Exception):
        item = msgpack.unpackb(data, raw=True)
        request, status, session, packets = item
        if not isinstance(packets, list):  # an empty Lua table may pack as a map
            packets = []
        return Restored(request, status.decode(), session or None,
                        [(offset.decode(), entry) for offset, entry in packets])
    return None
