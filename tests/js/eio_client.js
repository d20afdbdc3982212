// The official engine.io-client driven through a scenario, reporting what happens as one JSON
// object per line on stdout (for tests/test_engineio_interop.py).
//
// Usage: node tests/js/eio_client.js '<scenario JSON>'
//        node tests/js/eio_client.js @scenario.json    (large scenarios: argv is limited)
//
// Scenario: {"url": "http://127.0.0.1:PORT", "path"?: "/socket.io/", "transports"?: [...],
//            "upgrade"?: true, "timeoutMs"?: 10000, "steps": [...]}
// Steps, run in order, each once the previous one is done:
//   {"send": "text"}                 send a text message
//   {"sendBinary": "00ff10"}         send these bytes (hex) as a binary message
//   {"wait": "<event>", "count"?: n} wait for the next n events of that name not yet waited for
//                                    (open, handshake, upgrade, message, ping, close, ...)
//   {"stdin": true}                  print {"event":"paused"}, wait for one line on stdin
//   {"close": true}                  socket.close()
// After the last step the script prints {"event":"done"} and exits 0 once the client has nothing
// left to send, closing the socket first if it is still open. An "error" event before that, or the timeout, exits 1.
//
// Events printed: open {sid, transport}, handshake {data}, upgrading / upgrade {transport},
// upgradeError {message}, packet {type, transport} (every packet received, incl. ping/noop),
// message {transport, type: "text", data} or {transport, type: "binary", hex, length} or
// {transport, type: "empty"} (the client's undefined, for an empty text message),
// ping {transport}, close {reason, description}, error {message}, done, timeout.

"use strict";

const fs = require("fs");
const readline = require("readline");
const { Socket } = require("engine.io-client");

const argument = process.argv[2] || "{}";
const scenario = JSON.parse(
  argument.startsWith("@") ? fs.readFileSync(argument.slice(1), "utf8") : argument,
);

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function describe(err) {
  if (err === undefined || err === null) return null;
  if (typeof err === "string") return err;
  return err.message || err.description || String(err);
}

const timeout = setTimeout(() => {
  emit({ event: "timeout" });
  process.exit(1);
}, scenario.timeoutMs || 10000);

// event name -> [occurred, waited for]; and the resolvers of pending waits
const counts = new Map();
let waiter = null;

function record(name, payload) {
  emit({ event: name, ...payload });
  const count = counts.get(name) || [0, 0];
  count[0] += 1;
  counts.set(name, count);
  if (waiter !== null && waiter.name === name) {
    const resolve = waiter.resolve;
    waiter = null;
    resolve();
  }
  if (name === "error") {
    clearTimeout(timeout);
    // let stdout drain before exiting
    setImmediate(() => process.exit(1));
  }
}

function waitFor(name) {
  const count = counts.get(name) || [0, 0];
  counts.set(name, count);
  if (count[0] > count[1]) {
    count[1] += 1;
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    waiter = {
      name,
      resolve: () => {
        count[1] += 1;
        resolve();
      },
    };
  });
}

// stdin is read only by a scenario that pauses on it
let stdinLines = null;

async function nextStdinLine() {
  if (stdinLines === null) {
    stdinLines = readline.createInterface({ input: process.stdin });
  }
  const iterator = stdinLines[Symbol.asyncIterator]();
  const line = await iterator.next();
  if (line.done) throw new Error("stdin closed while paused");
}

function bytesOf(data) {
  if (data instanceof ArrayBuffer) return Buffer.from(new Uint8Array(data));
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

const options = {
  path: scenario.path || "/socket.io/",
  transports: scenario.transports || ["polling", "websocket"],
  upgrade: scenario.upgrade !== undefined ? scenario.upgrade : true,
};
const socket = new Socket(scenario.url, options);
let closed = false;

function transportName() {
  return socket.transport ? socket.transport.name : null;
}

socket.on("open", () => record("open", { sid: socket.id, transport: transportName() }));
socket.on("handshake", (data) => record("handshake", { data }));
socket.on("upgrading", (t) => record("upgrading", { transport: t.name }));
socket.on("upgrade", (t) => record("upgrade", { transport: t.name }));
socket.on("upgradeError", (err) => record("upgradeError", { message: describe(err) }));
socket.on("packet", (p) => record("packet", { type: p.type, transport: transportName() }));
socket.on("ping", () => record("ping", { transport: transportName() }));
socket.on("message", (data) => {
  if (data === undefined) {
    // what the client makes of a message packet without data ("4", an empty text message)
    record("message", { transport: transportName(), type: "empty" });
  } else if (typeof data === "string") {
    record("message", { transport: transportName(), type: "text", data });
  } else {
    const bytes = bytesOf(data);
    record("message", {
      transport: transportName(),
      type: "binary",
      hex: bytes.toString("hex"),
      length: bytes.length,
    });
  }
});
socket.on("error", (err) => record("error", { message: describe(err) }));
socket.on("close", (reason, description) => {
  closed = true;
  record("close", { reason, description: describe(description) });
});

async function run() {
  for (const step of scenario.steps || []) {
    if (step.send !== undefined) {
      socket.send(step.send);
    } else if (step.sendBinary !== undefined) {
      socket.send(Uint8Array.from(Buffer.from(step.sendBinary, "hex")));
    } else if (step.wait !== undefined) {
      for (let i = 0; i < (step.count || 1); i++) await waitFor(step.wait);
    } else if (step.stdin) {
      emit({ event: "paused" });
      await nextStdinLine();
    } else if (step.close) {
      socket.close();
    } else {
      throw new Error("unknown step " + JSON.stringify(step));
    }
  }
  if (!closed) {
    socket.close();
    await waitFor("close");
  }
  clearTimeout(timeout);
  emit({ event: "done" });
  // No process.exit() here: what the client still has to send (over polling, the POST of its
  // "1" after close()) must go out. Node exits once nothing is left to do; if something stays
  // up anyway, exit after a grace period.
  if (stdinLines !== null) stdinLines.close();
  process.stdin.destroy();
  setTimeout(() => process.exit(0), 2000).unref();
}

run().catch((err) => {
  emit({ event: "error", message: describe(err) });
  process.exit(1);
});
