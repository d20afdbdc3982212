// What the node test drivers (sio_client.js, cluster_clients.js, emitter_ops.js) share: one JSON
// object a line on stdout, the command loop on stdin (one JSON command a line, run by
// handlers[cmd.op]; a failing command is printed as {"ev": "error"}; the end of stdin ends the
// process), and binary values written {"$bin": "<base64>"} in JSON (fromJson, toJson).
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

function fromJson(value) {
  if (Array.isArray(value)) return value.map(fromJson);
  if (value !== null && typeof value === "object") {
    if (typeof value.$bin === "string" && Object.keys(value).length === 1) {
      return Buffer.from(value.$bin, "base64");
    }
    const out = {};
    for (const [key, item] of Object.entries(value)) out[key] = fromJson(item);
    return out;
  }
  return value;
}

function toJson(value) {
  if (Buffer.isBuffer(value)) return { $bin: value.toString("base64") };
  if (value instanceof ArrayBuffer) return { $bin: Buffer.from(value).toString("base64") };
  if (ArrayBuffer.isView(value)) {
    return { $bin: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64") };
  }
  if (Array.isArray(value)) return value.map(toJson);
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const [key, item] of Object.entries(value)) out[key] = toJson(item);
    return out;
  }
  return value;
}

module.exports = { fromJson, print, serveCommands, toJson };
