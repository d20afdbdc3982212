// The load generator of benchmarks/run.py: many Socket.IO clients in one node process, speaking
// Engine.IO v4 / Socket.IO v5 straight over TCP.
//
//   node benchmarks/load.js '<json config>'
//
// How this works. Each websocket client is a raw TCP socket: it sends the HTTP upgrade request
// (GET /socket.io/?EIO=4&transport=websocket), then parses WebSocket frames itself. A frame is
// looked at only as far as the scenario needs: a broadcast delivery is counted from its first two
// bytes ("42"), never decoded to a string, so one core can take in millions of deliveries a second
// (the `ws` package's per-message events and UTF-8 decoding cost about ten times that; its ceiling
// would be below the servers under test). Frames the client sends are masked with a random key, as
// RFC 6455 requires. A long-polling client is two keep-alive HTTP/1.1 connections (one for the
// pending GET, one for POSTs) with a minimal response parser (Content-Length or chunked bodies).
//
// The scenario protocol is the same on every server (benchmarks/servers/):
//   echo(data)          the server acks data: "42<id>[\"echo\",data]" -> "43<id>[data]"
//   bcast(n, payload)   the server emits "m" n times to every client
//   bcast_room(n, payload, exceptSender)
//                       the server emits "m" n times to the room "room" (every client that
//                       connected with `room=room` in its query), all but the sender if
//                       exceptSender: target "room" / "except" (the sender then counts none)
//
// Config (JSON): {mode: "bcast"|"echo"|"idle"|"polling", ports: [..] (clients are spread over
// them in turn), clients, warmup, duration (s), payload, roundSeconds (bcast), target (bcast:
// "all" | "room" | "except"), perRound (bcast: broadcasts per round, fixed; else sized to
// roundSeconds), query (added to each client's URL), concurrency (of connection
// attempts), timeout (s, the whole run), path}.
//
// Output: one JSON object per line on stdout: {"event": "connected", ...}, {"event":
// "measuring"} when the measured window opens, {"event": "result", ...} at the end, or
// {"event": "error", "message": ...}. The idle mode also waits on stdin: it prints "warm" after a
// few connections, opens the rest on a "go" line, prints "connected", closes on a "close" line.
"use strict";

const net = require("net");
const crypto = require("crypto");
const readline = require("readline");

const cfg = Object.assign(
  {
    mode: "echo",
    ports: [3000],
    host: "127.0.0.1",
    clients: 100,
    warmup: 1,
    duration: 5,
    payload: { msg: "hello, world", n: 12345 },
    roundSeconds: 0.5,
    concurrency: 64,
    timeout: 120,
    path: "/socket.io/",
    query: "",
    target: "all",
    warmClients: 10,
  },
  JSON.parse(process.argv[2] || "{}"),
);
const payloadJson = JSON.stringify(cfg.payload);

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function now() {
  return performance.now(); // ms
}

function fail(message) {
  out({ event: "error", message });
  process.exit(1);
}

const cpuStart = process.cpuUsage();
let cpuMark = null;
let cpuMarkTime = 0;
function markCpu() {
  cpuMark = process.cpuUsage();
  cpuMarkTime = now();
}
// the fraction of one core this process used since markCpu()
function cpuSinceMark() {
  const d = process.cpuUsage(cpuMark || cpuStart);
  const wall = (now() - cpuMarkTime) * 1000; // us
  return wall > 0 ? (d.user + d.system) / wall : 0;
}

setTimeout(() => fail(`load generator timed out after ${cfg.timeout}s`), cfg.timeout * 1000).unref();

// --- WebSocket framing ----------------------------------------------------------------------

const CH_4 = 0x34, CH_2 = 0x32, CH_3 = 0x33, CH_0 = 0x30, CH_1 = 0x31, CH_LB = 0x5b;

function maskedFrame(text) {
  const payload = Buffer.from(text);
  const n = payload.length;
  const hlen = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(hlen + 4 + n);
  frame[0] = 0x81; // FIN, text
  if (n < 126) {
    frame[1] = 0x80 | n;
  } else if (n < 65536) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(n, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(n), 2);
  }
  frame.writeUInt32BE((Math.random() * 0x100000000) >>> 0, hlen);
  const m = hlen;
  for (let i = 0; i < n; i++) frame[m + 4 + i] = payload[i] ^ frame[m + (i & 3)];
  return frame;
}

const CLOSE_FRAME = (() => {
  const f = Buffer.alloc(6);
  f[0] = 0x88;
  f[1] = 0x80;
  return f;
})();

let nextClientId = 0;

class WsClient {
  // handler: {onEvent(client, buf, start, end), onAck(client, buf, start, end), onClose(client)}
  constructor(port, handler) {
    this.id = nextClientId++;
    this.port = port;
    this.handler = handler;
    this.rest = null;
    this.upgraded = false;
    this.connected = false;
    this.closed = false;
    this.fragments = null;
    this.count = 0; // broadcast deliveries received
    this.nextAckId = 0;
    this.sentAt = 0;
  }

  // resolves when the Socket.IO CONNECT of "/" is answered
  open() {
    return new Promise((resolve, reject) => {
      this.resolveOpen = resolve;
      this.rejectOpen = reject;
      const sock = net.connect({ host: cfg.host, port: this.port });
      this.sock = sock;
      sock.setNoDelay(true);
      sock.on("connect", () => {
        const key = crypto.randomBytes(16).toString("base64");
        sock.write(
          `GET ${cfg.path}?EIO=4&transport=websocket${cfg.query ? "&" + cfg.query : ""} HTTP/1.1\r\n` +
            `Host: ${cfg.host}:${this.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        );
      });
      sock.on("data", (chunk) => this.onData(chunk));
      sock.on("error", (err) => this.onGone(err.code || err.message));
      sock.on("close", () => this.onGone("closed by the server"));
    });
  }

  onGone(reason) {
    if (this.closed) return;
    this.closed = true;
    if (!this.connected) {
      this.rejectOpen(new Error(reason));
    } else if (this.handler.onClose) {
      this.handler.onClose(this, reason);
    }
  }

  send(text) {
    if (!this.closed) this.sock.write(maskedFrame(text));
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.sock.end(CLOSE_FRAME);
    this.sock.destroySoon();
  }

  onData(chunk) {
    let buf = chunk;
    if (this.rest !== null) {
      buf = Buffer.concat([this.rest, chunk]);
      this.rest = null;
    }
    const len = buf.length;
    let off = 0;
    if (!this.upgraded) {
      const idx = buf.indexOf("\r\n\r\n");
      if (idx < 0) {
        this.rest = buf;
        return;
      }
      const status = buf.toString("latin1", 0, Math.min(idx, 40));
      if (!status.startsWith("HTTP/1.1 101")) {
        this.sock.destroy();
        this.onGone(`upgrade refused: ${status.split("\r\n")[0]}`);
        return;
      }
      this.upgraded = true;
      off = idx + 4;
    }
    while (len - off >= 2) {
      const b0 = buf[off];
      const b1 = buf[off + 1];
      let plen = b1 & 0x7f;
      let hlen = 2;
      if (plen === 126) {
        if (len - off < 4) break;
        plen = buf.readUInt16BE(off + 2);
        hlen = 4;
      } else if (plen === 127) {
        if (len - off < 10) break;
        plen = Number(buf.readBigUInt64BE(off + 2));
        hlen = 10;
      }
      const masked = (b1 & 0x80) !== 0; // a server must not mask; tolerated
      if (masked) hlen += 4;
      if (len - off < hlen + plen) break;
      const start = off + hlen;
      const end = start + plen;
      if (masked) {
        for (let i = start; i < end; i++) buf[i] ^= buf[start - 4 + ((i - start) & 3)];
      }
      off = end;
      const op = b0 & 0x0f;
      const fin = (b0 & 0x80) !== 0;
      if (op === 0 || !fin) {
        // fragmented message: gather it (servers do not fragment small messages; rare path)
        if (op !== 0) this.fragments = [];
        if (this.fragments === null) continue;
        this.fragments.push(Buffer.from(buf.subarray(start, end)));
        if (fin) {
          const whole = Buffer.concat(this.fragments);
          this.fragments = null;
          this.onPacket(whole, 0, whole.length);
        }
      } else if (op === 1 || op === 2) {
        this.onPacket(buf, start, end);
      } else if (op === 8) {
        this.sock.destroy();
        this.onGone("websocket closed by the server");
        return;
      } else if (op === 9) {
        const pong = maskedFrame(buf.toString("latin1", start, end));
        pong[0] = 0x8a;
        this.sock.write(pong);
      }
    }
    if (off < len) this.rest = buf.subarray(off);
  }

  // one Engine.IO packet
  onPacket(buf, start, end) {
    const t = buf[start];
    if (t === CH_4) {
      const s = buf[start + 1];
      if (s === CH_2) {
        this.handler.onEvent(this, buf, start, end);
      } else if (s === CH_3) {
        this.handler.onAck(this, buf, start, end);
      } else if (s === CH_0) {
        if (!this.connected) {
          this.connected = true;
          this.resolveOpen(this);
        }
      } else if (s === CH_4) {
        this.sock.destroy();
        this.onGone(`connect_error: ${buf.toString("utf8", start, end)}`);
      } else if (s === CH_1) {
        this.onGone("disconnected by the server");
      }
    } else if (t === CH_2) {
      this.send("3"); // pong (a "2probe" never comes: no upgrade from websocket)
    } else if (t === CH_0) {
      this.send("40"); // open: connect to the main namespace
    } else if (t === CH_1) {
      this.onGone("engine.io close from the server");
    }
  }
}

// the ack id of "43<id>[...]"
function ackId(buf, start, end) {
  let id = 0;
  for (let i = start + 2; i < end; i++) {
    const c = buf[i];
    if (c === CH_LB) break;
    id = id * 10 + (c - CH_0);
  }
  return id;
}

// open `count` clients, `concurrency` attempts at a time; ports in turn
async function openClients(count, handler, makeClient) {
  const clients = new Array(count);
  const failures = {};
  let failed = 0;
  let next = 0;
  const t0 = now();
  async function lane() {
    while (next < count) {
      const i = next++;
      const client = makeClient(cfg.ports[i % cfg.ports.length], handler);
      try {
        clients[i] = await client.open();
      } catch (err) {
        failed++;
        failures[err.message] = (failures[err.message] || 0) + 1;
        clients[i] = null;
      }
    }
  }
  const lanes = [];
  for (let i = 0; i < Math.min(cfg.concurrency, count); i++) lanes.push(lane());
  await Promise.all(lanes);
  const seconds = (now() - t0) / 1000;
  return { clients: clients.filter((c) => c !== null), seconds, failed, failures };
}

function newWs(port, handler) {
  return new WsClient(port, handler);
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function latencyStats(lat) {
  const sorted = Float64Array.from(lat).sort();
  return {
    p50_ms: percentile(sorted, 50),
    p90_ms: percentile(sorted, 90),
    p99_ms: percentile(sorted, 99),
    max_ms: sorted.length ? sorted[sorted.length - 1] : null,
  };
}

// --- scenarios ------------------------------------------------------------------------------

const lost = { count: 0, reasons: {} };
function onLost(client, reason) {
  lost.count++;
  lost.reasons[reason] = (lost.reasons[reason] || 0) + 1;
}

// Broadcast fan-out. Client 0 asks for a round of n broadcasts; a round ends when every client
// has all n. Rounds are closed loop (the next starts when the previous is delivered everywhere),
// and n is sized during warm-up so that a round lasts about roundSeconds.
async function runBcast() {
  let roundTarget = 0; // deliveries every client must have seen by the end of this round
  let doneClients = 0;
  let roundResolve = null;
  let total = 0;
  let receivers = 0; // the clients a broadcast reaches (all but the sender with "except")
  const handler = {
    onEvent(client) {
      total++;
      if (++client.count === roundTarget) {
        if (++doneClients === receivers && roundResolve) roundResolve();
      }
    },
    onAck() {},
    onClose: onLost,
  };
  const opened = await openClients(cfg.clients, handler, newWs);
  const clients = opened.clients;
  out({ event: "connected", clients: clients.length, seconds: opened.seconds,
        failed: opened.failed, failures: opened.failures });
  if (clients.length === 0) fail("no client connected");
  const sender = clients[0];
  const exceptSender = cfg.target === "except";
  receivers = clients.length - (exceptSender ? 1 : 0);
  if (receivers === 0) fail("no client to broadcast to");
  const request = cfg.target === "all"
    ? (n) => `42["bcast",${n},${payloadJson}]`
    : (n) => `42["bcast_room",${n},${payloadJson},${exceptSender}]`;

  async function round(n) {
    doneClients = 0;
    roundTarget += n;
    const started = now();
    const done = new Promise((r) => (roundResolve = r));
    sender.send(request(n));
    const limit = Math.max(30, cfg.roundSeconds * 20) * 1000;
    let timer;
    const timedOut = new Promise((r) => (timer = setTimeout(() => r("timeout"), limit)));
    const outcome = await Promise.race([done, timedOut]);
    clearTimeout(timer);
    if (outcome === "timeout") {
      const short = clients.filter((c) => c.count < roundTarget && !(exceptSender && c === sender));
      const minSeen = Math.min(...short.map((c) => c.count - (roundTarget - n)));
      fail(`broadcast round of ${n} not delivered within ${limit / 1000}s: ` +
           `${short.length}/${clients.length} clients short (least: ${minSeen}/${n}); ` +
           `${lost.count} clients lost ${JSON.stringify(lost.reasons)}`);
    }
    return (now() - started) / 1000;
  }

  // calibrate: start with ~2,000 deliveries per round, then size rounds to roundSeconds; or
  // cfg.perRound broadcasts every round (the same burst whatever the number of clients: each
  // client then gets the same number of packets per write, and only the clients vary)
  let n = cfg.perRound || Math.max(1, Math.ceil(2000 / clients.length));
  const warmEnd = now() + cfg.warmup * 1000;
  do {
    const seconds = await round(n);
    const rate = (n * receivers) / Math.max(seconds, 1e-4);
    if (!cfg.perRound) {
      n = Math.max(1, Math.min(200000, Math.round((rate * cfg.roundSeconds) / receivers)));
    }
  } while (now() < warmEnd);

  out({ event: "measuring", n });
  markCpu();
  const totalBefore = total;
  const t0 = now();
  const roundTimes = [];
  do {
    roundTimes.push(await round(n));
  } while (now() - t0 < cfg.duration * 1000);
  const seconds = (now() - t0) / 1000;
  const deliveries = total - totalBefore;
  const result = {
    event: "result",
    mode: "bcast",
    clients: clients.length,
    rounds: roundTimes.length,
    per_round: n,
    deliveries,
    seconds,
    deliveries_per_s: deliveries / seconds,
    round_p50_ms: percentile(Float64Array.from(roundTimes).sort(), 50) * 1000,
    loadgen_cpu: cpuSinceMark(),
    lost: lost.count,
    connect_seconds: opened.seconds,
  };
  for (const c of clients) c.close();
  out(result);
}

// Closed-loop echo: every client has one echo in flight; the ack's round trip is the latency
// (websocket or long-polling clients).
// `ackIdOf(a, b, c)` reads the ack id from what the client's onAck got after the client.
async function runEchoLoop(mode, newClient, ackIdOf) {
  let measuring = false;
  let stopping = false;
  let acks = 0;
  const lat = [];
  const handler = {
    onEvent() {},
    onAck(client, a, b, c) {
      const t = now();
      if (ackIdOf(a, b, c) !== client.nextAckId - 1) return;
      if (measuring) {
        acks++;
        lat.push(t - client.sentAt);
      }
      if (!stopping) sendEcho(client);
    },
    onClose: onLost,
  };
  function sendEcho(client) {
    const id = client.nextAckId++;
    client.sentAt = now();
    client.send(`42${id}["echo",${payloadJson}]`);
  }
  const opened = await openClients(cfg.clients, handler, newClient);
  const clients = opened.clients;
  out({ event: "connected", clients: clients.length, seconds: opened.seconds,
        failed: opened.failed, failures: opened.failures });
  if (clients.length === 0) fail("no client connected");
  for (const c of clients) sendEcho(c);
  await sleep(cfg.warmup * 1000);
  out({ event: "measuring" });
  markCpu();
  measuring = true;
  const t0 = now();
  await sleep(cfg.duration * 1000);
  measuring = false;
  stopping = true;
  const seconds = (now() - t0) / 1000;
  const cpu = cpuSinceMark();
  out(Object.assign({
    event: "result", mode, clients: clients.length, acks, seconds,
    acks_per_s: acks / seconds, loadgen_cpu: cpu, lost: lost.count, lost_reasons: lost.reasons,
    connect_seconds: opened.seconds,
  }, latencyStats(lat)));
  for (const c of clients) c.close();
}

function runEcho() {
  return runEchoLoop("echo", newWs, ackId);  // onAck(client, buf, start, end)
}

// Idle connections: how fast they open, and (measured by run.py) what they cost the server.
async function runIdle() {
  const handler = { onEvent() {}, onAck() {}, onClose: onLost };
  const lines = readline.createInterface({ input: process.stdin });
  const commands = [];
  let waiter = null;
  lines.on("line", (line) => {
    commands.push(line.trim());
    if (waiter) waiter();
  });
  async function command(name) {
    for (;;) {
      const i = commands.indexOf(name);
      if (i >= 0) return commands.splice(i, 1);
      await new Promise((r) => (waiter = r));
    }
  }
  const warm = await openClients(Math.min(cfg.warmClients, cfg.clients), handler, newWs);
  out({ event: "warm", clients: warm.clients.length });
  await command("go");
  markCpu();
  const opened = await openClients(cfg.clients, handler, newWs);
  const cpu = cpuSinceMark();
  out({ event: "connected", clients: opened.clients.length, seconds: opened.seconds,
        connections_per_s: opened.clients.length / opened.seconds, failed: opened.failed,
        failures: opened.failures, loadgen_cpu: cpu });
  await command("close");
  out({ event: "result", mode: "idle", lost: lost.count, lost_reasons: lost.reasons });
  for (const c of opened.clients.concat(warm.clients)) c.close();
  lines.close();
}

// --- long-polling ---------------------------------------------------------------------------

// One keep-alive HTTP/1.1 connection; one request at a time.
class HttpConn {
  constructor(port) {
    this.port = port;
    this.sock = null;
    this.pending = null; // {resolve, reject, retry}
    this.buf = null;
  }

  request(method, path, body) {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject, method, path, body, retried: false, gotBytes: false };
      this.write();
    });
  }

  write() {
    const p = this.pending;
    if (this.sock === null) this.connect();
    let head = `${p.method} ${p.path} HTTP/1.1\r\nHost: ${cfg.host}:${this.port}\r\n`;
    if (p.body !== null) {
      const body = Buffer.from(p.body);
      head += `Content-Type: text/plain;charset=UTF-8\r\nContent-Length: ${body.length}\r\n\r\n`;
      this.sock.write(Buffer.concat([Buffer.from(head), body]));
    } else {
      this.sock.write(head + "\r\n");
    }
  }

  connect() {
    const sock = net.connect({ host: cfg.host, port: this.port });
    sock.setNoDelay(true);
    this.sock = sock;
    this.buf = null;
    sock.on("data", (chunk) => {
      if (this.sock === sock) this.onData(chunk);
    });
    const gone = (why) => {
      if (this.sock !== sock) return;
      this.sock = null;
      const p = this.pending;
      if (p === null) return;
      if (!p.gotBytes && !p.retried) {
        // the server closed an idle keep-alive connection as we wrote: once more, anew
        p.retried = true;
        this.write();
      } else {
        this.pending = null;
        p.reject(new Error(why));
      }
    };
    sock.on("error", (err) => gone(err.code || err.message));
    sock.on("close", () => gone("connection closed"));
  }

  onData(chunk) {
    const p = this.pending;
    if (p === null) return; // nothing asked: ignore
    p.gotBytes = true;
    const buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
    this.buf = buf;
    const headEnd = buf.indexOf("\r\n\r\n");
    if (headEnd < 0) return;
    const head = buf.toString("latin1", 0, headEnd);
    const status = Number(head.slice(9, 12));
    const lower = head.toLowerCase();
    const bodyStart = headEnd + 4;
    let body = null;
    let consumed = 0;
    const cl = /\r\ncontent-length:\s*(\d+)/.exec(lower);
    if (cl) {
      const n = Number(cl[1]);
      if (buf.length - bodyStart < n) return;
      body = buf.toString("utf8", bodyStart, bodyStart + n);
      consumed = bodyStart + n;
    } else if (/\r\ntransfer-encoding:[^\r]*chunked/.test(lower)) {
      const parts = [];
      let off = bodyStart;
      for (;;) {
        const lineEnd = buf.indexOf("\r\n", off);
        if (lineEnd < 0) return;
        const size = parseInt(buf.toString("latin1", off, lineEnd), 16);
        if (buf.length < lineEnd + 2 + size + 2) return;
        if (size === 0) {
          consumed = lineEnd + 4; // no trailers are sent by these servers
          break;
        }
        parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        off = lineEnd + 2 + size + 2;
      }
      body = Buffer.concat(parts).toString("utf8");
    } else {
      body = ""; // no body (e.g. 204)
      consumed = bodyStart;
    }
    this.buf = consumed < buf.length ? buf.subarray(consumed) : null;
    this.pending = null;
    if (/\r\nconnection:\s*close/.test(lower)) {
      const sock = this.sock;
      this.sock = null;
      sock.destroy();
    }
    p.resolve({ status, body });
  }

  destroy() {
    this.pending = null;
    if (this.sock !== null) this.sock.destroy();
    this.sock = null;
  }
}

class PollClient {
  constructor(port, handler) {
    this.id = nextClientId++;
    this.port = port;
    this.handler = handler;
    this.get = new HttpConn(port);
    this.post = new HttpConn(port);
    this.queue = [];
    this.posting = false;
    this.connected = false;
    this.closed = false;
    this.nextAckId = 0;
    this.sentAt = 0;
  }

  async open() {
    const hs = await this.get.request("GET", `${cfg.path}?EIO=4&transport=polling`, null);
    if (hs.status !== 200 || hs.body[0] !== "0") {
      throw new Error(`handshake: HTTP ${hs.status} ${hs.body.slice(0, 80)}`);
    }
    this.sid = JSON.parse(hs.body.split("\x1e")[0].slice(1)).sid;
    this.url = `${cfg.path}?EIO=4&transport=polling&sid=${encodeURIComponent(this.sid)}`;
    return new Promise((resolve, reject) => {
      this.resolveOpen = resolve;
      this.rejectOpen = reject;
      this.enqueue("40");
      this.poll();
    });
  }

  onGone(reason) {
    if (this.closed) return;
    this.closed = true;
    this.get.destroy();
    this.post.destroy();
    if (!this.connected) this.rejectOpen(new Error(reason));
    else if (this.handler.onClose) this.handler.onClose(this, reason);
  }

  poll() {
    this.get.request("GET", this.url, null).then(
      (res) => {
        if (this.closed) return;
        if (res.status !== 200) return this.onGone(`GET: HTTP ${res.status}`);
        for (const packet of res.body.split("\x1e")) this.onPacket(packet);
        if (!this.closed) this.poll();
      },
      (err) => this.onGone(`GET: ${err.message}`),
    );
  }

  onPacket(p) {
    const t = p.charCodeAt(0);
    if (t === CH_4) {
      const s = p.charCodeAt(1);
      if (s === CH_3) this.handler.onAck(this, p);
      else if (s === CH_2) this.handler.onEvent(this, p);
      else if (s === CH_0 && !this.connected) {
        this.connected = true;
        this.resolveOpen(this);
      } else if (s === CH_4) this.onGone(`connect_error: ${p}`);
    } else if (t === CH_2) {
      this.enqueue("3");
    } else if (t === CH_1) {
      this.onGone("engine.io close from the server");
    }
  }

  enqueue(packet) {
    this.queue.push(packet);
    if (!this.posting) this.flush();
  }

  flush() {
    if (this.closed || this.queue.length === 0) return;
    const body = this.queue.join("\x1e");
    this.queue = [];
    this.posting = true;
    this.post.request("POST", this.url, body).then(
      (res) => {
        this.posting = false;
        if (res.status !== 200) return this.onGone(`POST: HTTP ${res.status} ${res.body}`);
        this.flush();
      },
      (err) => this.onGone(`POST: ${err.message}`),
    );
  }

  send(text) {
    this.enqueue(text);
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.get.destroy();
    this.post.destroy();
  }
}

function runPolling() {
  // onAck(client, packet): the packet as text, "43<id>[...]"
  return runEchoLoop("polling", (port, h) => new PollClient(port, h),
                     (packet) => Number(packet.slice(2, packet.indexOf("["))));
}

const modes = { bcast: runBcast, echo: runEcho, idle: runIdle, polling: runPolling };
if (!modes[cfg.mode]) fail(`unknown mode ${cfg.mode}`);
modes[cfg.mode]().then(
  () => setTimeout(() => process.exit(0), 100),
  (err) => fail(err && err.stack ? err.stack : String(err)),
);
