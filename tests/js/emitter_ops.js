// The JavaScript @socket.io/redis-emitter making the calls tests/emitter_ops.py makes with
// sio_core.Emitter (same arguments, same output; see there):
//
//   node tests/js/emitter_ops.js REDIS_URL KEY CALLS_JSON
//
// Also printed first: {"ev":"reserved","names":[...]}, the emitter's RESERVED_EVENTS.

"use strict";

const { fromJson, print } = require("./commands");
const { createClient } = require("redis");
const { Emitter, RESERVED_EVENTS } = require("@socket.io/redis-emitter");

function run(emitter, call) {
  const nsp = emitter.of(call.nsp || "/");
  const args = fromJson(call.args || []);
  if (call.call === "server_side_emit") return nsp.serverSideEmit(...args);
  let target = nsp.to(call.to || []).except(call.except || []);
  const flags = call.flags || {};
  if (flags.volatile) target = target.volatile;
  if ("compress" in flags) target = target.compress(flags.compress);
  switch (call.call) {
    case "emit": return target.emit(...args);
    case "sockets_join": return target.socketsJoin(...args);
    case "sockets_leave": return target.socketsLeave(...args);
    case "disconnect_sockets": return target.disconnectSockets(...args);
    default: throw new Error(`unknown call ${call.call}`);
  }
}

async function main() {
  const [url, key, calls] = process.argv.slice(2);
  const client = createClient({ url });
  await client.connect();
  const emitter = new Emitter(client, { key });
  print({ ev: "reserved", names: [...RESERVED_EVENTS].sort() });
  for (const call of JSON.parse(calls)) {
    try {
      print({ call: call.call, result: run(emitter, call) === undefined ? null : true });
    } catch (err) {
      print({ call: call.call, refused: String(err.message) });
    }
  }
  await client.quit(); // after the publishes queued before it
}

main().catch((err) => {
  print({ ev: "error", message: String(err && err.stack ? err.stack : err) });
  process.exit(1);
});
