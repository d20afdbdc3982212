// The benchmark application on the JavaScript socket.io 4 server, with its default options
// (the same events as sio_app.py): `node js_server.js PORT [REDIS_URL]`, listening on 127.0.0.1
// only. With REDIS_URL the server runs on @socket.io/redis-adapter (several such processes are
// the JavaScript way to scale out, as sio_core's nodes on Redis are).
"use strict";
const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.argv[2]);
const redisUrl = process.argv[3];
const httpServer = http.createServer();
const io = new Server(httpServer);

io.on("connection", (socket) => {
  const room = socket.handshake.query.room;
  if (room) socket.join(room);
  socket.on("echo", (data, ack) => ack(data));
  socket.on("bcast", (n, payload, ack) => {
    for (let i = 0; i < n; i++) io.emit("m", payload);
    if (typeof ack === "function") ack(n);
  });
  socket.on("bcast_room", (n, payload, exceptSender, ack) => {
    const op = exceptSender ? io.to("room").except(socket.id) : io.to("room");
    for (let i = 0; i < n; i++) op.emit("m", payload);
    if (typeof ack === "function") ack(n);
  });
  socket.on("ready", (ack) => ack("ok"));
});

async function main() {
  if (redisUrl) {
    const { createClient } = require("redis");
    const { createAdapter } = require("@socket.io/redis-adapter");
    const pub = createClient({ url: redisUrl });
    const sub = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect()]);
    io.adapter(createAdapter(pub, sub));
  }
  httpServer.listen(port, "127.0.0.1", () => {
    console.log(JSON.stringify({ event: "listening", port }));
  });
}
main();
process.on("SIGTERM", () => {
  io.close();
  process.exit(0);
});
