// The reference server for raw HTTP comparisons: node's http server under socket.io 4 with its
// default options except maxHttpBufferSize, listening on 127.0.0.1 on a free port.
//
// Usage: node tests/js/reference_server.js MAX_HTTP_BUFFER_SIZE
// Prints {"event":"listening","port":N} once it accepts connections; exits on SIGTERM.
// Paths outside socket.io's answer 404 (a bare http server would never answer them).
"use strict";
const http = require("http");
const { Server } = require("socket.io");

const maxHttpBufferSize = Number(process.argv[2] || 1e6);
const httpServer = http.createServer((req, res) => {
  res.writeHead(404).end();
});
new Server(httpServer, { maxHttpBufferSize });

httpServer.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ event: "listening", port: httpServer.address().port }));
});
process.on("SIGTERM", () => process.exit(0));
