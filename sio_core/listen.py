"""Where a worker listens besides ``host:port``: a unix socket (``--uds``), and TLS
(``--ssl-certfile`` / ``--ssl-keyfile``) on either.

A unix socket's file is made by the process that binds it, readable and writable by every
user (0o666, as uvicorn does: the reverse proxy in front usually runs as another user; the
directory's permissions decide who may reach it). A file left by a server that is gone is
replaced; one a live server answers on is not. With ``--workers N`` the master binds it once
and every worker inherits the listening socket (the kernel hands each connection to one of
them); with TCP each worker binds its own (SO_REUSEPORT) and wraps it in TLS itself.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import stat

__all__ = ["bind_unix", "tls_context"]


def bind_unix(path: str, backlog: int) -> socket.socket:
    """A listening unix socket at ``path``. Raises OSError (one line: what is wrong)."""
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise OSError(f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # nobody answers: a server that is gone left it
        else:
            raise OSError(f"a server is listening on {path} already")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o666)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def tls_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """A server's TLS context: the certificate chain (PEM) and its key (PEM; in the
    certificate's file when None). Raises OSError or ssl.SSLError."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    return context
