// The reference Engine.IO server (npm engine.io 6.x) as an echo server, the twin of
// `python -m sio_core serve sio_core.echo:app`: every message goes back to its sender. The tests
// run the same wire scenarios against both, so what they expect is the reference's behaviour.
//
//   node tests/js/eio_echo_server.js [PING_INTERVAL_MS PING_TIMEOUT_MS]
//
// Prints {"ev":"ready","port"} once listening on 127.0.0.1, on a free port (path /socket.io/).

"use strict";

const http = require("node:http");
// engine.io comes with socket.io (package.json): the reference's own Engine.IO layer
const { Server } = require("engine.io");
const { print } = require("./commands");

const [pingInterval, pingTimeout] = process.argv.slice(2).map(Number);
const options = { path: "/socket.io/" };
if (pingInterval) Object.assign(options, { pingInterval, pingTimeout });

const httpServer = http.createServer();
const engine = new Server(options);
engine.attach(httpServer, options);
engine.on("connection", (socket) => socket.on("message", (data) => socket.send(data)));
httpServer.listen(0, "127.0.0.1", () => print({ ev: "ready", port: httpServer.address().port }));
