"""Event listeners, and calling them whether they are sync or async.

How this works: :class:`EventEmitter` keeps listeners per event name (``on``, ``once``,
``off``). :func:`call` runs one listener: a sync one right away, an async one as a task
(so a handler that awaits its own client's ack never blocks the packets that carry it).
An exception is logged with its context and goes no further: a handler's bug never
kills a connection. A :class:`Context` that carries a namespace's counters has its handlers'
exceptions counted, and, for an event, the time an async handler takes (its task exists
anyway; a sync handler is not timed, see counters.py).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import CodeType, FunctionType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .attributes import Attributes

if TYPE_CHECKING:
    from .counters import NamespaceCounters

try:
    from mypy_extensions import mypyc_attr
except ImportError:  # a mark for mypyc alone (setup.py): nothing to do without it
    def mypyc_attr(*attrs: str, **kwattrs: object) -> Callable[[Any], Any]:  # type: ignore[misc]
        return lambda cls: cls

logger = logging.getLogger("sio_core.socketio")

F = TypeVar("F", bound=Callable[..., Any])

#: tasks of running async handlers: referenced until done (asyncio keeps only weak refs)
_tasks: set[asyncio.Task[Any]] = set()


#: a parameter of one of these names receives a client's ack callable by keyword
ACK_PARAMETERS = ("ack", "callback")


@dataclass(slots=True)
class Listener:
    fn: Callable[..., Any]
    once: bool
    #: how many positional arguments fn takes (None: *args, any number)
    arity: int | None
    #: how fn takes a client's ack callable: by the keyword of that name (a str), or (an
    #: int n) as one more positional argument when the client sent fewer than n
    ack: str | int

    def __init__(self, fn: Callable[..., Any], once: bool, arity: int | None,
                 ack: str | int) -> None:
        # written out (see protocol/engineio.py's Packet)
        self.fn = fn
        self.once = once
        self.arity = arity
        self.ack = ack


def signature_of(fn: Callable[..., Any]) -> tuple[int | None, str | int]:
    """``(arity, ack)`` of a listener (see :class:`Listener`), read once when it is added.

    The rule for the ack callable: a parameter named ``ack`` or ``callback`` (not
    positional-only) gets it by keyword; otherwise it goes after the client's arguments
    only if the handler has a *required* positional parameter left for it (the JavaScript
    ``(data, callback) => ...``). A ``*args`` handler or one with defaults (``room=None``)
    is never handed it unasked: its return value answers, as in python-socketio.
    """
    if (type(fn) is FunctionType and not hasattr(fn, "__wrapped__")
            and not hasattr(fn, "__signature__") and not hasattr(fn, "_partialmethod")):
        # a plain function (nothing inspect.signature would follow instead: __wrapped__,
        # __signature__, a partialmethod's mark): its code says it,
        # at a fraction of inspect.signature's cost (listeners are added per connection).
        # (Not ``fn.__dict__``: reading it gives each closure a dict of its own, 64 bytes
        # per listener per connection.)
        code = fn.__code__
        positional = code.co_argcount
        keywords = code.co_varnames[code.co_posonlyargcount:positional + code.co_kwonlyargcount]
        for name in ACK_PARAMETERS:
            if name in keywords:
                return _arity(code, positional), name
        return _arity(code, positional), positional - len(fn.__defaults__ or ())
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None, 0
    count: int | None = 0
    required = 0
    keyword: str | None = None
    for param in signature.parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            count = None
        elif param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            if count is not None:
                count += 1
            if param.default is param.empty:
                required += 1
        if (keyword is None and param.name in ACK_PARAMETERS
                and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)):
            keyword = param.name
    return count, keyword if keyword is not None else required


def _arity(code: CodeType, positional: int) -> int | None:
    return None if code.co_flags & inspect.CO_VARARGS else positional


@mypyc_attr(allow_interpreted_subclasses=True)  # Namespace is not compiled (setup.py)
class EventEmitter(Attributes):
    """Listeners by event name: ``on`` (also as a decorator), ``once``, ``off``,
    ``listeners``; the base of sockets and namespaces."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}
        #: events that have (or had) a ``once`` listener: only those need filtering
        #: (None until there is one: an empty set per socket costs 216 bytes)
        self._once_events: set[str] | None = None

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, handler: F) -> F: ...

    def on(self, event: str, handler: F | None = None) -> F | Callable[[F], F]:
        """Add a listener; usable as ``obj.on("event", fn)`` or ``@obj.on("event")``. The
        handler is returned as it was given (its type too), sync or async alike."""
        if handler is None:
            def decorator(fn: F) -> F:
                self._add(event, fn, once=False)
                return fn
            return decorator
        self._add(event, handler, once=False)
        return handler

    @overload
    def once(self, event: str) -> Callable[[F], F]: ...
    @overload
    def once(self, event: str, handler: F) -> F: ...

    def once(self, event: str, handler: F | None = None) -> F | Callable[[F], F]:
        """Like :meth:`on`, for the next occurrence of the event only."""
        if handler is None:
            def decorator(fn: F) -> F:
                self._add(event, fn, once=True)
                return fn
            return decorator
        self._add(event, handler, once=True)
        return handler

    def off(self, event: str | None = None, handler: Callable[..., Any] | None = None) -> None:
        """Remove one listener, all listeners of an event, or all listeners."""
        if event is None:
            self._listeners.clear()
        elif handler is None:
            self._listeners.pop(event, None)
        else:
            remaining = [item for item in self._listeners.get(event, []) if item.fn != handler]
            if remaining:
                self._listeners[event] = remaining
            else:
                self._listeners.pop(event, None)

    def listeners(self, event: str) -> list[Callable[..., Any]]:
        return [item.fn for item in self._listeners.get(event, [])]

    def _add(self, event: str, fn: Callable[..., Any], *, once: bool) -> None:
        # a new list, never one changed in place: a list handed out by _take stays as it
        # was while its listeners run, whatever they add (so _take need not copy it)
        listener = Listener(fn, once, *signature_of(fn))
        self._listeners[event] = [*self._listeners.get(event, ()), listener]
        if once:
            if self._once_events is None:
                self._once_events = set()
            self._once_events.add(event)

    def _take(self, event: str) -> Sequence[Listener]:
        """The listeners to call for one occurrence of event (``once`` ones removed): a
        list no one changes (see _add; the caller must not change it either)."""
        items = self._listeners.get(event)
        if not items:
            return ()
        once_events = self._once_events
        if once_events is not None and event in once_events:
            once_events.discard(event)
            kept = [item for item in items if not item.once]
            if kept:
                self._listeners[event] = kept
            else:
                del self._listeners[event]
        return items


class Context:
    """What a handler runs for ("event 'x' of <Socket ...>"), for the log line of its
    exception: formatted only if one is logged, not on every event. ``counters`` count its
    exceptions. (Positional arguments only: one is made per event, and keywords would cost
    it half as much again.)"""

    __slots__ = ("_args", "_template", "counters")
    #: whether an async handler's duration is counted
    timed = False

    def __init__(self, counters: NamespaceCounters | None, template: str,
                 *args: object) -> None:
        self._template = template
        self._args = args
        self.counters = counters

    def __str__(self) -> str:
        return self._template.format(*self._args)


class EventContext(Context):
    """A client's event: its async handlers' durations are counted too."""

    __slots__ = ()
    timed = True


#: results that are certainly not awaitable: most handlers return one of these, and
#: inspect.isawaitable (an ABC check) costs more than the rest of a small handler's call
_PLAIN_RESULTS = frozenset({type(None), str, int, float, bool, bytes, list, dict, tuple})


def call(fn: Callable[..., Any], args: tuple[Any, ...], context: str | Context,
         on_result: Callable[[Any], None] | None = None,
         kwargs: dict[str, Any] | None = None) -> asyncio.Task[Any] | None:
    """Run one handler; feed its result (awaited if need be) to ``on_result``."""
    try:
        result = fn(*args, **kwargs) if kwargs else fn(*args)
    except Exception:
        _failed(context)
        return None
    if type(result) not in _PLAIN_RESULTS and inspect.isawaitable(result):
        task = asyncio.get_running_loop().create_task(_finish(result, context, on_result))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)
        return task
    if on_result is not None:
        _deliver(on_result, result, context)
    return None


async def _finish(awaitable: Awaitable[Any], context: str | Context,
                  on_result: Callable[[Any], None] | None) -> None:
    start = time.perf_counter()
    try:
        result = await awaitable
    except asyncio.CancelledError:
        raise
    except Exception:
        _timed(context, start)
        _failed(context)
        return
    _timed(context, start)
    if on_result is not None:
        _deliver(on_result, result, context)


def _failed(context: str | Context) -> None:
    logger.exception("error in handler for %s", context)
    counters = getattr(context, "counters", None)
    if counters is not None:
        counters.handler_errors += 1


def _timed(context: str | Context, start: float) -> None:
    if isinstance(context, Context) and context.timed and context.counters is not None:
        context.counters.handler_seconds.observe(time.perf_counter() - start)


def _deliver(on_result: Callable[[Any], None], result: Any, context: str | Context) -> None:
    try:
        on_result(result)
    except Exception:
        logger.exception("error delivering the result of %s", context)


class Done:
    """An awaitable that is already complete: what an emit that needed no I/O returns,
    so ``socket.emit(...)`` works with or without ``await``."""

    __slots__ = ()

    def __await__(self) -> Any:
        return
        yield  # pragma: no cover - makes this a generator


DONE = Done()
