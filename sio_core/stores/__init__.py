"""Stores: the only way one worker talks to another.

One contract (:class:`~sio_core.stores.base.Store`), several backends: MemoryStore (one
process; several "workers" in one process share a MemoryBus, which is how the contract
suite tests it), the master hub (one machine, N workers), RedisStore (many machines).
"""
