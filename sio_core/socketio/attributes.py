"""The Python base of the compiled :class:`~sio_core.socketio.handlers.EventEmitter`.

This module is not compiled (setup.py's COMPILED). A class mypyc compiles has no ``__dict__``
and cannot be weakly referenced, unless a class it inherits from is a Python class: then its
instances have both, while the attributes it declares stay the compiled class's fields. So
sockets and namespaces take attributes of the application's own (``socket.username = name``,
as JavaScript applications write) and weak references (the class-based namespaces' and the
admin UI's tables) on the compiled build as on the pure one.
"""


class Attributes:
    """Nothing of its own: see the module's docstring."""
