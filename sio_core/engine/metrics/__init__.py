"""Prometheus metrics: plain counters where the work happens, families at scrape time.

- :mod:`~sio_core.engine.metrics.families`: metric families as plain data (what the
  layers report, and what workers send each other); no prometheus_client.
- :mod:`~sio_core.engine.metrics.collect`: the Engine.IO server's, the forwarding's and the
  store's families (the Socket.IO layer's are sio_core/socketio/counters.py).
- :mod:`~sio_core.engine.metrics.endpoint`: ``GET /metrics``, every worker of the machine in
  one answer, rendered by prometheus_client (imported only when the endpoint is on).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .collect import WorkerServer
    from .endpoint import MetricsEndpoint


def metrics_endpoint(server: WorkerServer) -> MetricsEndpoint | None:
    """The metrics endpoint of ``server``; None when ``config.metrics_path`` is None."""
    if server.config.metrics_path is None:
        return None
    from .endpoint import MetricsEndpoint

    return MetricsEndpoint(server)
