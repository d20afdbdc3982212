"""gzip / deflate of HTTP answers, as the reference's ``httpCompression`` compresses the
long-polling answers (engine.io's ``transports/polling.ts``).

How this works: :func:`negotiate` reads the request's ``Accept-Encoding`` (RFC 9110, 12.5.3)
and picks ``gzip``, else ``deflate`` (the reference's order), or nothing: a coding with
``q=0`` is refused, ``*`` stands for any coding not named. :meth:`HTTPCompression.apply`
then compresses a body of at least ``threshold`` bytes and says so in ``Content-Encoding``;
a smaller body is sent as it is (compressing a few bytes costs more than it saves).
``deflate`` is the zlib format (RFC 1950), as Node's ``zlib.createDeflate`` writes it and
HTTP means it.
"""

from __future__ import annotations

import functools
import gzip
import zlib
from dataclasses import dataclass

__all__ = ["ENCODINGS", "HTTPCompression", "negotiate"]

#: the codings offered, best first (the reference's ``["gzip", "deflate"]``)
ENCODINGS = ("gzip", "deflate")
#: zlib's default level, as Node's zlib uses: most of level 9's gain at a fraction of its cost
_LEVEL = 6


@dataclass(frozen=True, slots=True)
class HTTPCompression:
    """The coding a client accepts, and the body size from which it is used."""

    encoding: str
    threshold: int

    def apply(self, body: bytes, headers: list[tuple[str, str]]
              ) -> tuple[bytes, list[tuple[str, str]]]:
        """The body to send and its headers (``Content-Encoding`` added when compressed)."""
        if len(body) < self.threshold:
            return body, headers
        if self.encoding == "gzip":
            body = gzip.compress(body, _LEVEL, mtime=0)
        else:
            body = zlib.compress(body, _LEVEL)
        return body, [*headers, ("Content-Encoding", self.encoding)]


def negotiate(accept_encoding: str | None, threshold: int | None) -> HTTPCompression | None:
    """How to compress an answer to a request with this ``Accept-Encoding``; None when the
    client accepts neither coding or ``threshold`` is None (compression off)."""
    if threshold is None or not accept_encoding:
        return None
    return _negotiated(accept_encoding, threshold)


#: a client sends the same Accept-Encoding with each long-poll: read once per value
@functools.lru_cache(maxsize=64)
def _negotiated(accept_encoding: str, threshold: int) -> HTTPCompression | None:
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, _, params = item.partition(";")
        name = name.strip().lower()
        if not name:
            continue
        weight = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value.strip())
                except ValueError:
                    weight = 0.0  # an unreadable weight accepts nothing
        weights[name] = weight
    best: str | None = None
    best_weight = 0.0
    for encoding in ENCODINGS:
        weight = weights.get(encoding, weights.get("*", 0.0))
        if weight > best_weight:  # ties go to the first offered
            best, best_weight = encoding, weight
    return None if best is None else HTTPCompression(best, threshold)
