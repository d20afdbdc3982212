"""Counts of what a worker saw, per second, between two ``server_stats``: the dashboard's charts.

How this works: as the JavaScript admin's EventBuffer, each count is keyed by the second
it happened in (a timestamp in milliseconds, rounded down), a type and an optional subtype:
``rawConnection``, ``rawDisconnection`` (subtype: the reason), ``packetsIn``, ``bytesIn``,
``packetsOut``, ``bytesOut``. Each ``server_stats`` takes and clears them, so the buffer
holds at most a stats interval's worth of seconds times a handful of keys.
"""

from __future__ import annotations

import time
from typing import Any


class EventBuffer:
    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[tuple[int, str, str | None], int] = {}

    def push(self, kind: str, sub_type: str | None = None, count: int = 1) -> None:
        key = (int(time.time()) * 1000, kind, sub_type)
        counts = self._counts
        counts[key] = counts.get(key, 0) + count

    def take(self) -> list[dict[str, Any]]:
        """The counts so far, as the UI reads them (``aggregatedEvents``); then none."""
        counts, self._counts = self._counts, {}
        out = []
        for (second, kind, sub_type), count in counts.items():
            event: dict[str, Any] = {"timestamp": second, "type": kind, "count": count}
            if sub_type is not None:  # the JavaScript admin's undefined: left out of the JSON
                event["subType"] = sub_type
            out.append(event)
        return out
