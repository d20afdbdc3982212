"""A plain script, as a Celery task or a cron job would use the emitter (sync, no event loop):
it runs sio_core.Emitter calls for tests/test_emitter.py. tests/js/emitter_ops.js runs the same
calls with the JavaScript ``@socket.io/redis-emitter``.

    python tests/emitter_ops.py REDIS_URL KEY CALLS_JSON

CALLS_JSON is a list of calls, each ``{"call", "args", "nsp", "to", "except", "flags"}``:
``call`` is emit, sockets_join, sockets_leave, disconnect_sockets or server_side_emit; ``args``
its arguments (sockets_join and sockets_leave take the list of rooms as one argument); ``nsp``
(default "/") goes through ``of``, ``to`` and ``except`` (lists of rooms) through ``to`` and
``except_``, ``flags`` ({"volatile": true, "compress": false}) through ``volatile`` and
``compress``. Binary values are written ``{"$bin": "<base64>"}``. One JSON line is printed a
call: ``{"call", "result"}`` (what publish returned: the subscribers that got it), or
``{"call", "refused"}`` (the exception's type and message) when the emitter refused it.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

from sio_core import Emitter


def from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [from_json(item) for item in value]
    if isinstance(value, dict):
        if list(value) == ["$bin"]:
            return base64.b64decode(value["$bin"])
        return {key: from_json(item) for key, item in value.items()}
    return value


def run(emitter: Emitter[int], call: dict[str, Any]) -> int:
    nsp = emitter.of(call.get("nsp", "/"))
    if call["call"] == "server_side_emit":
        return nsp.server_side_emit(*from_json(call["args"]))
    target = nsp.to(call.get("to", [])).except_(call.get("except", []))
    flags = call.get("flags", {})
    if flags.get("volatile"):
        target = target.volatile
    if "compress" in flags:
        target = target.compress(flags["compress"])
    method = getattr(target, call["call"])
    return int(method(*from_json(call.get("args", []))))


def main() -> None:
    url, key, calls = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    with Emitter(url, key=key) as emitter:
        for call in calls:
            try:
                out = {"call": call["call"], "result": run(emitter, call)}
            except Exception as exc:
                out = {"call": call["call"], "refused": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
