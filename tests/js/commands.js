// What the node test drivers (sio_client.js, cluster_clients.js) share: one JSON object a line
// on stdout, and the command loop on stdin (one JSON command a line, run by handlers[cmd.op]; a
// failing command is printed as {"ev": "error"}; the end of stdin ends the process).
"use strict";

const readline = require("node:readline");

function print(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function serveCommands(handlers) {
  readline.createInterface({ input: process.stdin }).on("line", (line) => {
    if (!line.trim()) return;
    try {
      const cmd = JSON.parse(line);
      const handler = handlers[cmd.op];
      if (handler === undefined) throw new Error(`unknown op ${cmd.op}`);
      handler(cmd);
    } catch (err) {
      print({ ev: "error", message: String(err && err.stack ? err.stack : err) });
    }
  }).on("close", () => process.exit(0));
}

module.exports = { print, serveCommands };
