// Drives socket.io-client 4.x for the integration tests: commands in, events out, one JSON
// object per line.
//
//   node tests/js/sio_client.js URL [msgpack]
//
// With "msgpack" every connection uses socket.io-msgpack-parser (the server must speak it).
//
// Commands (stdin):
//   {"op":"connect","name":"a","nsp":"/admin","auth":{...},"query":{...},"transports":[...]}
//       a new connection (its own Manager); with "share":"b" the namespace is opened on the
//       connection of socket "b" instead (multiplexing).
//   {"op":"emit","name":"a","event":"echo","args":[...],"ack":true,"tag":"t1"}
//       prints {"ev":"ack","tag":"t1","args":[...]} when the server acks (if "ack"), and
//       {"ev":"sent","tag":"t1"} once the packet is handed to the client.
//   {"op":"disconnect","name":"a"}     socket.disconnect()
//   {"op":"close_engine","name":"a"}   socket.io.engine.close(): the transport only
//   {"op":"raw","name":"a","data":"0"} a raw Socket.IO packet (text) on a's Engine.IO session,
//       for what the client library would never send (a second CONNECT, a malformed packet)
//   {"op":"extensions","name":"a"} prints {"ev":"extensions","name","value"}: the WebSocket
//       extensions the server accepted (node's ws offers permessage-deflate), null on polling
//   {"op":"settle","ms":100} prints {"ev":"settled"} after ms: for what has no event to wait
//       for (a polling GET being written to its socket)
//   {"op":"exit"}
//
// Printed events: {"ev":"ready"}, {"ev":"connect","name","id","transport"},
// {"ev":"connect_error","name","message","data"}, {"ev":"disconnect","name","reason"},
// {"ev":"event","name","event","args","acked"}, {"ev":"upgrade","name","transport"},
// {"ev":"error","message"}.
//
// Binary values travel as {"$bin":"<base64>"} in both directions. An event the server emits
// with an ack is answered with a single argument, {"got": [its arguments]}.
//
// Reconnection is off: a disconnect reason is final, and a refused connection stays refused.

"use strict";

const { fromJson, print, serveCommands, toJson } = require("./commands");
const { io } = require("socket.io-client");

const url = process.argv[2];
const parser = process.argv[3] === "msgpack" ? require("socket.io-msgpack-parser") : undefined;
const sockets = new Map();


function watch(name, socket) {
  socket.on("connect", () => {
    print({ ev: "connect", name, id: socket.id, transport: socket.io.engine.transport.name });
  });
  socket.on("connect_error", (err) => {
    print({ ev: "connect_error", name, message: err.message, data: err.data === undefined ? null : err.data });
  });
  socket.on("disconnect", (reason) => {
    print({ ev: "disconnect", name, reason });
  });
  socket.onAny((event, ...args) => {
    let ack = null;
    if (args.length && typeof args[args.length - 1] === "function") ack = args.pop();
    print({ ev: "event", name, event, args: toJson(args), acked: ack !== null });
    if (ack !== null) ack({ got: args });
  });
}

function get(name) {
  const socket = sockets.get(name);
  if (socket === undefined) throw new Error(`no socket named ${name}`);
  return socket;
}

const handlers = {
  connect(cmd) {
    const nsp = cmd.nsp || "/";
    let socket;
    if (cmd.share) {
      socket = get(cmd.share).io.socket(nsp, { auth: cmd.auth || {} });
    } else {
      socket = io(url + nsp, {
        forceNew: true,
        reconnection: false,
        transports: cmd.transports || ["polling", "websocket"],
        auth: cmd.auth || {},
        query: cmd.query || {},
        ...(parser ? { parser } : {}),
      });
      socket.io.on("open", () => {
        socket.io.engine.on("upgrade", (transport) => {
          print({ ev: "upgrade", name: cmd.name, transport: transport.name });
        });
      });
    }
    sockets.set(cmd.name, socket);
    watch(cmd.name, socket);
    // no socket.connect() here: the socket connects by itself (autoConnect), and a second
    // connect() while its Manager is already open would send a second CONNECT
  },
  emit(cmd) {
    const socket = get(cmd.name);
    const args = fromJson(cmd.args || []);
    if (cmd.ack) {
      socket.emit(cmd.event, ...args, (...answer) => {
        print({ ev: "ack", name: cmd.name, tag: cmd.tag, args: toJson(answer) });
      });
    } else {
      socket.emit(cmd.event, ...args);
    }
    print({ ev: "sent", name: cmd.name, tag: cmd.tag });
  },
  disconnect(cmd) {
    get(cmd.name).disconnect();
  },
  close_engine(cmd) {
    get(cmd.name).io.engine.close();
  },
  raw(cmd) {
    get(cmd.name).io.engine.send(cmd.data);
  },
  extensions(cmd) {
    const transport = get(cmd.name).io.engine.transport;
    const value = transport.ws && transport.ws.extensions !== undefined ? transport.ws.extensions : null;
    print({ ev: "extensions", name: cmd.name, value });
  },
  settle(cmd) {
    setTimeout(() => print({ ev: "settled" }), cmd.ms);
  },
  exit() {
    for (const socket of sockets.values()) socket.io.engine && socket.io.engine.close();
    process.exit(0);
  },
};

serveCommands(handlers);

print({ ev: "ready" });
