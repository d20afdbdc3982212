"""``GET /metrics``: the metrics of every worker of this machine, for Prometheus.

How this works: the kernel hands a scrape to any worker (SO_REUSEPORT). That worker asks
every other worker of its machine for its metric families (a ``METRICS`` request over
the store, each answered within ``config.metrics_timeout`` or left out), adds its own, puts
a ``worker`` label on each worker's series and renders them with prometheus_client (a
custom Collector of ``prometheus_client.core`` metric families, the text format or
OpenMetrics as the scraper's Accept header asks). So one scrape answers for the machine,
whichever worker takes it.

Why a label per worker rather than sums: the series show how the load is spread (the
kernel's hashing can be uneven), and a worker that restarts starts its counters from zero
under the same label, which is how Prometheus expects a counter to reset (``rate()`` and
``increase()`` handle it); a sum over the workers would drop when one restarts, and look
to Prometheus like a reset of the whole. The machine's totals are one ``sum without
(worker)`` away. The label is the worker's number (the ``N`` of ``<node>-wN-<nonce>`` in
its sids), stable across restarts.

With Redis the store's peers include the workers of other machines: only this node's are
asked (the ``<node>`` of their address), and each machine is a scrape target of its own.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Iterable
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from ...http.messages import Request, Response
from ...stores.base import Envelope, Store
from ..messages import EngineKind
from .collect import WorkerServer, engine_families
from .families import COUNTER, GAUGE, HISTOGRAM, Family, Histogram, family

#: a worker's address, as the supervisor names it (sio_core/supervisor.py)
_OWNER = re.compile(r"(?P<node>.+)-w(?P<worker>\d+)-[0-9a-f]+")

#: a worker's families, and when it started (to choose between two of one number)
Snapshot = tuple[float, list[Family]]


def parse_owner(owner: str) -> tuple[str, str | None]:
    """``(worker label, node)`` of a worker's address; an address of another form (a
    server run in-process) is its own label, with no node."""
    match = _OWNER.fullmatch(owner)
    if match is None:
        return owner, None
    return match["worker"], match["node"]


class MetricsEndpoint:
    def __init__(self, server: WorkerServer) -> None:
        self.server = server
        self.started = time.time()
        self._process = ProcessCollector(registry=None)
        if server.store is not None:
            self.join(server.store)

    def join(self, store: Store) -> None:
        """Answer the other workers' scrapes over ``store`` (the server's, once it has one)."""
        store.on(EngineKind.METRICS, self._on_request)

    @property
    def worker(self) -> str:
        """This worker's label: its owner address's worker number (the owner is known once
        the server serves)."""
        return parse_owner(self.server.owner)[0]

    @property
    def node(self) -> str | None:
        return parse_owner(self.server.owner)[1]

    def families(self) -> list[Family]:
        """This worker's families: the engine's, its handler's (the Socket.IO server's),
        and its process's (CPU, memory, file descriptors)."""
        out = engine_families(self.server)
        handler_families = getattr(self.server.handler, "metric_families", None)
        if handler_families is not None:
            out.extend(handler_families())
        out.extend(process_families(self._process.collect()))
        return out

    def _on_request(self, envelope: Envelope) -> list[Any]:
        return [self.started, [item.to_wire() for item in self.families()]]

    def _peers(self) -> list[str]:
        store = self.server.store
        if store is None:
            return []
        return sorted(peer for peer in store.peers
                      if self.node is None or parse_owner(peer)[1] == self.node)

    def respond(self, request: Request) -> Response | Awaitable[Response]:
        peers = self._peers()
        accept = request.headers.get("accept", "")
        if not peers:
            return render({self.worker: (self.started, self.families())}, 0, accept)
        return self._gather(peers, accept)

    async def _gather(self, peers: list[str], accept: str) -> Response:
        store = self.server.store
        assert store is not None
        timeout = self.server.config.metrics_timeout
        replies = await asyncio.gather(
            *(store.ask(peer, EngineKind.METRICS, None, timeout) for peer in peers),
            return_exceptions=True)
        own = self.families()
        expected = {item.name: item for item in own}
        workers: dict[str, Snapshot] = {self.worker: (self.started, own)}
        missing = 0
        for peer, reply in zip(peers, replies, strict=True):
            snapshot = parse_reply(reply, expected)
            if snapshot is None:
                missing += 1
                continue
            label = parse_owner(peer)[0]
            # two workers of one number: a SIGHUP's new worker, and the one it replaces
            # (leaving): the newer one's series, as there can be only one
            if label not in workers or workers[label][0] < snapshot[0]:
                workers[label] = snapshot
        return render(workers, missing, accept)


def parse_reply(reply: Any, expected: dict[str, Family]) -> Snapshot | None:
    """A peer's answer, checked against this worker's own families (see Family.from_wire);
    None for a failed request or a malformed answer."""
    if (not isinstance(reply, list) or len(reply) != 2 or isinstance(reply[0], bool)
            or not isinstance(reply[0], int | float) or not isinstance(reply[1], list)):
        return None
    families = []
    for item in reply[1]:
        name = item[0] if isinstance(item, list) and item else None
        if isinstance(name, str) and name in expected:
            parsed = Family.from_wire(item, expected[name])
            if parsed is not None:
                families.append(parsed)
    return float(reply[0]), families


def process_families(metrics: Iterable[Metric]) -> list[Family]:
    """prometheus_client's process metrics (process_cpu_seconds_total,
    process_resident_memory_bytes, ...) as families, to travel with the others."""
    out = []
    for metric in metrics:
        if metric.type not in (COUNTER, GAUGE):
            continue
        item = family(metric.name, metric.type, metric.documentation)
        for sample in metric.samples:
            if sample.name in (metric.name, metric.name + "_total") and not sample.labels:
                item.set(sample.value)
        out.append(item)
    return out


def _worker_order(label: str) -> tuple[bool, int, str]:
    return (not label.isdigit(), int(label) if label.isdigit() else 0, label)


def render(workers: dict[str, Snapshot], missing: int, accept: str) -> Response:
    encoder, content_type = choose_encoder(accept)
    body = encoder(_Workers(workers, missing))
    return Response(200, [("Content-Type", content_type), ("Cache-Control", "no-cache")], body)


class _Workers(Collector):
    """The families of every worker that answered, each series labelled with its worker."""

    def __init__(self, workers: dict[str, Snapshot], missing: int) -> None:
        self.workers = [(label, {f.name: f for f in workers[label][1]})
                        for label in sorted(workers, key=_worker_order)]
        self.missing = missing

    def collect(self) -> Iterable[Metric]:
        # every family that any worker sent, in the order of the first one that has it
        names: dict[str, Family] = {}
        for _, families in self.workers:
            for name, item in families.items():
                names.setdefault(name, item)
        for name, first in names.items():
            labels = ["worker", *first.labels]
            metric: Metric
            if first.type == COUNTER:
                metric = CounterMetricFamily(name, first.help, labels=labels)
            elif first.type == GAUGE:
                metric = GaugeMetricFamily(name, first.help, labels=labels)
            else:
                metric = HistogramMetricFamily(name, first.help, labels=labels)
            for worker, families in self.workers:
                found = families.get(name)
                if found is not None:
                    _add(metric, found, worker)
            yield metric
        yield GaugeMetricFamily(
            "sio_core_metrics_workers_missing",
            "Workers of this machine that did not answer this scrape in time: their series"
            " are missing from it", value=self.missing)


def _add(metric: Metric, item: Family, worker: str) -> None:
    for key, value in item.values.items():
        labels = [worker, *key]
        if item.type == HISTOGRAM:
            assert isinstance(metric, HistogramMetricFamily) and isinstance(value, Histogram)
            cumulative, buckets = 0, []
            for bound, count in zip([*map(repr, value.bounds), "+Inf"], value.counts,
                                    strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            metric.add_metric(labels, buckets, value.sum)
        else:
            assert isinstance(metric, CounterMetricFamily | GaugeMetricFamily)
            metric.add_metric(labels, value)
