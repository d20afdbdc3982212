"""CORS for the Engine.IO endpoint, as the reference server's ``cors`` option does it."""

from __future__ import annotations

from ..config import Config
from .messages import Request, Response


def allowed_origin(config: Config, request: Request) -> str | None:
    """The value for Access-Control-Allow-Origin, or None for no CORS headers."""
    allowed = config.cors_allowed_origins
    if allowed is None:
        return None
    origin = request.headers.get("origin")
    if origin is None:
        return None
    if allowed == "*":
        return origin  # echoed, so that credentials work (reference: origin: true)
    if isinstance(allowed, str):
        return origin if origin == allowed else None
    return origin if origin in allowed else None


def cors_headers(config: Config, request: Request) -> list[tuple[str, str]]:
    origin = allowed_origin(config, request)
    if origin is None:
        return []
    headers = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
    if config.cors_credentials:
        headers.append(("Access-Control-Allow-Credentials", "true"))
    return headers


def preflight(config: Config, request: Request) -> Response:
    """Answer an OPTIONS preflight: 204 with the allowed methods and headers."""
    headers = cors_headers(config, request)
    if headers:
        headers.append(("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE"))
        wanted = request.headers.get("access-control-request-headers")
        if wanted:
            headers.append(("Access-Control-Allow-Headers", wanted))
        headers.append(("Access-Control-Max-Age", "86400"))
    return Response(204, headers)
