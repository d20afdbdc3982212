// Many socket.io-client 4.x connections in one node process, for the cluster tests: commands in
// on stdin, one JSON object per line out on stdout.
//
//   node tests/js/cluster_clients.js URL
//
// Clients are named "<group><index>" (g0, g1, ...). A command picks its clients with "names"
// (a list) or "group" (every client of that group, or of each group of a list). What each client
// receives is recorded under the event name (its first argument, or null; binary values as
// {"$bin": "<base64>"}); the client's own life is recorded under the pseudo-events "$connect"
// (the engine sid), "$disconnect" (the reason) and "$upgrade" (the transport name).
//
// Commands:
//   {"op":"open","group":"g","count":20,"transports":["polling"],"reconnection":true,
//    "namespace":"/admin","auth":{...},"all_args":true}
//       opens the clients (to the namespace, "/" if none, with that auth); prints
//       {"ev":"opened","group","clients":{name: client}} once each has connected (client as in
//       "stats"). With "all_args", each event is also printed as it comes, with all its
//       arguments: {"ev":"event","name","event","args"}.
//   {"op":"emit","tag":"t","group":"g","event":"bcast","args":[...],"ack":true}
//       each client emits; in args (at any depth) the string "$id" becomes that client's socket
//       id and "$name" its name. With "ack": prints {"ev":"acks","tag","acks":{name: first ack argument}} once
//       every client has its ack; without: {"ev":"emitted","tag"} at once.
//   {"op":"wait","tag":"t","group":"g","event":"chat","count":19}
//       prints {"ev":"waited","tag"} once every client has recorded at least "count" of "event".
//   {"op":"stats","tag":"t","group":"g"}
//       prints {"ev":"stats","tag","clients":{name: {id, sid, sids, transport, connected,
//       received: {event: [first arguments]}}}}.
//   {"op":"close","group":"g"}      socket.disconnect() (no reconnection follows)
//   {"op":"pause","group":"g"}      a websocket client stops reading its TCP connection (ws's
//                                   pause(): what the server sends piles up in the kernel, then
//                                   in the server's write buffer); {"op":"resume",...} reads again
//   {"op":"exit"}
//
// Live lines: {"ev":"connect","name","id","sid","transport","n"} (n > 1: a reconnection),
// {"ev":"disconnect","name","reason","detail","code"} (code: the websocket close code, 1000 for a
// clean closing handshake, 1006 for a TCP connection that ended without one; null over polling), {"ev":"connect_error","name","message"},
// {"ev":"error","message"}.
//
// The server's "ping" (and any event sent with an ack) is answered with the client's name.

"use strict";

const { print, serveCommands, toJson } = require("./commands");
const { io } = require("socket.io-client");

const url = process.argv[2];
const clients = new Map(); // name -> {socket, received, sids}
const groups = new Map(); // group -> [names]
const waits = []; // {tag, names, event, count}


function record(client, event, value) {
  let list = client.received[event];
  if (list === undefined) list = client.received[event] = [];
  list.push(value === undefined ? null : value);
  checkWaits();
}

function checkWaits() {
  for (let i = waits.length - 1; i >= 0; i--) {
    const wait = waits[i];
    const done = wait.names.every((name) => {
      const list = clients.get(name).received[wait.event];
      return list !== undefined && list.length >= wait.count;
    });
    if (done) {
      waits.splice(i, 1);
      print({ ev: "waited", tag: wait.tag });
    }
  }
}

function describe(name) {
  const { socket, received, sids } = clients.get(name);
  const engine = socket.io.engine;
  return {
    id: socket.id === undefined ? null : socket.id,
    sid: sids.length ? sids[sids.length - 1] : null,
    sids,
    transport: engine && engine.transport ? engine.transport.name : null,
    connected: socket.connected,
    received,
  };
}

function targets(cmd) {
  if (Array.isArray(cmd.names)) return cmd.names;
  return (Array.isArray(cmd.group) ? cmd.group : [cmd.group]).flatMap((group) => {
    const names = groups.get(group);
    if (names === undefined) throw new Error(`no group ${group}`);
    return names;
  });
}

function substitute(value, name, socket) {
  if (value === "$id") return socket.id;
  if (value === "$name") return name;
  if (Array.isArray(value)) return value.map((item) => substitute(item, name, socket));
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const [key, item] of Object.entries(value)) out[key] = substitute(item, name, socket);
    return out;
  }
  return value;
}

function openClient(name, cmd) {
  const socket = io(url + (cmd.namespace || ""), {
    forceNew: true,
    transports: cmd.transports || ["polling", "websocket"],
    reconnection: cmd.reconnection !== false,
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
    auth: cmd.auth || {},
  });
  const client = { socket, received: {}, sids: [] };
  clients.set(name, client);
  socket.io.on("open", () => {
    const engine = socket.io.engine;
    engine.on("upgrade", (transport) => record(client, "$upgrade", transport.name));
  });
  socket.on("connect", () => {
    const engine = socket.io.engine;
    client.sids.push(engine.id);
    record(client, "$connect", engine.id);
    print({
      ev: "connect", name, id: socket.id, sid: engine.id, transport: engine.transport.name,
      n: client.received.$connect.length,
    });
  });
  socket.on("disconnect", (reason, details) => {
    // a transport error's details: its message and description (for polling, the HTTP status
    // of the request that failed; 0 when there was no HTTP answer at all)
    const detail = details ? `${details.message} ${details.description}` : null;
    const context = details && details.context;
    const code = context && typeof context.code === "number" ? context.code : null;
    print({ ev: "disconnect", name, reason, detail, code });
    record(client, "$disconnect", reason);
  });
  socket.on("connect_error", (err) => {
    print({ ev: "connect_error", name, message: String(err && err.message) });
  });
  socket.onAny((event, ...args) => {
    if (args.length && typeof args[args.length - 1] === "function") args.pop()(name);
    record(client, event, toJson(args[0]));
  });
  if (cmd.all_args) {
    socket.onAny((event, ...args) => print({ ev: "event", name, event, args }));
  }
  return socket;
}

const handlers = {
  open(cmd) {
    const names = [];
    for (let i = 0; i < cmd.count; i++) names.push(`${cmd.group}${i}`);
    groups.set(cmd.group, names);
    let pending = names.length;
    for (const name of names) {
      openClient(name, cmd).once("connect", () => {
        if (--pending === 0) {
          const out = {};
          for (const n of names) out[n] = describe(n);
          print({ ev: "opened", group: cmd.group, clients: out });
        }
      });
    }
  },
  emit(cmd) {
    const names = targets(cmd);
    const acks = {};
    let pending = names.length;
    for (const name of names) {
      const { socket } = clients.get(name);
      const args = substitute(cmd.args || [], name, socket);
      if (cmd.ack) {
        socket.emit(cmd.event, ...args, (...answer) => {
          acks[name] = answer.length === 1 ? answer[0] : answer;
          if (--pending === 0) print({ ev: "acks", tag: cmd.tag, acks });
        });
      } else {
        socket.emit(cmd.event, ...args);
      }
    }
    if (!cmd.ack) print({ ev: "emitted", tag: cmd.tag });
  },
  wait(cmd) {
    waits.push({ tag: cmd.tag, names: targets(cmd), event: cmd.event, count: cmd.count });
    checkWaits();
  },
  stats(cmd) {
    const out = {};
    for (const name of targets(cmd)) out[name] = describe(name);
    print({ ev: "stats", tag: cmd.tag, clients: out });
  },
  close(cmd) {
    for (const name of targets(cmd)) clients.get(name).socket.disconnect();
  },
  pause(cmd) {
    for (const name of targets(cmd)) clients.get(name).socket.io.engine.transport.ws.pause();
  },
  resume(cmd) {
    for (const name of targets(cmd)) clients.get(name).socket.io.engine.transport.ws.resume();
  },
  exit() {
    for (const { socket } of clients.values()) socket.disconnect();
    process.exit(0);
  },
};

serveCommands(handlers);
