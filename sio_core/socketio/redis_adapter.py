"""The JavaScript redis adapters' wire formats: the cluster's link on Redis.

How this works: on a RedisStore, the Socket.IO messages of sio_core/socketio/messages.py
(broadcasts, with or without acks, join/leave/disconnect of matching sockets, server-side
emits, fetch_sockets) go to every server of a namespace, JavaScript or sio_core alike, in the
format of one of the two JavaScript adapters; a sio_core node reads the other sio_core nodes
in it too. The store is only the bus here: it publishes what this module encodes on the
channels this module names, and hands back what arrives on them (RedisStore.tap), as node's
redis-adapter extends socket.io-adapter's cluster adapter over a Redis client.

- :class:`ClassicFormat`: ``createAdapter`` of ``@socket.io/redis-adapter`` 8 (and what
  ``@socket.io/redis-emitter`` publishes). Broadcasts are ``[uid, packet, {rooms, except,
  flags}]`` on ``<key>#<nsp>#[<room>#]``, read by pattern; requests are JSON on
  ``<key>-request#<nsp>#`` (subscribed by name, so the JavaScript servers' NUMSUB counts us),
  answered on ``<key>-response#<nsp>#``, which every server reads.
- :class:`ShardedFormat`: ``createShardedAdapter`` of the same package (Redis 7 sharded
  pub/sub), i.e. socket.io-adapter's ClusterAdapter messages ``{uid, nsp, type, data}``:
  everything to the servers of a namespace on ``<key>#<nsp>#``, answers to one server on
  ``<key>#<nsp>#<uid>#`` (its own response channel), the servers counted by PUBSUB
  SHARDNUMSUB of the namespace's channel. Its "dynamic" subscription modes also put a
  broadcast to one room without acks on ``<key>#<nsp>#<room>#``, read only by the servers
  that have that room: we read the channel of each room with members here as they do (the
  store's ``subscription_mode``; subscribed and unsubscribed once per loop turn), and always
  publish on the namespace's channel, which every server reads whatever its mode.

Both: a request we answer is decoded into the cluster's typed message and answered by the
Cluster as a sio_core worker's is; our requests (fetch_sockets, server-side emits and
broadcasts with acks) are counted as the JavaScript adapter counts them, less ourselves, and
their answers picked off by request id. Messages are JSON, or msgpack when they carry binary
data, as the JavaScript adapter sends them; everything read is untrusted: what does not
decode raises BadMessage, and the store drops it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import itertools
import json
import operator
from collections.abc import Callable
from typing import Any

from ..protocol import socketio as sio
from ..stores.base import BadMessage
from ..stores.redis import RedisStore
from ..stores.redis_url import Mode
from .adapter import BroadcastOptions
from .link import Receiver
from .messages import (
    Broadcast,
    BroadcastWithAcks,
    ClientAck,
    ClientCount,
    DisconnectSockets,
    FetchSockets,
    Published,
    ServerSideEmit,
    SocketsJoin,
    SocketsLeave,
    event_data,
    event_packet,
)

#: prefix of origins that are servers of the JavaScript format (answers go back in it)
JS = "js:"

# request types of @socket.io/redis-adapter's createAdapter
SOCKETS, ALL_ROOMS, REMOTE_JOIN, REMOTE_LEAVE, REMOTE_DISCONNECT, REMOTE_FETCH, \
    SERVER_SIDE_EMIT, BROADCAST, BROADCAST_CLIENT_COUNT, BROADCAST_ACK = range(10)

# message types of socket.io-adapter's ClusterAdapter (createShardedAdapter); 1, 2 and 13
# are heartbeats of the ClusterAdapterWithHeartbeat, which the sharded adapter never sends
C_BROADCAST, C_SOCKETS_JOIN, C_SOCKETS_LEAVE, C_DISCONNECT_SOCKETS, C_FETCH_SOCKETS, \
    C_FETCH_SOCKETS_RESPONSE, C_SERVER_SIDE_EMIT, C_SERVER_SIDE_EMIT_RESPONSE, \
    C_BROADCAST_CLIENT_COUNT, C_BROADCAST_ACK = range(3, 13)


SocketsAction = SocketsJoin | SocketsLeave | DisconnectSockets
#: the message of each request type that acts on matching sockets, in each format
_ACTIONS: dict[int, type[SocketsAction]] = {
    REMOTE_JOIN: SocketsJoin, REMOTE_LEAVE: SocketsLeave, REMOTE_DISCONNECT: DisconnectSockets}
_C_ACTIONS: dict[int, type[SocketsAction]] = {
    C_SOCKETS_JOIN: SocketsJoin, C_SOCKETS_LEAVE: SocketsLeave,
    C_DISCONNECT_SOCKETS: DisconnectSockets}


def json_pack(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def js_pack(value: Any, pack: Callable[[Any], bytes]) -> bytes:
    """A request or answer as the JavaScript adapter sends it: JSON; what JSON cannot carry
    (bytes) in the parser's format, which it reads too (anything that does not start
    with "{")."""
    try:
        return json_pack(value)
    except (TypeError, ValueError):
        return pack(value)


def broadcast_channel(key: str, nsp: str, rooms: list[str]) -> str:
    """Where createAdapter publishes a broadcast: a room's own channel when it targets
    exactly one (the JavaScript adapter skips, undecoded, those of rooms it does not
    have)."""
    return f"{key}#{nsp}#{rooms[0]}#" if len(rooms) == 1 else f"{key}#{nsp}#"


def request_channel(key: str, nsp: str) -> str:
    """createAdapter's requests to the servers of a namespace."""
    return f"{key}-request#{nsp}#"


def decode_message(data: bytes, unpack: Callable[[bytes], Any]) -> dict[str, Any]:
    """A message of a JavaScript adapter: JSON (starts with "{") or its parser's encoding;
    BadMessage if it is not an object."""
    try:
        message = json.loads(data) if data[:1] == b"{" else unpack(data)
    except Exception as exc:
        raise BadMessage("not a message of the JavaScript adapter") from exc
    if not isinstance(message, dict):
        raise BadMessage("not a message of the JavaScript adapter")
    return message


# -- the JavaScript shapes of the cluster's messages ------------------------------------------


def opts_to_js(opts: BroadcastOptions) -> dict[str, Any]:
    return {"rooms": sorted(opts.rooms), "except": sorted(opts.except_rooms)}


def flags_to_js(opts: BroadcastOptions, *, volatile_false: bool) -> dict[str, bool]:
    """The JavaScript adapter's flags: ``volatile`` (said when false too with
    ``volatile_false``, as createAdapter's messages of sio_core always said it),
    ``compress`` only when false."""
    flags: dict[str, bool] = {}
    if opts.volatile or volatile_false:
        flags["volatile"] = opts.volatile
    if not opts.compress:
        flags["compress"] = False
    return flags


def opts_from_js(value: Any) -> BroadcastOptions:
    """A JavaScript server's ``{rooms, except, flags}`` (each may be missing). Values
    that compare equal give equal options (a flag is read by ``==``, as 1 == True), so a
    receiver may keep the last ones."""
    if not isinstance(value, dict):
        raise BadMessage("malformed options")
    rooms, excepted = value.get("rooms", []), value.get("except", [])
    flags = value.get("flags") or {}
    if (not isinstance(rooms, list) or not isinstance(excepted, list)
            or not all(isinstance(r, str) for r in rooms)
            or not all(isinstance(r, str) for r in excepted) or not isinstance(flags, dict)):
        raise BadMessage("malformed options")
    return BroadcastOptions(frozenset(rooms), frozenset(excepted),
                            volatile=bool(flags.get("volatile")),
                            compress=flags.get("compress") != False)  # noqa: E712


def packet_to_js(packet: sio.Packet) -> dict[str, Any]:
    """A broadcast's packet as the JavaScript adapter sends it; never its ack id (with
    acks, each server numbers its own)."""
    return {"type": int(packet.type), "nsp": packet.namespace, "data": packet.data}


def packet_from_js(value: Any, nsp: str) -> sio.Packet:
    """A JavaScript server's EVENT or BINARY_EVENT (its attachments in place in the data,
    as its parser carries them), as an EVENT of namespace ``nsp`` when it names none."""
    if not isinstance(value, dict) or value.get("type") not in (
            sio.PacketType.EVENT, sio.PacketType.BINARY_EVENT):
        raise BadMessage("malformed packet")
    namespace = value.get("nsp", nsp)
    if not isinstance(namespace, str):
        raise BadMessage("malformed packet")
    return event_packet(namespace, value.get("data"), value.get("id"), "packet")


def rooms_from_js(value: Any) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise BadMessage("malformed rooms")
    return frozenset(value)


def adapter_link(receiver: Receiver, store: RedisStore) -> AdapterFormat:
    """The link of a Cluster on ``store``: the sharded adapter's format on a Redis Cluster,
    the classic one elsewhere."""
    link = ShardedFormat(receiver, store) if store.mode is Mode.CLUSTER \
        else ClassicFormat(receiver, store)
    store.tap(link.on_message, link.patterns)
    return link


class AdapterFormat(abc.ABC):
    """What both formats share: answering requests, asking and gathering answers. A link
    of the Cluster (sio_core/socketio/link.py's)."""

    #: patterns the subscription reads (none with sharded pub/sub, which has no PSUBSCRIBE)
    patterns: tuple[str, ...] = ()

    def __init__(self, receiver: Receiver, store: RedisStore) -> None:
        self.receiver = receiver
        self.store = store
        self.key = store.key
        self.owner = store.owner
        self._ids = itertools.count(1)
        #: the namespaces whose channels are read
        self._namespaces: set[str] = set()
        #: our requests: request id -> the answers so far
        self._asked: dict[str, _Answers] = {}
        #: request ids of our broadcasts with acks: this prefix and the cluster's number
        self._acks_prefix = f"{self.owner}:acks:"
        self._tasks: set[asyncio.Task[None]] = set()
        #: broadcasts received and not yet delivered (see _broadcast_received)
        self._burst: list[tuple[str, Broadcast]] = []

    # -- what a format defines --------------------------------------------------------------

    @abc.abstractmethod
    def namespace_channels(self, nsp: str) -> list[str]:
        """The channels to read while we have namespace ``nsp``."""

    @abc.abstractmethod
    def on_message(self, channel: str, data: bytes) -> bool:
        """Handle what arrived on ``channel`` if it is one of ours; False if it is not."""

    @abc.abstractmethod
    def publish(self, message: Published) -> None:
        """A message to every server."""

    @abc.abstractmethod
    def send(self, target: str, message: ClientCount | ClientAck) -> None:
        """ClientCount or ClientAck to the JS-format server ``target``."""

    @abc.abstractmethod
    async def count_servers(self, namespace: str) -> int:
        """How many other servers answer a request about ``namespace``, counted as the
        JavaScript adapter counts them."""

    @abc.abstractmethod
    def _request(self, message: FetchSockets | ServerSideEmit,
                 request_id: str) -> tuple[str, bytes, str]:
        """Our request: (channel, message, the field of the answers that carries the
        result)."""

    # -- shared -----------------------------------------------------------------------------

    def _broadcast_received(self, origin: str, message: Broadcast) -> None:
        """Held until what arrived with it has been read (the end of this loop turn's
        callbacks, or the next message that is not a broadcast, whichever comes first),
        so that a burst's runs to the same sockets are delivered in one pass each
        (Cluster.receive_broadcasts), in order."""
        if not self._burst:
            asyncio.get_running_loop().call_soon(self._deliver_burst)
        self._burst.append((origin, message))

    def _deliver_burst(self) -> None:
        burst, self._burst = self._burst, []
        for origin, group in itertools.groupby(burst, operator.itemgetter(0)):
            self.receiver.receive_broadcasts(origin, [message for _, message in group])

    def namespace_added(self, name: str) -> None:
        """Answer the other servers' requests for this namespace too."""
        if name not in self._namespaces:
            self._namespaces.add(name)
            self.store.follow(self.namespace_channels(name))

    def namespace_removed(self, name: str) -> None:
        """The namespace is gone (an empty dynamic child): stop listening for it, as the
        JavaScript adapter's close() does."""
        if name != "/" and name in self._namespaces:
            self._namespaces.discard(name)
            self.store.unfollow(self.namespace_channels(name))

    @abc.abstractmethod
    def room_created(self, namespace: str, room: str, private: bool) -> None:
        """Room ``room`` of ``namespace`` has its first member here (``private``: the room
        of a socket's own id)."""

    @abc.abstractmethod
    def room_deleted(self, namespace: str, room: str, private: bool) -> None:
        """Room ``room`` of ``namespace`` has no member here any more."""

    def pack(self, value: Any) -> bytes:
        return js_pack(value, self.store.pack)

    async def ask_servers(self, message: FetchSockets | ServerSideEmit,
                          timeout: float) -> list[Any]:
        expected = await self.count_servers(message.namespace)
        if expected == 0:
            return []
        request_id = f"{self.owner}:{next(self._ids)}"
        channel, data, field = self._request(message, request_id)
        asked = _Answers(expected, field)
        self._asked[request_id] = asked
        try:
            self.store.publish_raw(channel, data)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(asked.done), timeout)
            return list(asked.answers)
        finally:
            del self._asked[request_id]

    def _answer(self, message: FetchSockets | ServerSideEmit, origin: str, channel: str,
                answer: Callable[[Any], dict[str, Any]]) -> None:
        """Answer a JavaScript-format request as the Cluster answers it; publish the
        answer."""
        store = self.store

        async def run() -> None:
            result = self.receiver.receive(origin, message)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await result
            store.publish_raw(channel, self.pack(answer(result)))

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _server_side_emit(self, origin: str, message: ServerSideEmit, request_id: Any,
                          channel: str, answer: Callable[[Any], dict[str, Any]]) -> None:
        """A server-side emit: received as is, or, when it asks for acks, answered."""
        if request_id is None:
            self.receiver.receive(origin, message)
        else:
            self._answer(message, origin, channel, answer)

    def _sockets_request(self, origin: str, action: type[SocketsAction], nsp: str,
                         body: dict[str, Any]) -> None:
        """Join, leave or disconnect the matching sockets: the same fields in both
        formats."""
        opts = opts_from_js(body.get("opts"))
        if issubclass(action, DisconnectSockets):
            message: SocketsAction = DisconnectSockets(nsp, opts, bool(body.get("close")))
        else:
            message = action(nsp, opts, rooms_from_js(body.get("rooms")))
        self.receiver.receive(origin, message)

    def _answered(self, request_id: str, response: dict[str, Any]) -> bool:
        """An answer to one of our requests (False: not ours)."""
        asked = self._asked.get(request_id)
        if asked is None:
            return False
        asked.add(response)
        return True

    def _broadcast_request(self, request_id: str) -> int | None:
        """The cluster's number of our broadcast with acks that ``request_id`` names."""
        if request_id.startswith(self._acks_prefix):
            number = request_id[len(self._acks_prefix):]
            if number.isdigit():
                return int(number)
        return None

    def _client_count(self, request_id: str, count: Any, nsp: str) -> None:
        request = self._broadcast_request(request_id)
        if request is not None and isinstance(count, int) and not isinstance(count, bool) \
                and count >= 0:
            self.receiver.receive(JS, ClientCount(request, count, nsp))

    def _client_ack(self, request_id: str, packet: Any, nsp: str) -> None:
        # the JavaScript adapters pass on a client's first ack argument only
        request = self._broadcast_request(request_id)
        if request is not None:
            self.receiver.receive(JS, ClientAck(request, [packet], nsp))


class ClassicFormat(AdapterFormat):
    """``createAdapter`` of @socket.io/redis-adapter (classic pub/sub)."""

    def __init__(self, receiver: Receiver, store: RedisStore) -> None:
        super().__init__(receiver, store)
        self.patterns = (f"{self.key}#*", f"{self.key}-response#*")
        self._request_prefix = f"{self.key}-request#"
        self._response_prefix = f"{self.key}-response#"
        self._broadcast_prefix = f"{self.key}#"
        #: how this server's own broadcasts begin, packed (the array's start and its uid):
        #: what it reads back on its pattern is dropped on sight, not decoded
        #: the options of the last broadcast received and published, and their forms
        self._received_js: Any = None
        self._received = BroadcastOptions()
        self._sent: BroadcastOptions | None = None
        self._sent_js: dict[str, Any] = {}
        self._sent_rooms: list[str] = []
        first, second = (store.pack([self.owner, n, n]) for n in (0, 1))
        self._own = first[:next(i for i, (a, b) in enumerate(zip(first, second, strict=False))
                                if a != b)]

    def namespace_channels(self, nsp: str) -> list[str]:
        return [self._request_channel(nsp)]

    def room_created(self, namespace: str, room: str, private: bool) -> None:
        """Nothing to read: every room's channel is read by pattern."""

    def room_deleted(self, namespace: str, room: str, private: bool) -> None:
        """Nothing to stop reading."""

    def _request_channel(self, nsp: str) -> str:
        return request_channel(self.key, nsp)

    def on_message(self, channel: str, data: bytes) -> bool:
        if channel.startswith(self._request_prefix):
            self._deliver_burst()  # what came before it, first
            self._on_request(data, channel[len(self._request_prefix):-1])
        elif channel.startswith(self._response_prefix):
            self._deliver_burst()
            self._on_response(data, channel[len(self._response_prefix):-1])
        elif channel.startswith(self._broadcast_prefix):
            self._on_broadcast(data)
        else:
            return False
        return True

    def _on_broadcast(self, data: bytes) -> None:
        if data.startswith(self._own):
            return
        try:
            item = self.store.unpack(data)
        except Exception as exc:
            raise BadMessage("not a broadcast of the JavaScript adapter") from exc
        if not isinstance(item, list) or len(item) != 3:
            raise BadMessage("not a broadcast of the JavaScript adapter")
        uid, packet, opts = item
        if uid == self.owner:
            return
        event = packet_from_js(packet, "/")
        if event.id is not None:
            raise BadMessage("a broadcast with an ack id")
        # a burst's broadcasts mostly share their options: the last ones read are kept
        # (equal JavaScript options make equal BroadcastOptions, see opts_from_js)
        if opts != self._received_js:
            self._received = opts_from_js(opts)
            self._received_js = opts
        self._broadcast_received(JS + str(uid), Broadcast(
            event.namespace, self._received, None, packet=event))

    def _on_request(self, data: bytes, channel_nsp: str) -> None:
        request = decode_message(data, self.store.unpack)
        if request.get("uid") == self.owner:
            return
        rtype = request.get("type")
        origin = JS + str(request.get("uid"))
        request_id = request.get("requestId")
        receive = self.receiver.receive
        response_channel = f"{self._response_prefix}{channel_nsp}#"
        if rtype == BROADCAST:
            if not isinstance(request_id, str):
                raise BadMessage("a broadcast with acks without a request id")
            receive(origin, BroadcastWithAcks(packet_from_js(request.get("packet"), "/"),
                                              opts_from_js(request.get("opts")), request_id))
        elif rtype in (REMOTE_JOIN, REMOTE_LEAVE, REMOTE_DISCONNECT):
            self._sockets_request(origin, _ACTIONS[rtype], channel_nsp, request)
        elif rtype == SERVER_SIDE_EMIT:
            self._server_side_emit(origin, ServerSideEmit(channel_nsp, event_data(
                request.get("data"), "server_side_emit")), request_id, response_channel,
                lambda answer: {"type": SERVER_SIDE_EMIT, "requestId": request_id,
                                "data": answer})
        elif rtype == REMOTE_FETCH and request_id is not None:
            self._answer(FetchSockets(channel_nsp, opts_from_js(request.get("opts"))), origin,
                         response_channel,
                         lambda sockets: {"requestId": request_id, "sockets": sockets or []})
        elif rtype in (SOCKETS, ALL_ROOMS) and request_id is not None:
            self._answer(FetchSockets(channel_nsp, BroadcastOptions(
                rooms_from_js(request.get("rooms") or []))), origin, response_channel,
                lambda sockets: _sockets_or_rooms(rtype, request_id, sockets or []))

    def _on_response(self, data: bytes, channel_nsp: str) -> None:
        # every server's answers to every request share the channel: ours are known by
        # their request id, the rest are not for us
        response = decode_message(data, self.store.unpack)
        request_id = response.get("requestId")
        if not isinstance(request_id, str) or self._answered(request_id, response):
            return
        rtype = response.get("type")
        if rtype == BROADCAST_CLIENT_COUNT:
            self._client_count(request_id, response.get("clientCount"), channel_nsp)
        elif rtype == BROADCAST_ACK:
            self._client_ack(request_id, response.get("packet"), channel_nsp)

    def publish(self, message: Published) -> None:
        publish_raw = self.store.publish_raw
        if isinstance(message, Broadcast):
            packet = message.packet
            assert packet is not None  # the sender's: it has the packet it encoded
            opts = message.opts
            if opts is not self._sent:  # (a burst's broadcasts mostly share theirs)
                self._sent, self._sent_rooms = opts, sorted(opts.rooms)
                self._sent_js = {**opts_to_js(opts),
                                 "flags": flags_to_js(opts, volatile_false=True)}
            publish_raw(broadcast_channel(self.key, packet.namespace, self._sent_rooms),
                        self.store.pack([self.owner, packet_to_js(packet), self._sent_js]))
            return
        if isinstance(message, BroadcastWithAcks):
            # every server of the namespace answers on the response channel: its client
            # count, then each ack (see _on_response); the ack id is each server's own
            packet, opts = message.packet, message.opts
            publish_raw(self._request_channel(packet.namespace), self.store.pack(
                {"uid": self.owner, "requestId": f"{self._acks_prefix}{message.request}",
                 "type": BROADCAST, "packet": packet_to_js(packet),
                 "opts": {**opts_to_js(opts),
                          "flags": flags_to_js(opts, volatile_false=True)}}))
            return
        request: dict[str, Any]
        if isinstance(message, SocketsJoin | SocketsLeave):
            request = {"uid": self.owner,
                       "type": REMOTE_JOIN if isinstance(message, SocketsJoin) else REMOTE_LEAVE,
                       "opts": opts_to_js(message.opts), "rooms": sorted(message.rooms)}
        elif isinstance(message, DisconnectSockets):
            request = {"uid": self.owner, "type": REMOTE_DISCONNECT,
                       "opts": opts_to_js(message.opts), "close": message.close}
        else:  # a server-side emit without ack
            request = {"uid": self.owner, "type": SERVER_SIDE_EMIT, "data": message.data}
        # JSON as the JavaScript adapter sends it; a server-side emit with bytes, which JSON
        # cannot carry, in the parser's format (it reads both)
        publish_raw(self._request_channel(message.namespace), self.pack(request))

    def send(self, target: str, message: ClientCount | ClientAck) -> None:
        channel = f"{self._response_prefix}{message.namespace}#"
        if isinstance(message, ClientCount):
            self.store.publish_raw(channel, json_pack({
                "type": BROADCAST_CLIENT_COUNT, "requestId": message.request,
                "clientCount": message.count}))
        else:
            args = message.args
            self.store.publish_raw(channel, self.store.pack(
                {"type": BROADCAST_ACK, "requestId": message.request,
                 "packet": args[0] if len(args) == 1 else args}))

    async def count_servers(self, namespace: str) -> int:
        """Every server of the namespace (a JavaScript one, or a sio_core worker) subscribes
        to its request channel: PUBSUB NUMSUB, less ourselves (the JavaScript adapter's
        serverCount)."""
        [(_, subscribers)] = await self.store.command(
            self.store.cmd.pubsub_numsub(self._request_channel(namespace)))
        return max(0, int(subscribers) - 1)

    def _request(self, message: FetchSockets | ServerSideEmit,
                 request_id: str) -> tuple[str, bytes, str]:
        request: dict[str, Any] = {"uid": self.owner, "requestId": request_id}
        if isinstance(message, FetchSockets):
            request.update(type=REMOTE_FETCH, opts=opts_to_js(message.opts))
            field = "sockets"
        else:
            request.update(type=SERVER_SIDE_EMIT, data=message.data)
            field = "data"
        return self._request_channel(message.namespace), self.pack(request), field


class ShardedFormat(AdapterFormat):
    """``createShardedAdapter`` of @socket.io/redis-adapter (Redis 7 sharded pub/sub)."""

    def __init__(self, receiver: Receiver, store: RedisStore) -> None:
        super().__init__(receiver, store)
        self._prefix = f"{self.key}#"
        mode = store.subscription_mode
        #: which rooms' own channels are read: public ones, and private ones too
        self._read_public = mode in ("dynamic", "dynamic-private")
        self._read_private = mode == "dynamic-private"
        #: room channels to (un)subscribe at the end of this loop turn: channel -> follow
        self._room_changes: dict[str, bool] = {}
        #: the room channels read now
        self._room_channels: set[str] = set()

    def _channel(self, nsp: str) -> str:
        return f"{self._prefix}{nsp}#"

    def room_created(self, namespace: str, room: str, private: bool) -> None:
        if self._read_private if private else self._read_public:
            self._room_change(f"{self._prefix}{namespace}#{room}#", True)

    def room_deleted(self, namespace: str, room: str, private: bool) -> None:
        if self._read_private if private else self._read_public:
            self._room_change(f"{self._prefix}{namespace}#{room}#", False)

    def _room_change(self, channel: str, follow: bool) -> None:
        # the last wish of the turn counts: a room made and emptied at once costs nothing
        if not self._room_changes:
            asyncio.get_running_loop().call_soon(self._apply_room_changes)
        self._room_changes[channel] = follow

    def _apply_room_changes(self) -> None:
        changes, self._room_changes = self._room_changes, {}
        reading = self._room_channels
        follow = [channel for channel, wanted in changes.items()
                  if wanted and channel not in reading]
        unfollow = [channel for channel, wanted in changes.items()
                    if not wanted and channel in reading]
        reading.update(follow)
        reading.difference_update(unfollow)
        if follow:
            self.store.follow(follow)
        if unfollow:
            self.store.unfollow(unfollow)

    def namespace_channels(self, nsp: str) -> list[str]:
        channel = self._channel(nsp)
        return [channel, f"{channel}{self.owner}#"]

    def _message(self, mtype: int, nsp: str, data: dict[str, Any]) -> bytes:
        return self.pack({"uid": self.owner, "nsp": nsp, "type": mtype, "data": data})

    def on_message(self, channel: str, data: bytes) -> bool:
        if not channel.startswith(self._prefix):
            return False
        message = decode_message(data, self.store.unpack)
        if message.get("uid") == self.owner:
            return True
        nsp, mtype, body = message.get("nsp"), message.get("type"), message.get("data")
        if not isinstance(nsp, str) or not isinstance(body, dict):
            return True  # a heartbeat, or not a message at all
        request_id = body.get("requestId")
        if mtype != C_BROADCAST or request_id is not None:
            self._deliver_burst()  # what came before it, first
        if mtype in (C_FETCH_SOCKETS_RESPONSE, C_SERVER_SIDE_EMIT_RESPONSE):
            if isinstance(request_id, str):
                self._answered(request_id, body)
        elif mtype == C_BROADCAST_CLIENT_COUNT:
            if isinstance(request_id, str):
                self._client_count(request_id, body.get("clientCount"), nsp)
        elif mtype == C_BROADCAST_ACK:
            if isinstance(request_id, str):
                self._client_ack(request_id, body.get("packet"), nsp)
        else:
            self._on_request(JS + str(message.get("uid")), nsp, mtype, body, request_id)
        return True

    def _on_request(self, origin: str, nsp: str, mtype: Any, body: dict[str, Any],
                    request_id: Any) -> None:
        receive = self.receiver.receive
        # the answer goes to the asker's own channel
        reply_to = f"{self._channel(nsp)}{origin[len(JS):]}#"
        if mtype == C_BROADCAST:
            packet = packet_from_js(body.get("packet"), nsp)
            opts = opts_from_js(body.get("opts"))
            if request_id is None:
                if packet.id is not None:
                    raise BadMessage("a broadcast with an ack id")
                self._broadcast_received(origin, Broadcast(packet.namespace, opts, None,
                                                           packet=packet))
            elif isinstance(request_id, str):
                receive(origin, BroadcastWithAcks(packet, opts, request_id))
            else:
                raise BadMessage("malformed request id")
        elif mtype in (C_SOCKETS_JOIN, C_SOCKETS_LEAVE, C_DISCONNECT_SOCKETS):
            self._sockets_request(origin, _C_ACTIONS[mtype], nsp, body)
        elif mtype == C_FETCH_SOCKETS and request_id is not None:
            self._answer(FetchSockets(nsp, opts_from_js(body.get("opts"))), origin, reply_to,
                         lambda sockets: {"uid": self.owner, "nsp": nsp,
                                          "type": C_FETCH_SOCKETS_RESPONSE,
                                          "data": {"requestId": request_id,
                                                   "sockets": sockets or []}})
        elif mtype == C_SERVER_SIDE_EMIT:
            self._server_side_emit(origin, ServerSideEmit(nsp, event_data(
                body.get("packet"), "server_side_emit")), request_id, reply_to,
                lambda answer: {"uid": self.owner, "nsp": nsp,
                                "type": C_SERVER_SIDE_EMIT_RESPONSE,
                                "data": {"requestId": request_id, "packet": answer}})

    def publish(self, message: Published) -> None:
        data: dict[str, Any]
        if isinstance(message, Broadcast | BroadcastWithAcks):
            packet = message.packet
            assert packet is not None  # the sender's: it has the packet it encoded
            nsp = packet.namespace
            data = {"packet": packet_to_js(packet), "opts": self._opts(message.opts)}
            if isinstance(message, BroadcastWithAcks):
                data["requestId"] = f"{self._acks_prefix}{message.request}"
            mtype = C_BROADCAST
        elif isinstance(message, SocketsJoin | SocketsLeave):
            nsp = message.namespace
            mtype = C_SOCKETS_JOIN if isinstance(message, SocketsJoin) else C_SOCKETS_LEAVE
            data = {"opts": self._opts(message.opts), "rooms": sorted(message.rooms)}
        elif isinstance(message, DisconnectSockets):
            nsp = message.namespace
            mtype = C_DISCONNECT_SOCKETS
            data = {"opts": self._opts(message.opts), "close": message.close}
        else:  # a server-side emit without ack
            nsp = message.namespace
            mtype = C_SERVER_SIDE_EMIT
            data = {"packet": message.data}
        self.store.publish_raw(self._channel(nsp), self._message(mtype, nsp, data))

    @staticmethod
    def _opts(opts: BroadcastOptions) -> dict[str, Any]:
        return {**opts_to_js(opts), "flags": flags_to_js(opts, volatile_false=False)}

    def send(self, target: str, message: ClientCount | ClientAck) -> None:
        nsp = message.namespace
        channel = f"{self._channel(nsp)}{target[len(JS):]}#"
        if isinstance(message, ClientCount):
            self.store.publish_raw(channel, self._message(
                C_BROADCAST_CLIENT_COUNT, nsp,
                {"requestId": message.request, "clientCount": message.count}))
        else:
            args = message.args
            self.store.publish_raw(channel, self._message(
                C_BROADCAST_ACK, nsp,
                {"requestId": message.request, "packet": args[0] if len(args) == 1 else args}))

    async def count_servers(self, namespace: str) -> int:
        """Every server of the namespace reads its channel: PUBSUB SHARDNUMSUB there (on the
        master of its slot), less ourselves (the sharded adapter's serverCount)."""
        channel = self._channel(namespace)
        [(_, subscribers)] = await self.store.command(self.store.cmd.pubsub_shardnumsub(
            channel, **self.store.shard_target(channel)))
        return max(0, int(subscribers) - 1)

    def _request(self, message: FetchSockets | ServerSideEmit,
                 request_id: str) -> tuple[str, bytes, str]:
        nsp = message.namespace
        if isinstance(message, FetchSockets):
            data = self._message(C_FETCH_SOCKETS, nsp, {
                "opts": opts_to_js(message.opts), "requestId": request_id})
            return self._channel(nsp), data, "sockets"
        data = self._message(C_SERVER_SIDE_EMIT, nsp,
                             {"packet": message.data, "requestId": request_id})
        return self._channel(nsp), data, "packet"


class _Answers:
    """The answers to one request of ours: done when every server counted has answered
    (each answer counts, as in the JavaScript adapter, even one without the field)."""

    def __init__(self, expected: int, field: str) -> None:
        self.expected = expected
        self.field = field
        self.answers: list[Any] = []
        self.count = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def add(self, response: dict[str, Any]) -> None:
        if self.done.done():
            return
        self.count += 1
        if self.field in response:
            self.answers.append(response[self.field])
        if self.count >= self.expected:
            self.done.set_result(None)


def _sockets_or_rooms(rtype: Any, request_id: Any, sockets: list[Any]) -> dict[str, Any]:
    if rtype == SOCKETS:
        return {"requestId": request_id, "sockets": [s.get("id") for s in sockets
                                                      if isinstance(s, dict)]}
    rooms: set[str] = set()
    for s in sockets:
        if isinstance(s, dict):
            rooms.update(r for r in s.get("rooms") or [] if isinstance(r, str))
    return {"requestId": request_id, "rooms": sorted(rooms)}
