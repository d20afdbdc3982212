"""Sans-I/O protocol core: codecs and the Engine.IO session state machine.

Nothing in this package does I/O, imports asyncio, or reads a clock: time comes in as a
``now`` argument and deadlines go out as numbers for the I/O layer to arm timers on.
"""
