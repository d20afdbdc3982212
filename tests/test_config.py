"""sio_core.Config checks every field when it is built (or replaced): a clear ValueError naming the
field, for a library user as for the command line (tests/test_cli.py)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from sio_core import Config

BAD = [
    ({"max_payload": -5}, "max_payload: must be a whole number of at least 1"),
    ({"max_payload": 1.5}, "max_payload: must be a whole number"),
    ({"max_outbound_buffer": 0}, "max_outbound_buffer: must be a whole number of at least 1"),
    ({"max_attachments": -1}, "max_attachments: must be a whole number of at least 0"),
    ({"ping_interval": 0}, "ping_interval: must be a positive number of seconds"),
    ({"ping_timeout": float("nan")}, "ping_timeout: must be a positive number of seconds"),
    ({"close_timeout": float("inf")}, "close_timeout: must be a positive number of seconds"),
    ({"ack_timeout": True}, "ack_timeout: must be a positive number of seconds"),
    ({"ping_interval": 3e6}, "ping_interval: must be a positive number of seconds, at most"),
    ({"transports": ("foo",)}, "transports: unknown transport 'foo'"),
    ({"transports": ()}, "transports: at least one transport is needed"),
    ({"transports": "websocket"}, "transports: must be a sequence of transport names"),
    ({"path": "nope"}, "path: must start with '/'"),
    ({"path": "/a b/"}, "path: may only have URL path characters"),
    ({"health_path": "health"}, "health_path: must start with '/'"),
    ({"cors_allowed_origins": 5}, "cors_allowed_origins: None, '*' or a sequence of origins"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "message"), BAD, ids=lambda v: str(v)[:40])
def test_bad_field_is_a_clear_value_error(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        Config(**changes)
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        replace(Config(), **changes)


def test_good_fields_are_kept() -> None:
    config = Config(path="/sock", transports=["websocket"], max_packets_per_payload=None,
                    max_outbound_buffer=None, health_path=None, cors_allowed_origins=["http://a"],
                    ping_interval=0.2)
    assert config.path == "/sock/"
    assert config.transports == ("websocket",)
    assert config.max_packets_per_payload is None and config.ping_interval == 0.2
