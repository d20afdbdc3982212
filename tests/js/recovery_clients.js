// socket.io-client 4.x connections with connection state recovery, for tests/test_recovery.py:
// commands in on stdin, one JSON object per line out on stdout.
//
//   node tests/js/recovery_clients.js URL
//
// Clients are named "<group><index>"; a command picks a group. Every client reconnects (100 to
// 500 ms), and records what it receives: each event's first argument, and the offset the server
// added as its last argument (what the client sends back to recover).
//
// Commands:
//   {"op":"open","group":"g","count":3,"transports":["websocket"],"auth":{"room":"r"}}
//       prints {"ev":"opened","group","clients":{name: stats}} once each has connected and
//       received its "welcome" event (the first offset).
//   {"op":"close_engine","group":"g"}   socket.io.engine.close(): the transport only; the
//       client reconnects by itself
//   {"op":"emit","tag":"t","group":"g","event":"e","args":[...]}  each client emits with an
//       ack; prints {"ev":"acks","tag","acks":{name: ack}} once every client has its ack
//   {"op":"wait","tag":"t","group":"g","event":"msg","count":5}  prints {"ev":"waited","tag"}
//       once every client has received "count" of "event" since it opened
//   {"op":"wait_for","tag":"t","group":"g","event":"msg","value":7}  the same, once every
//       client has received "value" as the first argument of "event"
//   {"op":"connects","tag":"t","group":"g","count":2}  prints {"ev":"connected","tag"} once
//       every client has connected "count" times
//   {"op":"stats","tag":"t","group":"g"}  prints {"ev":"stats","tag","clients":{name: {id,
//       recovered, connects, ids, recovered_each, received: {event: [first arguments]},
//       offsets: {event: [last arguments]}}}}
//   {"op":"exit"}
// Live lines: {"ev":"connect","name","id","recovered","n"}, {"ev":"disconnect","name","reason"}.

"use strict";

const { print, serveCommands, toJson } = require("./commands");
const { io } = require("socket.io-client");

const url = process.argv[2];
const clients = new Map();
const groups = new Map();
const waits = [];

function check() {
  for (let i = waits.length - 1; i >= 0; i--) {
    const wait = waits[i];
    if (wait.names.every(wait.done)) {
      waits.splice(i, 1);
      if (wait.fire) wait.fire();
      else print({ ev: wait.ev, tag: wait.tag });
    }
  }
}

function describe(name) {
  const c = clients.get(name);
  return {
    id: c.socket.id === undefined ? null : c.socket.id,
    recovered: c.socket.recovered,
    connects: c.ids.length,
    ids: c.ids,
    recovered_each: c.recoveredEach,
    received: c.received,
    offsets: c.offsets,
  };
}

function targets(cmd) {
  const names = groups.get(cmd.group);
  if (names === undefined) throw new Error(`no group ${cmd.group}`);
  return names;
}

function openClient(name, cmd) {
  const socket = io(url, {
    forceNew: true,
    transports: cmd.transports || ["polling", "websocket"],
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
    auth: cmd.auth || {},
  });
  const client = { socket, received: {}, offsets: {}, ids: [], recoveredEach: [] };
  clients.set(name, client);
  socket.on("connect", () => {
    client.ids.push(socket.id);
    client.recoveredEach.push(socket.recovered);
    print({ ev: "connect", name, id: socket.id, recovered: socket.recovered, n: client.ids.length });
    check();
  });
  socket.on("disconnect", (reason) => print({ ev: "disconnect", name, reason }));
  socket.on("connect_error", (err) => print({ ev: "connect_error", name, message: String(err && err.message) }));
  socket.onAny((event, ...args) => {
    (client.received[event] ||= []).push(toJson(args[0]));
    (client.offsets[event] ||= []).push(args.length > 1 ? args[args.length - 1] : null);
    check();
  });
  return client;
}

const handlers = {
  open(cmd) {
    const names = [];
    for (let i = 0; i < cmd.count; i++) names.push(`${cmd.group}${i}`);
    groups.set(cmd.group, names);
    for (const name of names) openClient(name, cmd);
    waits.push({
      names,
      done: (n) => (clients.get(n).received.welcome || []).length >= 1,
      fire: () => {
        const out = {};
        for (const n of names) out[n] = describe(n);
        print({ ev: "opened", group: cmd.group, clients: out });
      },
    });
  },
  close_engine(cmd) {
    for (const name of targets(cmd)) clients.get(name).socket.io.engine.close();
  },
  emit(cmd) {
    const names = targets(cmd);
    const acks = {};
    let pending = names.length;
    for (const name of names) {
      clients.get(name).socket.emit(cmd.event, ...(cmd.args || []), (answer) => {
        acks[name] = answer;
        if (--pending === 0) print({ ev: "acks", tag: cmd.tag, acks });
      });
    }
  },
  wait(cmd) {
    waits.push({
      ev: "waited", tag: cmd.tag, names: targets(cmd),
      done: (n) => (clients.get(n).received[cmd.event] || []).length >= cmd.count,
    });
    check();
  },
  wait_for(cmd) {
    waits.push({
      ev: "waited", tag: cmd.tag, names: targets(cmd),
      done: (n) => (clients.get(n).received[cmd.event] || []).includes(cmd.value),
    });
    check();
  },
  connects(cmd) {
    waits.push({
      ev: "connected", tag: cmd.tag, names: targets(cmd),
      done: (n) => clients.get(n).ids.length >= cmd.count && clients.get(n).socket.connected,
    });
    check();
  },
  stats(cmd) {
    const out = {};
    for (const name of targets(cmd)) out[name] = describe(name);
    print({ ev: "stats", tag: cmd.tag, clients: out });
  },
  exit() {
    for (const { socket } of clients.values()) socket.disconnect();
    process.exit(0);
  },
};

serveCommands(handlers);
print({ ev: "ready" });
