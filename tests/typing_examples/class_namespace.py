"""A python-socketio application moved over: a class-based namespace."""

from __future__ import annotations

from typing import Any

from sio_core import AsyncNamespace, ConnectionRefusedError, Server


class Chat(AsyncNamespace):
    async def on_connect(self, sid: str, environ: dict[str, Any],
                         auth: dict[str, Any]) -> bool:
        if auth.get("token") != "s3cret":
            raise ConnectionRefusedError("authentication failed")
        await self.save_session(sid, {"name": auth.get("name", "anon")})
        await self.enter_room(sid, "lobby")
        return True

    async def on_message(self, sid: str, data: str) -> str:
        async with self.session(sid) as session:
            name = session["name"]
        await self.emit("message", (name, data), room="lobby", skip_sid=sid)
        return "ok"

    async def on_ask(self, sid: str, question: str) -> Any:
        return await self.call("question", question, to=sid, timeout=10)

    async def on_leave(self, sid: str) -> None:
        await self.leave_room(sid, "lobby")
        print(self.rooms(sid))

    def on_disconnect(self, sid: str, reason: str) -> None:
        print(sid, "left", reason)


io = Server()
io.register_namespace(Chat("/chat"))
