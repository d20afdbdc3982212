// The benchmark application on the JavaScript socket.io 4 server, with its default options
// (the same events as sio_app.py): `node js_server.js PORT`, listening on 127.0.0.1 only.
"use strict";
const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.argv[2]);
const httpServer = http.createServer();
const io = new Server(httpServer);

io.on("connection", (socket) => {
  socket.on("echo", (data, ack) => ack(data));
  socket.on("bcast", (n, payload, ack) => {
    for (let i = 0; i < n; i++) io.emit("m", payload);
    if (typeof ack === "function") ack(n);
  });
  socket.on("ready", (ack) => ack("ok"));
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(JSON.stringify({ event: "listening", port }));
});
process.on("SIGTERM", () => {
  io.close();
  process.exit(0);
});
