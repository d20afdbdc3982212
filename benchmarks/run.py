"""Run every benchmark scenario against every server, interleaved and repeated; write RESULTS.md.

    .venv/bin/python benchmarks/run.py [--quick] [--repeat N] [--only SCENARIO[,..]] [--out DIR]

How this works. The servers are the same tiny application three times (benchmarks/servers/):
sio_core, the JavaScript socket.io 4 server run by node, and python-socketio under uvicorn (and
sio_core once more, through its ASGI path under uvicorn: ``asgi_app.py``); a
fourth, ``ceiling_server.js``, does the least a server can and so measures the load generator's
own ceiling. ``load.js`` is the load generator (one node process; see its header). For each
repetition, for each scenario, the servers run one after another in an order rotated by one
place each repetition (so none always runs first, or right after the same neighbour), each in a
fresh process on a free port of 127.0.0.1. Servers are pinned to one core and the load
generator to another (``taskset``), so they never compete for a core; the store comparison is
the exception, see ``store_cpus``. While a measurement runs, the server's CPU time (utime +
stime of its process tree, /proc/<pid>/stat) and the load generator's (its own
``process.cpuUsage()``) are sampled: a load generator near 100% of its core would be the
bottleneck, and RESULTS.md says how close it came. The machine's busy time (/proc/stat) is
sampled too: before each measurement the run waits (within a budget) for other work on the
machine to end, and a measurement during which other work took a share of the CPU anyway is
taken again, up to twice, keeping the quietest.

The scale-out rows (issue 10; ``--only scale`` runs them alone) broadcast to a room, and to a
room except the sender, on one worker, two workers (hub, Redis), two nodes (Redis) and the
JavaScript server's two processes on its redis-adapter, and report beside deliveries/s the
server CPU per delivery: the CPU time of every server process (workers, master, and the
redis-server of the Redis setups) over the window, over the deliveries.

Results: ``OUT/RESULTS.md`` (the tables, ratios to the JavaScript server from the same run,
targets met or not, the machine), ``OUT/plots/*.png``, ``OUT/results.json`` (every measurement)
and the servers' logs under ``OUT/logs/``. The exit code is 1 if any measurement failed (the
reason is in RESULTS.md and on stderr), else 0. ``--rewrite`` writes RESULTS.md and the plots
again from ``OUT/results.json`` without measuring.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from sio_core import build

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
NPROC = len(os.sched_getaffinity(0))  # before main() pins this process to one CPU

JS = "js"  # the reference every ratio is taken to
SIO = "sio"
PYSIO = "pysio"
ASGI = "asgi"  # sio_core's ASGIApp under uvicorn: the cost of the ASGI path
#: sio_core's own server running its Python sources though the compiled build is installed
#: (SIO_CORE_PURE=1, sio_core/build.py): what the compiled build gains, in the same run
SIO_PURE = "siopure"
CEILING = "ceiling"

#: what a payload looks like on every event: a small JSON object, as a chat message would be
PAYLOAD = {"user": "bench", "text": "hello, world", "n": 12345}


# --- scenarios -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    mode: str  # load.js mode
    clients: int
    quick_clients: int
    metric: str  # the key of load.js's result that is the scenario's rate
    unit: str
    #: bcast: whom each broadcast reaches: "all" (io.emit), "room" (io.to(room)), "except"
    #: (io.to(room).except_(the sender)); the clients of "room"/"except" join the room
    target: str = "all"
    #: the setups measured, when not the servers of --servers (the scale-out rows)
    setups: tuple[str, ...] | None = None
    #: bcast: broadcasts per round, the same whatever the number of clients (else rounds are
    #: sized to last round_seconds, so that the more clients, the fewer broadcasts a round:
    #: each client's write then carries fewer packets, and the cost per delivery rises with
    #: the clients for that reason alone)
    per_round: int | None = None

    def client_count(self, quick: bool) -> int:
        return self.quick_clients if quick else self.clients


SCENARIOS = [
    Scenario("bcast100", "Broadcast fan-out to 100 websocket clients", "bcast", 100, 10,
             "deliveries_per_s", "deliveries/s"),
    Scenario("bcast1000", "Broadcast fan-out to 1,000 websocket clients", "bcast", 1000, 20,
             "deliveries_per_s", "deliveries/s"),
    Scenario("echo", "Echo with acks, 100 websocket clients, closed loop", "echo", 100, 10,
             "acks_per_s", "acks/s"),
    Scenario("idle", "10,000 idle websocket connections", "idle", 10000, 100,
             "connections_per_s", "connections/s"),
    Scenario("polling", "Long-polling echo with acks, 100 clients, closed loop", "polling", 100,
             10, "acks_per_s", "acks/s"),
]
STORE = Scenario("store", "Store comparison: broadcast fan-out to 1,000 websocket clients "
                 "(sio_core only)", "bcast", 1000, 20, "deliveries_per_s", "deliveries/s")
RECOVERY = Scenario("recovery", "Connection state recovery on vs off: broadcast fan-out to "
                    "1,000 websocket clients (sio_core only)", "bcast", 1000, 20,
                    "deliveries_per_s", "deliveries/s")
#: Scale-out (issue 10): a broadcast to a room, and to a room except the sender, on one
#: worker, two workers (hub, Redis), two nodes (Redis) and the JavaScript server's two
#: processes on its redis-adapter; server CPU per delivery summed over every server process
#: (workers, master, redis-server). Namespace-wide rows on one worker for the room's ratio.
#: broadcasts per round of the scale-out rows: a burst, as a busy room has several messages
#: in one loop turn; the same at every size, so the rows differ by the clients alone
SCALE_BURST = 100
SCALE_SETUPS = ("memory1", "hub2", "redis2", "nodes2", "jsredis2")
#: 4 workers on the hub, beside 2, give the master's cost per broadcast and per worker (the
#: model of the hub's ceiling in the README)
SCALE = [
    *[Scenario(f"{target}{n}", f"Scale-out: broadcast to a room of {n:,} clients"
               + (", except the sender" if target == "except" else ""), "bcast", n, quick,
               "deliveries_per_s", "deliveries/s", target=target, per_round=SCALE_BURST,
               setups=(*SCALE_SETUPS, "hub4") if target == "room" and n < 5000
               else SCALE_SETUPS)
      for target in ("room", "except") for n, quick in ((100, 10), (1000, 20), (5000, 50))],
    *[Scenario(f"all{n}", f"Scale-out: namespace-wide broadcast to {n:,} clients", "bcast",
               n, quick, "deliveries_per_s", "deliveries/s", per_round=SCALE_BURST,
               setups=("memory1",))
      for n, quick in ((1000, 20), (5000, 50))],
]
ALL_SCENARIOS = [*SCENARIOS, STORE, RECOVERY, *SCALE]
#: names --only takes for several scenarios at once
GROUPS = {"scale": [s.name for s in SCALE]}
REDIS_SETUPS = ("redis2", "nodes2", "jsredis2")


# --- machine, pinning ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cpus:
    server: str  # taskset lists, e.g. "0"
    load: str
    store: str  # the servers of the store comparison (several processes)
    pinned: bool

    @classmethod
    def detect(cls) -> Cpus:
        available = sorted(os.sched_getaffinity(0))
        if len(available) < 2 or shutil.which("taskset") is None:
            every = ",".join(map(str, available))
            return cls(every, every, every, False)
        server, load = available[0], available[1]
        rest = [c for c in available if c != load]
        # Several worker processes want several cores; on a 2-core machine that means sharing
        # the load generator's (a broadcast costs it little: see its CPU column).
        store = rest if len(rest) >= 2 else available
        return cls(str(server), str(load), ",".join(map(str, store)), True)

    def wrap(self, cpus: str, argv: list[str]) -> list[str]:
        return ["taskset", "-c", cpus, *argv] if self.pinned else argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the workers of a supervisor)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(parents.get(p, []))
    return tree


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks of every CPU since boot (/proc/stat): busy counts what no
    process is charged for too (softirq: the loopback network work), and other processes."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def rss_kb(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


# --- servers -------------------------------------------------------------------------------------


@dataclass
class Proc:
    """One server process (a supervisor counts as one: its workers are its children)."""

    argv: list[str]
    port: int
    log_path: Path
    ready_log: str | None = None  # a regex the log must match before the server counts as up
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                self.argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def wait_ready(self, timeout: float) -> None:
        assert self.popen is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(f"exited with {self.popen.returncode} before listening; "
                                   f"log: {tail(self.log_text())}")
            if self._accepts() and (self.ready_log is None
                                    or re.search(self.ready_log, self.log_text(), re.M)):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready within {timeout:.0f}s; log: {tail(self.log_text())}")
            await asyncio.sleep(0.05)

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    async def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL of its process group after ``grace`` seconds."""
        proc = self.popen
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group is ours: start_new_session
        return proc.wait()


@dataclass(frozen=True)
class ServerKind:
    key: str
    label: str


SERVERS = {
    SIO: ServerKind(SIO, "sio_core"),
    SIO_PURE: ServerKind(SIO_PURE, "sio_core, pure Python"),
    JS: ServerKind(JS, "socket.io (node)"),
    PYSIO: ServerKind(PYSIO, "python-socketio (uvicorn)"),
    ASGI: ServerKind(ASGI, "sio_core ASGIApp (uvicorn)"),
    CEILING: ServerKind(CEILING, "load generator ceiling"),
}

STORE_SETUPS = {
    "memory1": "1 worker, in memory",
    "hub2": "2 workers, master hub",
    "redis2": "2 workers, Redis",
    "nodes2": "2 nodes (1 worker each), Redis",
    "cnodes2": "2 nodes (1 worker each), Redis Cluster of 3 masters (sharded pub/sub)",
}
#: the scale-out rows' setups: the store comparison's and two more
SCALE_LABELS = STORE_SETUPS | {
    "jsredis2": "socket.io (node), 2 processes, redis-adapter",
    "hub4": "4 workers, master hub",
}
#: recovery on vs off (benchmarks/servers/sio_app.py with SIO_BENCH_RECOVERY=1): "<setup>r" is
#: "<setup>" with connection state recovery on
RECOVERY_SETUPS = {
    "memory1": "1 worker, recovery off",
    "memory1r": "1 worker, recovery on",
    "hub2": "2 workers, master hub, recovery off",
    "hub2r": "2 workers, master hub, recovery on",
    "redis2": "2 workers, Redis, recovery off",
    "redis2r": "2 workers, Redis, recovery on",
}
#: the sio_core-only scenarios, and the setups they compare (instead of the servers)
SETUPS = {STORE.name: STORE_SETUPS, RECOVERY.name: RECOVERY_SETUPS,
          **{s.name: {k: SCALE_LABELS[k] for k in s.setups or ()} for s in SCALE}}


def sio_only(scenario: Scenario) -> bool:
    return scenario.name in SETUPS


def sio_argv(port: int, *extra: str, log_level: str = "warning") -> list[str]:
    return [PYTHON, "-m", "sio_core", "serve", "benchmarks.servers.sio_app:io",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", log_level,
            "--shutdown-timeout", "2", *extra]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.quick: bool = args.quick
        self.out: Path = args.out
        self.logs: Path = self.out / "logs"
        self.cpus = Cpus.detect()
        #: the setups of the sio_core-only scenarios to measure (--servers); empty: all
        self.setup_filter: set[str] = set(getattr(args, "setup_list", ()))
        self.redis_url: str | None = None
        self.redis_note = ""
        self.redis_proc: Proc | None = None
        #: a private 3-master Redis Cluster for the store comparison's "cnodes2" (issue 16)
        self.redis_cluster: Any = None
        self.redis_cluster_note = ""
        self.store_key = f"sio-bench-{secrets.token_hex(4)}"
        self.measurements: list[dict[str, Any]] = []
        self.started = time.monotonic()
        #: what RESULTS.md says about the run itself (kept in results.json for --rewrite)
        self.meta: dict[str, Any] = {"loadavg_start": f"{os.getloadavg()[0]:.2f}"}
        #: seconds this run may still spend waiting for other work on the machine to end
        self.quiet_budget: float = 0.0 if args.quick else args.quiet_wait
        #: measurements that may still be taken again because the machine was busy
        self.retries_left = 24

    # -- timing ---------------------------------------------------------------------------

    @property
    def warmup(self) -> float:
        return 0.2 if self.quick else 1.0

    @property
    def duration(self) -> float:
        return 0.5 if self.quick else 4.0

    @property
    def round_seconds(self) -> float:
        return 0.1 if self.quick else 0.5

    # -- the processes of one setup ---------------------------------------------------------

    def procs_for(self, scenario: Scenario, setup: str, tag: str) -> list[Proc]:
        def log(name: str = "") -> Path:
            return self.logs / f"{tag}{name}.log"

        cpus = self.cpus.server
        port = free_port()
        if setup in (SIO, SIO_PURE):
            return [Proc(self.cpus.wrap(cpus, sio_argv(port)), port, log(),
                         env={build.PURE: "1"} if setup == SIO_PURE else {})]
        if setup == JS:
            argv = ["node", str(BENCH / "servers" / "js_server.js"), str(port)]
            return [Proc(self.cpus.wrap(cpus, argv), port, log())]
        if setup == CEILING:
            argv = ["node", str(BENCH / "servers" / "ceiling_server.js"), str(port)]
            return [Proc(self.cpus.wrap(cpus, argv), port, log())]
        if setup in (PYSIO, ASGI):
            module = "pysio_app" if setup == PYSIO else "asgi_app"
            argv = [PYTHON, "-m", "uvicorn", f"benchmarks.servers.{module}:app",
                    "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                    "--no-access-log"]
            return [Proc(self.cpus.wrap(cpus, argv), port, log())]
        # the store comparison: sio_core only, on every core it may have
        cpus = self.cpus.store
        if setup.endswith("r"):  # the same with connection state recovery on
            procs = self.procs_for(scenario, setup[:-1], tag)
            for proc in procs:
                proc.env["SIO_BENCH_RECOVERY"] = "1"
            return procs
        ready = r"\d+ workers ready"
        if setup == "memory1":
            return [Proc(self.cpus.wrap(cpus, sio_argv(port)), port, log())]
        if setup in ("hub2", "hub4"):
            argv = sio_argv(port, "--workers", setup[-1], log_level="info")
            return [Proc(self.cpus.wrap(cpus, argv), port, log(), ready_log=ready)]
        assert self.redis_url is not None
        redis = ("--store", self.redis_url, "--store-key", self.store_key)
        if setup == "redis2":
            argv = sio_argv(port, "--workers", "2", *redis, log_level="info")
            return [Proc(self.cpus.wrap(cpus, argv), port, log(), ready_log=ready)]
        if setup == "jsredis2":
            script = str(BENCH / "servers" / "js_server.js")
            port_b = free_port()
            return [Proc(self.cpus.wrap(cpus, ["node", script, str(p), self.redis_url]), p,
                         log(name), ready_log="listening")
                    for p, name in ((port, "-a"), (port_b, "-b"))]
        if setup in ("nodes2", "cnodes2"):
            if setup == "cnodes2":
                redis = ("--store", self.redis_cluster.url, "--store-key", self.store_key,
                         "--store-subscription-mode", "static")
            port_b = free_port()
            return [
                Proc(self.cpus.wrap(cpus, sio_argv(port, *redis, "--node-id", "bench-a",
                                                   log_level="info")),
                     port, log("-a"), ready_log="listening on"),
                Proc(self.cpus.wrap(cpus, sio_argv(port_b, *redis, "--node-id", "bench-b",
                                                   log_level="info")),
                     port_b, log("-b"), ready_log="listening on"),
            ]
        raise ValueError(setup)

    # -- redis ------------------------------------------------------------------------------

    async def start_redis(self) -> None:
        url = os.environ.get("REDIS_URL")
        if url:
            self.redis_url = url
            self.redis_note = f"REDIS_URL ({url}), keys under `{self.store_key}`"
            return
        binary = shutil.which("redis-server")
        if binary is None:
            self.redis_note = "no redis-server and no REDIS_URL: the Redis rows were skipped"
            return
        port = free_port()
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--protected-mode", "yes"]
        self.redis_proc = Proc(self.cpus.wrap(self.cpus.store, argv), port,
                               self.logs / "redis.log")
        self.redis_proc.start()
        await self.redis_proc.wait_ready(10)
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
        self.redis_note = f"a private redis-server on 127.0.0.1:{port} ({version.strip()})"

    def start_redis_cluster(self) -> None:
        """The Cluster of tests/support.py (redis-server and redis-cli from Debian's packages):
        the cost of a broadcast on sharded pub/sub, every master's CPU counted."""
        binary = shutil.which("redis-server")
        if binary is None or shutil.which("redis-cli") is None:
            self.redis_cluster_note = "no redis-server/redis-cli: the Cluster row was skipped"
            return
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))  # tests/ is a package of the repository, not installed
        from tests.support import RedisClusterServers

        workdir = self.logs / "redis-cluster"
        workdir.mkdir(parents=True, exist_ok=True)
        self.redis_cluster = RedisClusterServers(binary, workdir).start()
        self.redis_cluster_note = (f"a private Redis Cluster of 3 masters "
                                   f"({self.redis_cluster.url})")

    async def stop_redis(self) -> None:
        if self.redis_cluster is not None:
            self.redis_cluster.stop()
        if self.redis_proc is not None:
            await self.redis_proc.stop(2)
        elif self.redis_url:
            with contextlib.suppress(Exception):
                import redis

                client = redis.Redis.from_url(self.redis_url)
                keys = list(client.scan_iter(match=f"{self.store_key}*", count=1000))
                if keys:
                    client.delete(*keys)
                client.close()

    # -- one measurement --------------------------------------------------------------------

    async def wait_quiet(self) -> float | None:
        """Wait (within the run's budget) until the machine is idle: other work on it (another
        test run, a build) would be measured with the servers. The busy cores seen last."""
        if self.quiet_budget <= 0:
            return None
        started = time.monotonic()
        while True:
            busy0, total0 = machine_jiffies()
            await asyncio.sleep(0.5)
            busy1, total1 = machine_jiffies()
            busy = (busy1 - busy0) / max(1, total1 - total0) * NPROC
            waited = time.monotonic() - started
            if busy <= self.args.quiet_cores or waited >= self.quiet_budget:
                self.quiet_budget -= waited
                if waited >= 1:
                    print(f"    waited {waited:.0f}s for the machine to be idle "
                          f"(busy: {busy:.2f} cores)", flush=True)
                return busy

    async def measure_quietly(self, scenario: Scenario, setup: str, rep: int
                              ) -> dict[str, Any]:
        """A measurement, taken again (twice at most) while other work on the machine took a
        share of the CPU during it; the quietest is kept, the others are in its ``retried``."""
        record = await self.measure(scenario, setup, rep)
        attempts = [record]
        while (len(attempts) < 3 and not self.quick and self.retries_left > 0
               and (other_cpu(record) or 0) > self.args.noise_cores):
            self.retries_left -= 1
            print(f"    other work took {other_cpu(record):.2f} cores during it: once more",
                  flush=True)
            attempts.append(await self.measure(scenario, setup, rep))
            record = min(attempts, key=lambda m: (not m["ok"], other_cpu(m) or 0))
        if len(attempts) > 1:
            record["retried"] = [{k: m.get(k) for k in ("value", "error", "machine_cpu",
                                                        "server_cpu", "loadgen_cpu")}
                                 for m in attempts if m is not record]
        return record

    async def measure(self, scenario: Scenario, setup: str, rep: int) -> dict[str, Any]:
        tag = f"{scenario.name}-{setup}-{rep}"
        record: dict[str, Any] = {"scenario": scenario.name, "setup": setup, "rep": rep,
                                  "ok": False, "error": None}
        record["busy_before"] = await self.wait_quiet()
        procs = self.procs_for(scenario, setup, tag)
        t0 = time.monotonic()
        try:
            for proc in procs:
                proc.start()
            for proc in procs:
                await proc.wait_ready(30)
            config = {
                "mode": scenario.mode,
                "ports": [p.port for p in procs],
                "clients": scenario.client_count(self.quick),
                "warmup": self.warmup,
                "duration": self.duration,
                "roundSeconds": self.round_seconds,
                "payload": PAYLOAD,
                "concurrency": 64,
                "timeout": 150,
                "target": scenario.target,
                "perRound": scenario.per_round,
                "query": "" if scenario.target == "all" else "room=room",
            }
            await self.run_load(config, procs, record)
            for proc in procs:
                assert proc.popen is not None
                if proc.popen.poll() is not None:
                    raise RuntimeError(f"the server exited ({proc.popen.returncode}) during "
                                       f"the measurement; log: {tail(proc.log_text())}")
            record["ok"] = record["error"] is None
        except Exception as exc:
            record["error"] = record["error"] or f"{type(exc).__name__}: {exc}"
        finally:
            codes = [await proc.stop() for proc in procs]
            record["exit_codes"] = codes
            record["log_problems"] = [
                line for proc in procs for line in log_problems(proc.log_text())]
            record["logs"] = [str(p.log_path.relative_to(self.out)) for p in procs]
        record["wall_seconds"] = round(time.monotonic() - t0, 2)
        status = "ok" if record["ok"] else f"FAILED: {record['error']}"
        value = record.get("value")
        shown = f"{value:,.0f} {scenario.unit}" if value is not None else ""
        print(f"[{time.monotonic() - self.started:6.0f}s] {tag:<22} {shown:<28} {status}",
              flush=True)
        for line in record["log_problems"][:5]:
            print(f"    server log: {line}", flush=True)
        return record

    async def run_load(self, config: dict[str, Any], procs: list[Proc],
                       record: dict[str, Any]) -> None:
        server_pids: list[int] = []
        for proc in procs:
            assert proc.popen is not None
            server_pids.extend(process_tree(proc.popen.pid))
        #: the processes whose CPU is also reported on its own: a supervisor's (the master,
        #: whose hub relays every broadcast between workers) and redis-server's
        roles: dict[str, list[int]] = {}
        if record["setup"] in ("hub2", "redis2", "hub4"):
            assert procs[0].popen is not None
            roles["master"] = [procs[0].popen.pid]
        if record["setup"] in REDIS_SETUPS and self.redis_proc is not None \
                and self.redis_proc.popen is not None:
            # redis-server works for the servers: its CPU is theirs (issue 10)
            server_pids.append(self.redis_proc.popen.pid)
            roles["redis"] = [self.redis_proc.popen.pid]
        if record["setup"] == "cnodes2":
            masters = [node.pid for node in self.redis_cluster.nodes]
            server_pids.extend(masters)
            roles["redis"] = masters
        roles_at: dict[str, float] = {}
        argv = self.cpus.wrap(self.cpus.load, ["node", str(BENCH / "load.js"), json.dumps(config)])
        load = await asyncio.create_subprocess_exec(
            *argv, cwd=REPO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True)
        assert load.stdin is not None and load.stdout is not None and load.stderr is not None
        stderr_task = asyncio.ensure_future(load.stderr.read())
        mark: tuple[float, float, tuple[int, int]] | None = None

        def cpu_mark() -> tuple[float, float, tuple[int, int]]:
            return time.monotonic(), cpu_seconds(server_pids), machine_jiffies()

        def cpu_since(start: tuple[float, float, tuple[int, int]]) -> float:
            """The server's CPU since ``start``, in cores; records the machine's too."""
            now, cpu, (busy, total) = cpu_mark()
            record["machine_cpu"] = ((busy - start[2][0]) / max(1, total - start[2][1])
                                     * NPROC)
            return (cpu - start[1]) / max(now - start[0], 1e-6)

        async def send(line: str) -> None:
            assert load.stdin is not None
            load.stdin.write(line.encode() + b"\n")
            await load.stdin.drain()

        async def converse() -> None:
            nonlocal mark
            async for raw in load.stdout:  # type: ignore[union-attr]
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                kind = event.get("event")
                if kind == "connected":
                    record["connected"] = event
                    if event.get("failed"):
                        record["error"] = (f"{event['failed']} of {config['clients']} "
                                           f"connections failed: {event.get('failures')}")
                    if config["mode"] == "idle":
                        assert mark is not None
                        record["server_cpu"] = cpu_since(mark)
                        record["loadgen_cpu"] = event.get("loadgen_cpu")
                        record["value"] = event["connections_per_s"]
                        await asyncio.sleep(1.0)  # let the server settle
                        record["rss_after_kb"] = rss_kb(server_pids)
                        record["rss_per_conn_kb"] = (
                            (record["rss_after_kb"] - record["rss_before_kb"])
                            / max(1, event["clients"]))
                        await send("close")
                elif kind == "warm":
                    await asyncio.sleep(0.5)
                    record["rss_before_kb"] = rss_kb(server_pids)
                    mark = cpu_mark()
                    await send("go")
                elif kind == "measuring":
                    mark = cpu_mark()
                    roles_at.update({k: cpu_seconds(v) for k, v in roles.items()})
                elif kind == "result":
                    if config["mode"] != "idle":
                        assert mark is not None
                        record["server_cpu"] = cpu_since(mark)
                        record["loadgen_cpu"] = event.get("loadgen_cpu")
                        record["value"] = event[METRICS[config["mode"]]]
                    record["result"] = event
                    record["cpu_seconds_by_role"] = {
                        k: cpu_seconds(v) - roles_at.get(k, 0.0) for k, v in roles.items()}
                    if event.get("lost"):
                        record["error"] = (f"{event['lost']} clients were disconnected: "
                                           f"{event.get('lost_reasons')}")
                elif kind == "error":
                    record["error"] = f"load generator: {event.get('message')}"

        try:
            await asyncio.wait_for(converse(), config["timeout"] + 15)
            await asyncio.wait_for(load.wait(), 10)
        except TimeoutError:
            record["error"] = record["error"] or "the load generator did not finish in time"
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(load.pid, signal.SIGKILL)
            await load.wait()
            stderr = (await stderr_task).decode(errors="replace").strip()
        if "result" not in record and record["error"] is None:
            record["error"] = (f"the load generator exited ({load.returncode}) without a "
                               f"result: {tail(stderr)}")
        if stderr and record["error"] is not None:
            record["error"] += f" (stderr: {tail(stderr)})"

    # -- the whole run ----------------------------------------------------------------------

    async def run(self, scenarios: list[Scenario], servers: list[str]) -> None:
        if any(sio_only(s) for s in scenarios):
            await self.start_redis()
        if STORE in scenarios:
            self.start_redis_cluster()
        try:
            for rep in range(self.args.repeat):
                for scenario in scenarios:
                    setups = [s for s in SETUPS[scenario.name]
                              if (not self.setup_filter or s in self.setup_filter)
                              and (self.redis_url is not None
                                  or not s.startswith(("redis2", "nodes2", "jsredis2")))
                              and (self.redis_cluster is not None or s != "cnodes2")] \
                        if sio_only(scenario) else servers
                    shift = rep % len(setups)
                    for setup in setups[shift:] + setups[:shift]:
                        self.measurements.append(await self.measure_quietly(scenario, setup,
                                                                            rep))
        finally:
            await self.stop_redis()


#: the options that shape a run, kept in results.json
SETTINGS = ("quick", "repeat", "quiet_wait", "quiet_cores", "noise_cores")

METRICS = {"bcast": "deliveries_per_s", "echo": "acks_per_s", "polling": "acks_per_s",
           "idle": "connections_per_s"}

_PROBLEM = re.compile(r"\b(ERROR|CRITICAL|Traceback|Exception|WARNING|Warning|exception)\b")


def log_problems(text: str) -> list[str]:
    """The lines of a server log that say something went wrong (deduplicated, in order)."""
    seen: dict[str, None] = {}
    for line in text.splitlines():
        if _PROBLEM.search(line):
            seen.setdefault(line.strip()[:400], None)
    return list(seen)


def tail(text: str, lines: int = 8) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


# --- the report ----------------------------------------------------------------------------------


def median_min_max(values: list[float]) -> tuple[float, float, float] | None:
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


@dataclass
class Row:
    setup: str
    label: str
    runs: int
    ok: int
    value: tuple[float, float, float] | None
    p50: float | None = None
    p99: float | None = None
    rss_per_conn: float | None = None
    rss_after_mb: float | None = None
    server_cpu: float | None = None
    loadgen_cpu: float | None = None
    other_cpu: float | None = None
    #: the master's CPU per broadcast (hub setups), microseconds
    master_per_broadcast: float | None = None
    errors: list[str] = field(default_factory=list)


def master_per_broadcast(m: dict[str, Any]) -> float | None:
    """The master's CPU per broadcast in microseconds (a broadcast reaches every client,
    but the sender with target "except")."""
    master = m.get("cpu_seconds_by_role", {}).get("master")
    result = m.get("result", {})
    deliveries, clients = result.get("deliveries"), result.get("clients")
    if master is None or not deliveries or not clients:
        return None
    receivers = clients - (1 if m["scenario"].startswith("except") else 0)
    return float(master) / (deliveries / max(1, receivers)) * 1e6


def other_cpu(m: dict[str, Any]) -> float | None:
    """The machine's busy cores that neither the server nor the load generator was charged for:
    the kernel's loopback work (softirq), and any other process on the machine."""
    machine, server, loadgen = m.get("machine_cpu"), m.get("server_cpu"), m.get("loadgen_cpu")
    if machine is None or server is None or loadgen is None:
        return None
    return max(0.0, float(machine) - float(server) - float(loadgen))


def rows_for(measurements: list[dict[str, Any]], scenario: Scenario,
             setups: list[str], labels: dict[str, str]) -> list[Row]:
    rows = []
    for setup in setups:
        mine = [m for m in measurements if m["scenario"] == scenario.name and m["setup"] == setup]
        if not mine:
            continue
        good = [m for m in mine if m["ok"]]

        def med(get: Callable[[dict[str, Any]], Any], good: list[dict[str, Any]] = good
                ) -> float | None:
            values = [v for v in (get(m) for m in good) if v is not None]
            return statistics.median(values) if values else None

        rows.append(Row(
            setup=setup, label=labels[setup], runs=len(mine), ok=len(good),
            value=median_min_max([m["value"] for m in good]),
            p50=med(lambda m: m.get("result", {}).get("p50_ms")),
            p99=med(lambda m: m.get("result", {}).get("p99_ms")),
            rss_per_conn=med(lambda m: m.get("rss_per_conn_kb")),
            rss_after_mb=med(lambda m: m.get("rss_after_kb") and m["rss_after_kb"] / 1024),
            server_cpu=med(lambda m: m.get("server_cpu")),
            loadgen_cpu=med(lambda m: m.get("loadgen_cpu")),
            other_cpu=med(other_cpu),
            master_per_broadcast=med(master_per_broadcast),
            errors=[f"run {m['rep'] + 1}: {m['error']}" for m in mine if not m["ok"]],
        ))
    return rows


def cpu_per_delivery(row: Row | None) -> float | None:
    """Microseconds of server CPU per delivery (its busy cores over its deliveries/s)."""
    if row is None or row.value is None or not row.value[0] or row.server_cpu is None:
        return None
    return row.server_cpu / row.value[0] * 1e6


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def ratio(rows: dict[str, Row], a: str, b: str) -> float | None:
    ra, rb = rows.get(a), rows.get(b)
    if ra is None or rb is None or ra.value is None or rb.value is None or rb.value[0] == 0:
        return None
    return ra.value[0] / rb.value[0]


def machine_description(cpus: Cpus) -> list[str]:
    def first(pattern: str, text: str) -> str:
        match = re.search(pattern, text, re.M)
        return match.group(1).strip() if match else "?"

    cpuinfo = Path("/proc/cpuinfo").read_text()
    meminfo = Path("/proc/meminfo").read_text()
    mem_kb = int(first(r"^MemTotal:\s+(\d+)", meminfo))

    def version(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10
                                  ).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    def py(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    def npm(name: str) -> str:
        try:
            package = json.loads((REPO / "node_modules" / name / "package.json").read_text())
            return str(package["version"])
        except (OSError, ValueError, KeyError):
            return "not installed"

    commit = version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = version(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    changes = " + uncommitted changes" if dirty not in ("", "?") else ""
    pinning = (f"servers on CPU {cpus.server}, the load generator on CPU {cpus.load} "
               f"(`taskset`); the store comparison's servers (and Redis) on CPUs {cpus.store}"
               if cpus.pinned else "not pinned (fewer than 2 CPUs, or no taskset)")
    model = first(r"^model name\s*:(.*)$", cpuinfo)
    return [
        f"- CPU: {model}, {os.cpu_count()} logical CPUs "
        f"(`nproc`: {NPROC})",
        f"- Memory: {mem_kb / 1024 / 1024:.1f} GiB; kernel {platform.release()}",
        f"- Pinning: {pinning}",
        f"- Python {platform.python_version()}; node {version(['node', '--version'])}",
        f"- sio_core {py('sio_core')} (git {commit}{changes}), "
        f"websockets {py('websockets')}, httptools {py('httptools')}, uvloop {py('uvloop')}",
        f"- sio_core's build: {build.summary()}",
        f"- python-socketio {py('python-socketio')}, python-engineio {py('python-engineio')}, "
        f"uvicorn {py('uvicorn')}",
        f"- socket.io {npm('socket.io')}, engine.io {npm('engine.io')}, ws {npm('ws')} "
        f"(node, default options)",
    ]


class Report:
    def __init__(self, bench: Bench, scenarios: list[Scenario], servers: list[str]) -> None:
        self.bench = bench
        self.scenarios = scenarios
        self.servers = servers
        servers_labels = {k: v.label for k, v in SERVERS.items()}
        self.tables: dict[str, dict[str, Row]] = {}
        for scenario in scenarios:
            setups = list(SETUPS[scenario.name]) if sio_only(scenario) else servers
            labels = servers_labels | SETUPS.get(scenario.name, {})
            rows = rows_for(bench.measurements, scenario, setups, labels)
            self.tables[scenario.name] = {row.setup: row for row in rows}

    def write(self) -> None:
        out = self.bench.out
        out.mkdir(parents=True, exist_ok=True)
        plots = self.plots()
        (out / "RESULTS.md").write_text(self.markdown(plots))
        b = self.bench
        (out / "results.json").write_text(json.dumps(
            {"meta": b.meta, "cpus": asdict(b.cpus), "payload": PAYLOAD,
             "settings": {k: getattr(b.args, k) for k in SETTINGS},
             "scenarios": [s.name for s in self.scenarios], "servers": self.servers,
             "measurements": b.measurements}, indent=1) + "\n")

    # -- targets ---------------------------------------------------------------------------

    def targets(self) -> list[tuple[str, str, str, bool | None]]:
        """(target, required, measured, met) for every target the issue set."""
        t = self.tables
        found: list[tuple[str, str, str, bool | None]] = []

        def at_least(name: str, scenario: str, a: str, b: str, need: float) -> None:
            if scenario not in t:
                return
            r = ratio(t[scenario], a, b)
            found.append((name, f">= {need:g}x", fmt_ratio(r), None if r is None else r >= need))

        at_least("Broadcast to 1,000 clients, deliveries/s, vs socket.io", "bcast1000", SIO, JS,
                 10)
        # issue 14's targets (per-message speed)
        at_least("Echo, acks/s, vs socket.io", "echo", SIO, JS, 0.8)
        if "echo" in t and SIO in t["echo"] and JS in t["echo"]:
            a, b = t["echo"][SIO].p99, t["echo"][JS].p99
            met = None if a is None or b is None else a <= 1.3 * b
            found.append(("Echo, p99 latency, vs socket.io", "<= 1.3x",
                          f"{fmt(a, 2)} ms vs {fmt(b, 2)} ms", met))
        at_least("Idle connections opened per second, vs socket.io", "idle", SIO, JS, 1.5)
        if "idle" in t and SIO in t["idle"]:
            kb = t["idle"][SIO].rss_per_conn
            found.append(("Server RSS per idle connection", "<= 11 KB", f"{fmt(kb, 1)} KB",
                          None if kb is None else kb <= 11))
        at_least("Long-polling echo, acks/s, vs socket.io", "polling", SIO, JS, 1.3)
        at_least("Broadcast, 2 workers through the hub vs 1 worker", "store", "hub2",
                 "memory1", 1.8)
        if "recovery" in t:
            rows = t["recovery"]
            for base in ("memory1", "hub2", "redis2"):
                off, on = cpu_per_delivery(rows.get(base)), cpu_per_delivery(rows.get(base + "r"))
                if off and on:
                    found.append((f"Broadcast CPU per delivery, recovery on vs off "
                                  f"({RECOVERY_SETUPS[base].split(',')[0]}"
                                  f"{', ' + base[:-1] if base != 'memory1' else ''})",
                                  "<= 1.3x", f"{on / off:.2f}x", on / off <= 1.3))
        for scenario in self.scenarios:
            if not sio_only(scenario):
                at_least(f"{scenario.name}: {scenario.unit}, vs python-socketio", scenario.name,
                         SIO, PYSIO, 3)
        found += self.scale_targets()
        if "idle" in t and SIO in t["idle"] and PYSIO in t["idle"]:
            a, b = t["idle"][SIO].rss_per_conn, t["idle"][PYSIO].rss_per_conn
            r = None if not a or b is None else b / a
            found.append(("idle: RSS per connection, python-socketio's / sio_core's", ">= 3x",
                          fmt_ratio(r), None if r is None else r >= 3))
        return found

    def cpu(self, scenario: str, setup: str) -> float | None:
        return cpu_per_delivery(self.tables.get(scenario, {}).get(setup))

    def scale_targets(self) -> list[tuple[str, str, str, bool | None]]:
        """Issue 10's targets: ratios of server CPU per delivery, and 2 nodes vs the
        JavaScript server's 2 processes."""
        found: list[tuple[str, str, str, bool | None]] = []

        def at_most(name: str, a: float | None, b: float | None, need: float) -> None:
            if a is None or b is None or b == 0:
                return
            r = a / b
            found.append((name, f"<= {need:g}x", fmt_ratio(r), r <= need))

        for target in ("room", "except"):
            for n, need in ((100, 1.25), (1000, 1.10)):
                one = self.cpu(f"{target}{n}", "memory1")
                for setup in ("hub2", "redis2", "nodes2"):
                    at_most(f"CPU/delivery, {target} of {n:,}: {SCALE_LABELS[setup]} / 1 worker",
                            self.cpu(f"{target}{n}", setup), one, need)
            at_most(f"CPU/delivery, {target}: 5,000 receivers / 1,000 (1 worker)",
                    self.cpu(f"{target}5000", "memory1"), self.cpu(f"{target}1000", "memory1"),
                    1.2)
        for n in (1000, 5000):
            at_most(f"CPU/delivery, room of {n:,} / namespace-wide (1 worker)",
                    self.cpu(f"room{n}", "memory1"), self.cpu(f"all{n}", "memory1"), 1.15)
        for n in (100, 1000, 5000):
            table = self.tables.get(f"room{n}")
            if table is not None:
                r = ratio(table, "nodes2", "jsredis2")
                if r is not None:
                    found.append((f"Room of {n:,}, deliveries/s: 2 nodes on Redis / socket.io's "
                                  "2 processes on its redis-adapter", ">= 3x", fmt_ratio(r),
                                  r >= 3))
        return found

    # -- markdown --------------------------------------------------------------------------

    def markdown(self, plots: dict[str, str]) -> str:
        b = self.bench
        mode = "quick (smoke) run: tiny client counts, short windows" if b.quick else "full run"
        lines = [
            "# sio_core benchmarks",
            "",
            f"Written by `benchmarks/run.py` ({mode}; {b.args.repeat} repetition(s) of every "
            f"scenario against every server, interleaved: the server order rotates by one each "
            f"repetition; {b.meta['date']}; the run took {b.meta['minutes']:.1f} min). "
            "Regenerate with "
            "`bash benchmarks/setup.sh && .venv/bin/python benchmarks/run.py`.",
            "",
            "Each cell is the **median** of the repetitions, with the min-max beside it. Ratios "
            "are sio_core's median over the JavaScript socket.io server's median **from the same "
            "run**. Every server is one process (one worker) with default options, on 127.0.0.1.",
            "",
            "## Machine",
            "",
            *b.meta["machine"],
            "",
            "## Method",
            "",
            "- The application is the same on every server (`benchmarks/servers/`): `echo(data)` "
            "acks `data`; `bcast(n, payload)` makes the server `emit(\"m\", payload)` to all n "
            f"times. Payload: `{json.dumps(PAYLOAD)}`.",
            "- The load generator (`benchmarks/load.js`, one node process) speaks Engine.IO v4 / "
            "Socket.IO v5 itself over raw TCP: websocket framing and long-polling HTTP/1.1 of its "
            "own, so a delivery costs it a few byte comparisons (see *Load generator ceiling*).",
            f"- Each measurement: a fresh server process, clients connected, {b.warmup:g} s of "
            f"warm-up, then a {b.duration:g} s window. Broadcast: closed-loop rounds (one client "
            "asks for n broadcasts; the next round starts once every client has all n; n is "
            f"sized in warm-up so a round lasts about {b.round_seconds:g} s). Echo and polling: "
            "every client keeps one echo in flight; latency is from the send to the ack. Idle: "
            "10,000 websocket connections opened 64 at a time (TCP, upgrade, Engine.IO open, "
            "Socket.IO connect); RSS is VmRSS of the server (summed over its processes) after 10 "
            "warm-up connections and 1 s after the last connection, the difference divided by "
            "the connections.",
            "- *Server CPU* is the server's CPU time over the window in cores (1.00 = one core "
            "saturated); *load gen CPU* the same for the load generator: well under 1.00 means "
            "it was not the bottleneck. *Other CPU*: the rest of the machine's busy time over "
            "the window (/proc/stat), in cores: the kernel's loopback network work (softirq, "
            "charged to no process) and any other process. A large value means something else "
            "was running on the machine and the numbers are less trustworthy.",
            f"- Before each measurement the run waits until the machine is idle (at most "
            f"{b.args.quiet_cores:g} cores busy over half a second; at most "
            f"{0 if b.quick else b.args.quiet_wait:g} s of waiting in the whole run). "
            f"{self.noise_note()} Load average: {b.meta['loadavg_start']} at the start of the "
            f"run, {b.meta['loadavg_end']} at the end.",
            "",
        ]
        lines += self.ceiling_section()
        lines += ["## Targets", ""]
        if "ratios" in plots:
            lines += [f"![ratios]({plots['ratios']})", ""]
        lines += ["| target | required | measured | met |",
                  "|---|---|---|---|"]
        for name, need, got, met in self.targets():
            mark = "-" if met is None else ("yes" if met else "**no**")
            lines.append(f"| {name} | {need} | {got} | {mark} |")
        lines.append("")
        for scenario in self.scenarios:
            lines += self.scenario_section(scenario, plots.get(scenario.name))
        lines += self.problems_section()
        return "\n".join(lines).rstrip() + "\n"

    def noise_note(self) -> str:
        ms = self.bench.measurements
        busy = [m for m in ms if (m.get("busy_before") or 0) > self.bench.args.quiet_cores]
        retried = [m for m in ms if "retried" in m]
        again = ""
        if retried:
            again = (f" {len(retried)} measurement(s) during which other work took more than "
                     f"{self.bench.args.noise_cores:g} cores were taken again, up to twice "
                     "(the quietest attempt is kept).")
        if not busy:
            return "Every measurement started on an idle machine." + again
        names = [f"{m['scenario']}/{m['setup']}#{m['rep'] + 1}" for m in busy]
        more = ", ..." if len(names) > 12 else ""
        return (f"**{len(busy)} of {len(ms)} measurements started on a busy machine** "
                f"(other work did not end in time): {', '.join(names[:12])}{more}.{again}")

    def ceiling_section(self) -> list[str]:
        rows = [(s, r) for s in self.scenarios if not sio_only(s)
                for r in [self.tables[s.name].get(CEILING)]
                if r is not None and r.value is not None]
        if not rows:
            return []
        lines = [
            "## Load generator ceiling",
            "",
            "The load generator against `benchmarks/servers/ceiling_server.js`, a raw-TCP server "
            "that does the least a server can (ready-made frames, no parsing beyond the packet "
            "type), pinned like the servers. Where the load generator's CPU is near 1.00 the rate "
            "is its ceiling; where it is lower, the trivial server was the limit and the load "
            "generator could do more (roughly rate / CPU).",
            "",
            "| scenario | rate (median) | load gen CPU | ~ rate / CPU | best server's median "
            "| headroom |",
            "|---|---|---|---|---|---|",
        ]
        for scenario, row in rows:
            assert row.value is not None
            cpu = row.loadgen_cpu
            extrapolated = row.value[0] / cpu if cpu else None
            best = max((r.value[0] for k, r in self.tables[scenario.name].items()
                        if k != CEILING and r.value is not None), default=None)
            head = None if best is None or extrapolated is None else extrapolated / best
            lines.append(f"| {scenario.name} | {fmt(row.value[0])} {scenario.unit} | "
                         f"{fmt(cpu, 2)} | {fmt(extrapolated)} | {fmt(best)} | "
                         f"{fmt_ratio(head)} |")
        lines.append("")
        return lines

    def scenario_section(self, scenario: Scenario, plot: str | None) -> list[str]:
        table = self.tables[scenario.name]
        clients = scenario.client_count(self.bench.quick)
        title = re.sub(r"\b(100|1,000|5,000|10,000)\b", f"{clients:,}", scenario.title, count=1)
        lines = [f"## {title}", ""]
        if scenario is STORE:
            lines += [
                f"Broadcast deliveries/s to {clients:,} websocket clients, sio_core only. "
                "*2 workers*: `--workers 2` on one port (the kernel spreads the connections); a "
                "broadcast reaches the other worker through the master's hub or Redis. *2 nodes*: "
                "two `serve` processes on two ports sharing Redis, the clients split between "
                "them. Ratios are to the 1-worker row. Redis: "
                f"{self.bench.redis_note or 'not used'}. Redis Cluster: "
                f"{self.bench.redis_cluster_note or 'not used'} (`--store-subscription-mode "
                "static`: sio_core nodes alone), every master's CPU counted as the servers'.",
                "",
            ]
        if scenario is RECOVERY:
            lines += [
                f"Broadcast deliveries/s to {clients:,} websocket clients, sio_core only, "
                "with `connection_state_recovery` off and on: on, every broadcast is kept in "
                "the log (in the process; the master's hub; a Redis stream) and delivered "
                "when the log hands it back, with its offset. The cost that counts is the "
                "server's CPU per delivery (below the table). Redis: "
                f"{self.bench.redis_note or 'not used'}.",
                "",
            ]
        extra_head, extra_sep = "", ""
        if scenario.mode in ("echo", "polling"):
            extra_head, extra_sep = " p50 ms | p99 ms |", "---|---|"
        elif scenario.mode == "idle":
            extra_head, extra_sep = " RSS KB/conn | RSS after, MB |", "---|---|"
        if scenario.setups:
            lines += [
                f"Deliveries/s to {clients:,} websocket clients in one room"
                + (" (all but the sender)" if scenario.target == "except" else "")
                + "; *CPU/delivery* is the CPU time of every server process (workers, master, "
                "redis-server) over the window, divided by the deliveries. Ratios are to the "
                "1-worker row.",
                "",
            ]
            extra_head, extra_sep = (" CPU/delivery, us | CPU/delivery vs 1 worker | master "
                                     "CPU/broadcast, us |", "---|---|---|")
        scale = bool(scenario.setups)
        reference = "memory1" if sio_only(scenario) else JS
        ref_label = "1 worker, recovery off" if scenario is RECOVERY else \
            "1 worker" if scenario is STORE or scale else "socket.io"
        lines.append(f"| server | {scenario.unit} (median) | min-max | vs {ref_label} |"
                     f"{extra_head} server CPU | load gen CPU | other CPU | runs ok |")
        lines.append(f"|---|---|---|---|{extra_sep}---|---|---|---|")
        for setup, row in table.items():
            value = row.value
            rng = f"{fmt(value[1])}-{fmt(value[2])}" if value else "-"
            r = None if setup in (reference, CEILING) else ratio(table, setup, reference)
            label = f"*{row.label}*" if setup == CEILING else row.label
            extra = ""
            if scenario.mode in ("echo", "polling"):
                extra = f" {fmt(row.p50, 2)} | {fmt(row.p99, 2)} |"
            elif scenario.mode == "idle":
                extra = f" {fmt(row.rss_per_conn, 1)} | {fmt(row.rss_after_mb, 1)} |"
            if scale:
                one = table.get(reference)
                mine, base = cpu_per_delivery(row), cpu_per_delivery(one)
                rel = mine / base if mine is not None and base and setup != reference else None
                extra = (f" {fmt(mine, 3)} | {fmt_ratio(rel)} | "
                         f"{fmt(row.master_per_broadcast, 1)} |")
            lines.append(f"| {label} | {fmt(value[0]) if value else 'failed'} | {rng} | "
                         f"{fmt_ratio(r)} |{extra} {fmt(row.server_cpu, 2)} | "
                         f"{fmt(row.loadgen_cpu, 2)} | {fmt(row.other_cpu, 2)} | "
                         f"{row.ok}/{row.runs} |")
        lines.append("")
        noisy = [row.label for row in table.values()
                 if row.other_cpu is not None and row.other_cpu > self.bench.args.noise_cores]
        if noisy:
            lines.append(f"Measured while other work ran on the machine (other CPU above "
                         f"{self.bench.args.noise_cores:g}): {', '.join(noisy)}; take these "
                         "rows with care.")
            lines.append("")
        if scenario is RECOVERY or scenario is STORE:
            per = {setup: cpu_per_delivery(row) for setup, row in table.items()}
            lines.append("Server CPU per delivery (µs, every server process: workers, "
                         "master, redis-server or the Cluster's masters): " + ", ".join(
                             f"{SETUPS[scenario.name][setup]} {fmt(value, 2)}"
                             for setup, value in per.items() if value is not None) + ".")
            lines.append("")
        if SIO_PURE in table and SIO in table:
            lines.append(f"sio_core's build ({build.summary()}) / the same code run as "
                         f"pure Python: {fmt_ratio(ratio(table, SIO, SIO_PURE))}.")
            lines.append("")
        if PYSIO in table and SIO in table and not sio_only(scenario):
            lines.append(f"sio_core / python-socketio: "
                         f"{fmt_ratio(ratio(table, SIO, PYSIO))}.")
            lines.append("")
        if ASGI in table and scenario is not STORE:
            if SIO in table:
                lines.append(f"sio_core's ASGI path / its own server: "
                             f"{fmt_ratio(ratio(table, ASGI, SIO))}.")
            if PYSIO in table:
                lines.append(f"sio_core's ASGI path / python-socketio (both under uvicorn): "
                             f"{fmt_ratio(ratio(table, ASGI, PYSIO))}.")
            lines.append("")
        errors = [f"- {row.label}, {e}" for row in table.values() for e in row.errors]
        if errors:
            lines += ["Failed runs:", "", *errors, ""]
        if plot:
            lines += [f"![{scenario.name}]({plot})", ""]
        return lines

    def problems_section(self) -> list[str]:
        found: dict[str, dict[str, list[str]]] = {}
        for m in self.bench.measurements:
            for line in m.get("log_problems", []):
                per = found.setdefault(m["setup"], {})
                per.setdefault(line, []).append(f"{m['scenario']}#{m['rep'] + 1}")
        lines = ["## Server logs", ""]
        if not found:
            return [*lines, "No server logged a warning, an error or a traceback.", ""]
        lines += ["Lines with WARNING, ERROR, CRITICAL, Traceback or Exception in the servers' "
                  "logs (logs under `logs/` of the output directory):", ""]
        for setup, problems in found.items():
            label = SERVERS[setup].label if setup in SERVERS else \
                (RECOVERY_SETUPS | SCALE_LABELS)[setup]
            lines.append(f"- {label}:")
            for line, where in list(problems.items())[:20]:
                lines.append(f"  - `{line}` ({', '.join(where[:6])}"
                             f"{', …' if len(where) > 6 else ''})")
        lines.append("")
        return lines

    # -- plots -----------------------------------------------------------------------------

    def plots(self) -> dict[str, str]:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            from matplotlib.ticker import FuncFormatter
        except ImportError:
            print("matplotlib is not installed: no plots (bash benchmarks/setup.sh)",
                  file=sys.stderr)
            return {}
        folder = self.bench.out / "plots"
        folder.mkdir(parents=True, exist_ok=True)
        colors = {SIO: "#2a7ab0", SIO_PURE: "#9cc7e4", JS: "#d9a520", PYSIO: "#7a7a7a",
                  ASGI: "#6fb3e0",
                  "memory1": "#2a7ab0",
                  "hub2": "#4aa3d8", "redis2": "#b04a2a", "nodes2": "#d87a4a",
                  "jsredis2": "#d9a520", "hub4": "#1a5a80"}
        made: dict[str, str] = {}
        for scenario in self.scenarios:
            table = self.tables[scenario.name]
            rows = [r for k, r in table.items() if k != CEILING and r.value is not None]
            if not rows:
                continue
            panels = 2 if scenario.mode in ("echo", "polling", "idle") else 1
            fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.8), squeeze=False)
            ax = axes[0][0]
            names = [r.label.replace(" (", "\n(").replace(", ", ",\n") for r in rows]
            meds = [r.value[0] for r in rows if r.value]
            lows = [r.value[0] - r.value[1] for r in rows if r.value]
            highs = [r.value[2] - r.value[0] for r in rows if r.value]
            ax.bar(names, meds, yerr=[lows, highs], capsize=4,
                   color=[colors.get(r.setup, "#888") for r in rows])
            ax.set_ylabel(f"{scenario.unit} (median, min-max)")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
            for i, v in enumerate(meds):
                ax.annotate(f"{v:,.0f}", (i, v), ha="center", va="bottom", fontsize=8,
                            xytext=(0, 3), textcoords="offset points")
            ax.set_title(scenario.name)
            ax.tick_params(axis="x", labelsize=8)
            ax.margins(y=0.15)
            if panels == 2:
                ax2 = axes[0][1]
                if scenario.mode == "idle":
                    kb = [r.rss_per_conn or 0 for r in rows]
                    ax2.bar(names, kb, color=[colors.get(r.setup, "#888") for r in rows])
                    ax2.axhline(12, color="#c00", linestyle="--", linewidth=1)
                    ax2.set_ylabel("server RSS per idle connection, KB")
                    ax2.set_title("memory")
                else:
                    x = range(len(rows))
                    ax2.bar([i - 0.2 for i in x], [r.p50 or 0 for r in rows], width=0.4,
                            label="p50", color="#88b")
                    ax2.bar([i + 0.2 for i in x], [r.p99 or 0 for r in rows], width=0.4,
                            label="p99", color="#448")
                    ax2.set_xticks(list(x), names)
                    ax2.set_ylabel("ack latency, ms (median of runs)")
                    ax2.legend(fontsize=8)
                    ax2.set_title("latency")
                ax2.tick_params(axis="x", labelsize=8)
            fig.tight_layout()
            name = f"plots/{scenario.name}.png"
            fig.savefig(self.bench.out / name, dpi=110)
            plt.close(fig)
            made[scenario.name] = name
        made.update(self.ratio_plot(plt, folder))
        return made

    def ratio_plot(self, plt: Any, folder: Path) -> dict[str, str]:
        """One picture of every ratio to the JavaScript server (log scale)."""
        names, sio_r, py_r = [], [], []
        for scenario in self.scenarios:
            table = self.tables[scenario.name]
            if sio_only(scenario) or JS not in table:
                continue
            names.append(scenario.name)
            sio_r.append(ratio(table, SIO, JS) or 0)
            py_r.append(ratio(table, PYSIO, JS) or 0)
        if not names:
            return {}
        fig, ax = plt.subplots(figsize=(7, 3.8))
        x = range(len(names))
        ax.bar([i - 0.2 for i in x], sio_r, width=0.4, label="sio_core", color="#2a7ab0")
        ax.bar([i + 0.2 for i in x], py_r, width=0.4, label="python-socketio", color="#7a7a7a")
        for i, v in enumerate(sio_r):
            ax.annotate(f"{v:.2f}x", (i - 0.2, v), ha="center", va="bottom", fontsize=8,
                        xytext=(0, 2), textcoords="offset points")
        ax.axhline(1, color="#d9a520", linewidth=1.5, label="socket.io (node) = 1")
        ax.set_yscale("log")
        ax.set_xticks(list(x), names)
        ax.set_ylabel("rate / socket.io's rate (same run)")
        ax.set_title("Ratios to the JavaScript server (medians)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / "ratios.png", dpi=110)
        plt.close(fig)
        return {"ratios": "plots/ratios.png"}


# --- entry point ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: tiny client counts, short windows, 1 repetition")
    parser.add_argument("--repeat", type=int, default=None,
                        help="repetitions of every scenario (default 3; 1 with --quick)")
    names = [s.name for s in ALL_SCENARIOS]
    parser.add_argument("--only", default=None,
                        help=f"comma-separated scenarios, of: {', '.join(names)}; or a group: "
                             f"{', '.join(f'{g} ({len(v)} scenarios)' for g, v in GROUPS.items())}")
    parser.add_argument("--servers", default=f"{SIO},{SIO_PURE},{JS},{PYSIO},{ASGI},{CEILING}",
                        help="comma-separated servers (default: all); 'ceiling' is the "
                             "load generator's own ceiling; setup names of the sio_core-only "
                             "scenarios (memory1, hub2, redis2, ...) pick those setups")
    parser.add_argument("--quiet-wait", type=float, default=300.0,
                        help="before each measurement, wait until the machine is idle (other "
                             "processes busy for at most --quiet-cores), spending at most this "
                             "many seconds over the whole run (default 300; none with --quick)")
    parser.add_argument("--quiet-cores", type=float, default=0.2,
                        help="what counts as idle, in busy cores (default 0.2)")
    parser.add_argument("--noise-cores", type=float, default=0.35,
                        help="a measurement during which other work (and the kernel) kept more "
                             "than this many cores busy is taken again, up to twice (default "
                             "0.35; at most 24 retakes a run)")
    parser.add_argument("--rewrite", action="store_true",
                        help="measure nothing: write RESULTS.md and the plots again from "
                             "OUT/results.json")
    parser.add_argument("--out", type=Path, default=BENCH,
                        help="where RESULTS.md, results.json, plots/ and logs/ go "
                             "(default: benchmarks/)")
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        wanted = [name for n in wanted for name in GROUPS.get(n, [n])]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(names)}")
        args.scenarios = [s for s in ALL_SCENARIOS if s.name in wanted]
    else:
        args.scenarios = list(ALL_SCENARIOS)
    args.server_list = [s.strip() for s in args.servers.split(",") if s.strip()]
    # setup names (memory1, hub2, ...) pick the setups of the sio_core-only scenarios
    every_setup = {setup for setups in SETUPS.values() for setup in setups}
    args.setup_list = [s for s in args.server_list if s in every_setup and s not in SERVERS]
    args.server_list = [s for s in args.server_list if s not in args.setup_list] \
        or ([] if args.setup_list else args.server_list)
    unknown = [s for s in args.server_list if s not in SERVERS]
    if unknown:
        parser.error(f"unknown server(s) {', '.join(unknown)}; choose from "
                     f"{', '.join([*SERVERS, *sorted(every_setup)])}")
    args.out = args.out.resolve()
    return args


def preflight() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed: run `bash scripts/setup.sh`"
    if not (REPO / "node_modules" / "socket.io" / "package.json").is_file():
        return "node_modules/socket.io is missing: run `bash scripts/setup.sh`"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.rewrite:
        return rewrite(args)
    problem = preflight()
    if problem is not None:
        print(f"run.py: {problem}", file=sys.stderr)
        return 2
    servers = args.server_list
    if PYSIO in servers or ASGI in servers:
        try:
            metadata.version("uvicorn")
            metadata.version("python-socketio")
        except metadata.PackageNotFoundError:
            print("run.py: python-socketio or uvicorn missing: run `bash benchmarks/setup.sh`",
                  file=sys.stderr)
            return 2
    bench = Bench(args)
    if bench.cpus.pinned:
        # this process only waits and reads /proc: keep it off the servers' core
        os.sched_setaffinity(0, {int(bench.cpus.load)})
    print(f"run.py: {len(args.scenarios)} scenario(s) x {len(servers)} server(s) x "
          f"{args.repeat} repetition(s) -> {args.out}", flush=True)
    try:
        asyncio.run(bench.run(args.scenarios, servers))
    except KeyboardInterrupt:
        print("run.py: interrupted; writing what was measured", file=sys.stderr)
    finish_meta(bench)
    Report(bench, args.scenarios, servers).write()
    failed = [m for m in bench.measurements if not m["ok"]]
    print(f"run.py: wrote {args.out / 'RESULTS.md'}; {len(bench.measurements)} measurements, "
          f"{len(failed)} failed", flush=True)
    for m in failed:
        print(f"  FAILED {m['scenario']}-{m['setup']}-{m['rep']}: {m['error']}", file=sys.stderr)
    return 1 if failed else 0


def finish_meta(bench: Bench) -> None:
    bench.meta.update(
        date=time.strftime("%Y-%m-%d %H:%M %Z"),
        minutes=(time.monotonic() - bench.started) / 60,
        loadavg_end=f"{os.getloadavg()[0]:.2f}",
        machine=machine_description(bench.cpus),
        redis_note=bench.redis_note,
        redis_cluster_note=bench.redis_cluster_note,
    )


def rewrite(args: argparse.Namespace) -> int:
    """RESULTS.md and the plots again from OUT/results.json, without measuring anything."""
    saved = json.loads((args.out / "results.json").read_text())
    for key, value in saved["settings"].items():
        setattr(args, key, value)
    bench = Bench(args)
    bench.meta = saved["meta"]
    bench.redis_note = saved["meta"].get("redis_note", "")
    bench.redis_cluster_note = saved["meta"].get("redis_cluster_note", "")
    bench.cpus = Cpus(**saved["cpus"])
    bench.measurements = saved["measurements"]
    scenarios = [s for s in ALL_SCENARIOS if s.name in saved["scenarios"]]
    Report(bench, scenarios, saved["servers"]).write()
    print(f"run.py: rewrote {args.out / 'RESULTS.md'} from results.json", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
