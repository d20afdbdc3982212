"""The master process of ``serve --workers N``: starts workers, keeps them alive, drains.

How this works (a boring supervisor, on purpose): the master checks that the port is free,
starts the hub (the workers' meeting point) and N worker processes, each of which binds
the port with SO_REUSEPORT so the kernel spreads connections; the master holds no client
traffic. Each worker also gets a control channel of its own (sio_core/control.py), which
does not depend on the store. Signal handlers only record the signal; the main loop acts
on it:

- a worker that exits is restarted, with a backoff that grows while it keeps dying;
- a worker that stops answering the liveness ping on its control channel (a blocked
  event loop, a stopped process) is killed and restarted;
- SIGTERM / SIGINT: a drain in two phases. Every worker is sent SIGTERM: it refuses new
  sessions and closes its own (polling clients get ``1``, websockets a closing
  handshake) while it keeps listening and relaying; once every worker has said
  "drained", the master tells them to exit, and exits 0 once they are gone, killing any
  left after the timeout. Listening until then matters: a polling client needs one more
  GET to collect its ``1``, through whichever worker the kernel picks;
- SIGHUP: workers are replaced one at a time (the new one ready before the old one goes):
  the old one is told to retire on its control channel, stops listening at once (the
  others take the new connections, and relay its sessions' requests to it), hands a
  polling handshake that still reaches it to one of them, and drains.

A worker that fails before it is ready at start-up (app import error, port taken) stops
everything with one clear line and a non-zero exit, not a restart loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import build
from .config import Config
from .control import DRAINED, ENV_CONTROL_FD, EXIT, PING, PONG, READY, RETIRE, Channel
from .listen import bind_unix
from .protocol.sid import new_owner
from .stores.hub import Hub

logger = logging.getLogger("sio_core.supervisor")

#: the listen backlog of a unix socket the master binds (the workers' Config decides theirs)
BACKLOG = Config().backlog

ENV_WORKER_ID = "SIO_CORE_WORKER_ID"
ENV_OWNER = "SIO_CORE_OWNER"
ENV_HUB = "SIO_CORE_HUB"
ENV_REUSE_PORT = "SIO_CORE_REUSE_PORT"
#: the listening socket a worker inherits from the master (a unix socket, --uds)
ENV_LISTEN_FD = "SIO_CORE_LISTEN_FD"


@dataclass
class SupervisorOptions:
    workers: int
    host: str
    port: int
    #: arguments for ``python -m sio_core`` that run one worker
    worker_args: list[str]
    #: SIGTERM: how long the workers have to drain before they are killed
    shutdown_timeout: float = 10.0
    #: a worker not ready (listening) by then stops the start-up with an error
    startup_timeout: float = 30.0
    #: the master pings every worker this often over its control channel; a worker whose
    #: event loop has not answered for liveness_timeout is killed and replaced. 10 s: far
    #: beyond any healthy loop turn, short enough that its share of new connections (the
    #: kernel keeps handing them to its listener) does not wait long
    liveness_interval: float = 2.0
    liveness_timeout: float = 10.0
    node_id: str = field(default_factory=lambda: secrets.token_hex(3))
    use_hub: bool = True
    #: a unix socket the master binds and every worker serves (sio_core/listen.py)
    uds: str | None = None
    #: where the workers listen, for the log
    where: str = ""


@dataclass
class _Worker:
    index: int
    owner: str
    process: subprocess.Popen[bytes]
    started: float
    control: Channel | None = None
    ready: bool = False
    drained: bool = False
    #: the last pong on the control channel (or the time it became ready)
    last_pong: float = 0.0


def port_is_free(host: str, port: int) -> OSError | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as exc:
        return exc
    finally:
        probe.close()
    return None


class Supervisor:
    def __init__(self, options: SupervisorOptions) -> None:
        self.options = options
        self.workers: dict[int, _Worker] = {}
        self._signal: signal.Signals | None = None
        self._wake = asyncio.Event()
        self._tmp = tempfile.mkdtemp(prefix="sio_core-")
        self.hub: Hub | None = None
        self._backoff: dict[int, float] = {}
        self._last_ping = 0.0
        #: the unix socket the workers inherit (--uds)
        self.listener: socket.socket | None = None

    # -- signals: record only -------------------------------------------------------------

    def _record(self, sig: signal.Signals) -> None:
        if self._signal is None or sig is not signal.SIGHUP:
            self._signal = sig
        self._wake.set()

    # -- workers ----------------------------------------------------------------------------

    def _spawn(self, index: int) -> _Worker:
        owner = new_owner(self.options.node_id, index)
        env = dict(os.environ)
        env[ENV_WORKER_ID] = str(index)
        env[ENV_OWNER] = owner
        env[ENV_REUSE_PORT] = "1"
        if self.hub is not None:
            env[ENV_HUB] = self.hub.path
        ours, theirs = socket.socketpair()
        env[ENV_CONTROL_FD] = str(theirs.fileno())
        fds = [theirs.fileno()]
        if self.listener is not None:
            env[ENV_LISTEN_FD] = str(self.listener.fileno())
            fds.append(self.listener.fileno())
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "sio_core", *self.options.worker_args], env=env,
                pass_fds=fds)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        worker = _Worker(index, owner, process, time.monotonic())
        worker.control = Channel(ours, lambda word: self._on_control(worker, word),
                                 self._wake.set)
        worker.control.start()
        logger.info("started worker #%d (pid %d)", index, process.pid)
        return worker

    def _on_control(self, worker: _Worker, word: str) -> None:
        if word == PONG:
            worker.last_pong = time.monotonic()
            return
        if word == READY:
            worker.ready = True
            worker.last_pong = time.monotonic()
        elif word == DRAINED:
            worker.drained = True
        self._wake.set()

    async def run(self) -> int:
        opts = self.options
        if opts.uds:
            try:
                self.listener = bind_unix(opts.uds, BACKLOG)
            except OSError as exc:
                logger.error("cannot listen on %s: %s", opts.uds, exc.strerror or exc)
                return 1
        else:
            error = port_is_free(opts.host, opts.port)
            if error is not None:
                logger.error("cannot listen on %s:%d: %s", opts.host, opts.port,
                             error.strerror or error)
                return 1
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self._record, sig)
        if opts.use_hub:
            self.hub = Hub(str(Path(self._tmp) / "hub.sock"))
            await self.hub.start()
        try:
            for index in range(1, opts.workers + 1):
                self.workers[index] = self._spawn(index)
            code = await self._start_up()
            if code != 0:
                await self._stop_all()
                return code
            logger.info("%d workers ready on %s", opts.workers,
                        opts.where or f"http://{opts.host}:{opts.port}")
            build.announce()
            return await self._main_loop()
        finally:
            for worker in self.workers.values():
                if worker.control is not None:
                    worker.control.close()
            if self.hub is not None:
                await self.hub.close()
            if self.listener is not None:
                self.listener.close()
                with contextlib.suppress(OSError):
                    os.unlink(opts.uds or "")
            with contextlib.suppress(OSError):
                for path in Path(self._tmp).iterdir():
                    path.unlink()
                os.rmdir(self._tmp)

    async def _start_up(self) -> int:
        deadline = time.monotonic() + self.options.startup_timeout
        while True:
            for worker in self.workers.values():
                code = worker.process.poll()
                if code is not None:
                    logger.error("worker #%d exited during start-up (exit code %d); stopping",
                                 worker.index, code)
                    return code or 1
            if all(w.ready for w in self.workers.values()):
                return 0
            if time.monotonic() > deadline:
                logger.error("workers not ready within %.0fs; stopping",
                             self.options.startup_timeout)
                return 1
            if self._signal in (signal.SIGTERM, signal.SIGINT):
                return 0
            await self._sleep(0.1)

    async def _sleep(self, seconds: float) -> None:
        # every wait pings the workers when due, the waits of a reload (SIGHUP) too: a
        # reload that outlasts liveness_timeout must not find its new workers "hung"
        self._ping_if_due()
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _ping_if_due(self) -> None:
        now = time.monotonic()
        if now - self._last_ping >= self.options.liveness_interval:
            for worker in self.workers.values():
                if worker.ready and worker.control is not None:
                    worker.control.send(PING)
            self._last_ping = now

    async def _main_loop(self) -> int:
        while True:
            sig, self._signal = self._signal, None
            if sig in (signal.SIGTERM, signal.SIGINT):
                logger.info("received %s: draining workers", sig.name if sig else "")
                await self._stop_all()
                return 0
            if sig is signal.SIGHUP:
                await self._reload()
            self._check_workers(time.monotonic())
            await self._sleep(0.2)

    def _check_workers(self, now: float) -> None:
        for index, worker in list(self.workers.items()):
            code = worker.process.poll()
            if code is None:
                if self._unresponsive(worker, now):
                    logger.error("worker #%d (pid %d) stopped answering; replacing it",
                                 index, worker.process.pid)
                    worker.process.kill()
                    worker.process.wait()
                    code = -9
                else:
                    if worker.ready and now - worker.started > 60:
                        self._backoff.pop(index, None)
                    continue
            delay = self._backoff.get(index, 0.5)
            if now - worker.started < delay:
                continue  # let a crash-looping worker wait its backoff
            logger.warning("worker #%d (pid %d) exited with %s; restarting", index,
                           worker.process.pid, code)
            self._backoff[index] = min(delay * 2, 30.0)
            if worker.control is not None:
                worker.control.close()
            self.workers[index] = self._spawn(index)

    def _unresponsive(self, worker: _Worker, now: float) -> bool:
        # counted from its readiness: a worker still importing the app is not hung
        return worker.ready and now - worker.last_pong > self.options.liveness_timeout

    async def _reload(self) -> None:
        logger.info("SIGHUP: replacing workers one at a time")
        for index in list(self.workers):
            old = self.workers[index]
            new = self._spawn(index)
            self.workers[index] = new
            deadline = time.monotonic() + self.options.startup_timeout
            while not new.ready and new.process.poll() is None and time.monotonic() < deadline:
                await self._sleep(0.1)
            await self._terminate([old], retire=True)

    async def _terminate(self, workers: list[_Worker], retire: bool = False) -> None:
        """Drain ``workers`` in two phases (see the module's docstring), or retire them
        (SIGHUP, see there), within shutdown_timeout; kill what is left then."""
        for worker in workers:
            if worker.process.poll() is None:
                if retire and worker.control is not None:
                    worker.control.send(RETIRE)
                else:
                    worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.options.shutdown_timeout
        while time.monotonic() < deadline and not all(
                w.drained or w.process.poll() is not None for w in workers):
            await self._sleep(0.05)
        for worker in workers:
            if worker.control is not None:
                worker.control.send(EXIT)
        while time.monotonic() < deadline and any(w.process.poll() is None for w in workers):
            await asyncio.sleep(0.05)
        for worker in workers:
            if worker.process.poll() is None:
                logger.warning("worker #%d did not stop in time; killing it", worker.index)
                worker.process.kill()
                worker.process.wait()
            if worker.control is not None:
                worker.control.close()

    async def _stop_all(self) -> None:
        await self._terminate(list(self.workers.values()))
        logger.info("all workers stopped")


def run(options: SupervisorOptions) -> int:
    return asyncio.run(Supervisor(options).run())
