"""MemoryStore: workers in one process.

A lone MemoryStore has no peers: everything stays in the process. Several MemoryStores
sharing a :class:`MemoryBus` behave like workers of one machine (envelopes are packed and
unpacked on the way, as on a real bus, and delivered on a later loop turn), which is how
the store contract suite runs the same tests against this and the real backends.
"""

from __future__ import annotations

import asyncio

from .base import BusKind, Envelope, Store
from .log import LOG_KINDS, LogKeeper, LogLimits, RelayedLog


class MemoryBus:
    def __init__(self) -> None:
        self.stores: dict[str, MemoryStore] = {}
        #: connection state recovery's log, kept by the bus as the master's hub keeps it
        self.log = LogKeeper(self._send, lambda: list(self.stores))

    def _send(self, owner: str, envelope: Envelope) -> None:
        store = self.stores.get(owner)
        if store is not None:
            asyncio.get_running_loop().call_soon(store.receive_packed, envelope.pack())

    def join(self, store: MemoryStore) -> None:
        self.stores[store.owner] = store
        self._announce()

    def leave(self, store: MemoryStore) -> None:
        if self.stores.get(store.owner) is store:
            del self.stores[store.owner]
            self._announce()

    def _announce(self) -> None:
        owners = list(self.stores)
        for store in list(self.stores.values()):
            store.deliver(Envelope(BusKind.PEERS, "bus", owners))

    def transmit(self, envelope: Envelope) -> None:
        if envelope.kind in LOG_KINDS:
            self.log.handle(Envelope.unpack(envelope.pack()))  # as a bus would carry it
            return
        data = envelope.pack()
        loop = asyncio.get_running_loop()
        if envelope.target is None:
            targets = [s for o, s in self.stores.items() if o != envelope.origin]
        else:
            store = self.stores.get(envelope.target)
            if store is None:
                sender = self.stores.get(envelope.origin)
                if sender is not None and envelope.request_id is not None:
                    loop.call_soon(sender.deliver, Envelope(
                        BusKind.NO_PEER, envelope.target, None, envelope.origin,
                        envelope.request_id))
                return
            targets = [store]
        for store in targets:
            loop.call_soon(store.receive_packed, data)


class MemoryStore(Store):
    def __init__(self, owner: str = "local", bus: MemoryBus | None = None) -> None:
        super().__init__(owner)
        self.bus = bus

    async def start(self) -> None:
        if self.bus is not None:
            self.bus.join(self)

    async def close(self) -> None:
        if self.bus is not None:
            self.bus.leave(self)
        await super().close()

    def packet_log(self, limits: LogLimits) -> RelayedLog | None:
        """On a bus, the bus keeps the log (as the master's hub does); alone, none."""
        return RelayedLog(self, limits) if self.bus is not None else None

    def _transmit(self, envelope: Envelope) -> None:
        if self.bus is not None:
            self.bus.transmit(envelope)
            self.messages_sent += 1

    def receive_packed(self, data: bytes) -> None:
        self.deliver_packed(data, "the memory bus")
