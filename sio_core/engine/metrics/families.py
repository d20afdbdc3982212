"""Metric families as plain data: what each layer reports, and what workers send each other.

How this works: the hot paths keep plain integers on their own objects (``+= 1`` where the
work already happens; no lock, no call). When a scrape asks, each layer turns its integers
into :class:`Family` objects: a name, a type, a help text, the label names and one value
per set of label values. A family is plain data (:meth:`Family.to_wire` gives lists of
strings and numbers), so a worker can hand its families to the worker that was scraped,
which checks them (:meth:`Family.from_wire`: a peer's message is untrusted input), adds the
``worker`` label and renders them all with prometheus_client (sio_core/metrics/endpoint.py).
Nothing here imports prometheus_client.

Names follow Prometheus's conventions: the ``sio_core_`` prefix, base units (``_seconds``,
``_bytes``), and a counter's name without its ``_total``, which the exposition adds.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"
_TYPES = (COUNTER, GAUGE, HISTOGRAM)
#: Prometheus's metric and label names (https://prometheus.io/docs/concepts/data_model/)
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

#: handler durations, in seconds: from a fraction of a millisecond (a handler that awaits
#: nothing slow) to the ten seconds past which a client has long given up on its ack
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.5, 5.0, 10.0)


class Histogram:
    """Counts of observations per bucket (the last one is +Inf) and their sum: what a
    prometheus_client Histogram keeps, without its lock."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = DURATION_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # a bucket counts the observations <= its bound ("le"): bisect_left finds it
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def add(self, other: Histogram) -> None:
        for index, count in enumerate(other.counts):
            self.counts[index] += count
        self.sum += other.sum


@dataclass(slots=True)
class Family:
    """One metric family: ``values`` maps a tuple of label values (in ``labels`` order) to a
    number, or to a :class:`Histogram` for a histogram family (whose ``bounds`` it shares)."""

    name: str
    type: str
    help: str
    labels: tuple[str, ...] = ()
    values: dict[tuple[str, ...], Any] = field(default_factory=dict)
    #: a histogram family's bucket bounds
    bounds: tuple[float, ...] = ()

    def set(self, value: float | Histogram, *label_values: str) -> Family:
        self.values[label_values] = value
        return self

    def to_wire(self) -> list[Any]:
        if self.type == HISTOGRAM:
            values: list[Any] = [[list(k), v.counts, v.sum] for k, v in self.values.items()]
        else:
            values = [[list(k), v] for k, v in self.values.items()]
        return [self.name, self.type, self.help, list(self.labels), values, list(self.bounds)]

    @staticmethod
    def from_wire(item: Any, expected: Family) -> Family | None:
        """The family a peer sent, if it is well formed and is ``expected`` (the same name,
        type, labels and buckets as this worker's own: every worker runs the same code);
        None otherwise. Values that are not numbers, or label values not strings, are
        dropped one by one."""
        if not isinstance(item, list) or len(item) != 6:
            return None
        name, kind, _, labels, values, bounds = item
        if (name != expected.name or kind != expected.type or labels != list(expected.labels)
                or bounds != list(expected.bounds) or not isinstance(values, list)):
            return None
        out = Family(expected.name, expected.type, expected.help, expected.labels,
                     bounds=expected.bounds)
        width = len(expected.labels)
        for value in values:
            if not isinstance(value, list) or not value or not isinstance(value[0], list):
                continue
            key = value[0]
            if len(key) != width or not all(isinstance(part, str) for part in key):
                continue
            parsed = _histogram(value, expected.bounds) if kind == HISTOGRAM \
                else _number(value[1]) if len(value) == 2 else None
            if parsed is not None:
                out.values[tuple(key)] = parsed
        return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def _histogram(value: list[Any], bounds: tuple[float, ...]) -> Histogram | None:
    if len(value) != 3 or not isinstance(value[1], list) or len(value[1]) != len(bounds) + 1:
        return None
    counts = [_number(count) for count in value[1]]
    total = _number(value[2])
    if total is None or any(count is None or count < 0 or count != int(count)
                            for count in counts):
        return None
    histogram = Histogram(bounds)
    histogram.counts = [int(count) for count in counts]  # type: ignore[arg-type]
    histogram.sum = total
    return histogram


def family(name: str, kind: str, help: str, *labels: str,
           bounds: tuple[float, ...] = ()) -> Family:
    """A new, empty family (its name and labels checked: a mistake here is ours)."""
    if kind not in _TYPES or not _NAME.fullmatch(name) or not all(
            _LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"not a metric family: {name!r} {kind!r} {labels!r}")
    if kind == COUNTER and name.endswith("_total"):
        raise ValueError(f"a counter's name is given without _total: {name!r}")
    return Family(name, kind, help, labels, bounds=bounds)


def by_label(family: Family, counts: Mapping[str, float], keys: Iterable[str] = ()) -> Family:
    """``family`` (one label) with a value for each of ``keys`` (0 when not counted, so that
    the series exist from the start) and for each key of ``counts``."""
    for key in keys:
        family.set(counts.get(key, 0), key)
    for key, value in counts.items():
        family.set(value, key)
    return family
