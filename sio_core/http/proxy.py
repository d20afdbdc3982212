"""Trusted proxy headers: ``X-Forwarded-For`` / ``X-Forwarded-Proto`` from the peers named in
``forwarded_allow_ips`` (uvicorn's ``--forwarded-allow-ips``), so that behind a reverse proxy a
socket's ``handshake.address`` is the client's and ``handshake.secure`` says whether the client
used TLS with the proxy.

How this works: whether a connection's peer is trusted is decided once, when it connects
(:meth:`TrustedProxies.trusts`). Each request from a trusted peer then has its client taken
from ``X-Forwarded-For``: the list is read from the right (the nearest proxy's entry last), and
the first address that is not itself a trusted proxy is the client (all trusted, as with
``*``: the leftmost), as uvicorn does. ``X-Forwarded-Proto`` (its last entry) ``https`` or
``wss`` makes the request secure. From any other peer the headers are ignored: anyone can
send them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

__all__ = ["UNIX", "TrustedProxies", "forwarded_secure"]

#: the name of a peer on a unix socket (it has no address) in ``forwarded_allow_ips``
UNIX = "unix"

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The peers whose proxy headers are believed: addresses, networks (CIDR), ``"unix"``
    (any peer on a unix socket), ``"*"`` (every peer)."""

    __slots__ = ("_any", "_networks", "_unix")

    def __init__(self, allowed: Sequence[str]) -> None:
        self._any = "*" in allowed
        self._unix = UNIX in allowed
        self._networks: tuple[_Network, ...] = tuple(
            ipaddress.ip_network(item, strict=False) for item in allowed
            if item not in ("*", UNIX))

    def __bool__(self) -> bool:
        return self._any or self._unix or bool(self._networks)

    def trusts(self, host: str | None) -> bool:
        """Whether ``host`` (a peer's address; None on a unix socket) is a trusted proxy."""
        if self._any:
            return True
        if host is None:
            return self._unix
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def client(self, forwarded_for: str) -> str | None:
        """The client's address in an ``X-Forwarded-For`` value (None if it names none)."""
        hops = [hop.strip() for hop in forwarded_for.split(",")]
        hops = [hop for hop in hops if hop]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else None


def forwarded_secure(forwarded_proto: str) -> bool:
    """Whether an ``X-Forwarded-Proto`` value says the client used TLS."""
    return forwarded_proto.rsplit(",", 1)[-1].strip().lower() in ("https", "wss")
