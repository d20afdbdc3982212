// Not a Socket.IO server: the least a server can do to look like one to benchmarks/load.js, so
// that running the load generator against it measures the load generator's own ceiling.
//
//   node benchmarks/servers/ceiling_server.js PORT
//
// Raw TCP, no framework. WebSocket: the upgrade answer, the Engine.IO open packet, "40" answered
// with "40{sid}", echo answered by slicing the request text, and a bcast of n writes n ready-made
// frames to every socket as one buffer. Long-polling: the handshake, POSTs answered "ok", and a
// GET that waits until there is something to send. No heartbeat, no validation: only the load
// generator talks to it.
"use strict";

const net = require("net");
const crypto = require("crypto");

const port = Number(process.argv[2]);
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B29";
const wsClients = new Set();
const sessions = new Map(); // sid -> {queue: [], waiting: socket|null}
let nextSid = 0;

function openPacket(sid) {
  return "0" + JSON.stringify({ sid, upgrades: [], pingInterval: 25000, pingTimeout: 20000,
                                maxPayload: 1000000 });
}

function textFrame(text) {
  const payload = Buffer.from(text);
  const n = payload.length;
  const hlen = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(hlen + n);
  frame[0] = 0x81;
  if (n < 126) frame[1] = n;
  else if (n < 65536) {
    frame[1] = 126;
    frame.writeUInt16BE(n, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(n), 2);
  }
  payload.copy(frame, hlen);
  return frame;
}

// the answers to one Socket.IO packet from a client (text), as packets
function answer(sid, text) {
  if (text === "40" || text.startsWith("40{")) return [`40{"sid":"${sid}"}`];
  if (text.startsWith("42")) {
    const open = text.indexOf("[");
    const id = text.slice(2, open);
    if (text.startsWith('"echo",', open + 1)) return [`43${id}[${text.slice(open + 8)}`];
    if (text.startsWith('"bcast",', open + 1)) {
      const [, n, payload] = JSON.parse(text.slice(open));
      const frame = textFrame(`42["m",${JSON.stringify(payload)}]`);
      const all = Buffer.alloc(frame.length * n);
      for (let i = 0; i < n; i++) frame.copy(all, i * frame.length);
      for (const sock of wsClients) sock.write(all);
      return id ? [`43${id}[${n}]`] : [];
    }
  }
  return [];
}

function respond(sock, body) {
  const bytes = Buffer.from(body);
  sock.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\n` +
             `Content-Length: ${bytes.length}\r\n\r\n`);
  sock.write(bytes);
}

function flushSession(session) {
  if (session.waiting !== null && session.queue.length > 0) {
    const sock = session.waiting;
    session.waiting = null;
    respond(sock, session.queue.join("\x1e"));
    session.queue = [];
  }
}

function onRequest(sock, head, body) {
  const line = head.slice(0, head.indexOf("\r\n"));
  const [method, target] = line.split(" ");
  const lower = head.toLowerCase();
  if (lower.includes("\r\nupgrade: websocket")) {
    const key = /\r\nsec-websocket-key:\s*([^\r]+)/i.exec(head)[1].trim();
    const accept = crypto.createHash("sha1").update(key + GUID).digest("base64");
    sock.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
               `Sec-WebSocket-Accept: ${accept}\r\n\r\n`);
    const sid = `w${nextSid++}`;
    sock.write(textFrame(openPacket(sid)));
    wsClients.add(sock);
    sock.on("close", () => wsClients.delete(sock));
    return { ws: true, sid };
  }
  const m = /[?&]sid=([^&]+)/.exec(target);
  if (!m) {
    const sid = `p${nextSid++}`;
    sessions.set(sid, { queue: [], waiting: null });
    respond(sock, openPacket(sid));
    return null;
  }
  const sid = decodeURIComponent(m[1]);
  const session = sessions.get(sid);
  if (method === "GET") {
    session.waiting = sock;
    flushSession(session);
  } else {
    for (const packet of body.split("\x1e")) {
      for (const a of answer(sid, packet)) session.queue.push(a);
    }
    respond(sock, "ok");
    flushSession(session);
  }
  return null;
}

net.createServer((sock) => {
  sock.setNoDelay(true);
  let buf = null;
  let ws = null;
  sock.on("error", () => {});
  sock.on("data", (chunk) => {
    buf = buf === null ? chunk : Buffer.concat([buf, chunk]);
    for (;;) {
      if (ws === null) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buf.toString("latin1", 0, end);
        const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        const n = cl ? Number(cl[1]) : 0;
        if (buf.length < end + 4 + n) return;
        const body = buf.toString("utf8", end + 4, end + 4 + n);
        buf = buf.subarray(end + 4 + n);
        ws = onRequest(sock, head, body);
      } else {
        // client frames: always masked
        if (buf.length < 2) return;
        let plen = buf[1] & 0x7f;
        let hlen = 2;
        if (plen === 126) {
          if (buf.length < 4) return;
          plen = buf.readUInt16BE(2);
          hlen = 4;
        } else if (plen === 127) {
          if (buf.length < 10) return;
          plen = Number(buf.readBigUInt64BE(2));
          hlen = 10;
        }
        if (buf.length < hlen + 4 + plen) return;
        const op = buf[0] & 0x0f;
        const start = hlen + 4;
        for (let i = 0; i < plen; i++) buf[start + i] ^= buf[hlen + (i & 3)];
        const text = buf.toString("utf8", start, start + plen);
        buf = buf.subarray(start + plen);
        if (op === 8) {
          sock.end();
          return;
        }
        for (const a of answer(ws.sid, text)) sock.write(textFrame(a));
      }
      if (buf.length === 0) {
        buf = null;
        return;
      }
    }
  });
}).listen(port, "127.0.0.1", () => console.log(JSON.stringify({ event: "listening", port })));
