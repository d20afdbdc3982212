// An Engine.IO v4 client written from the protocol, not engine.io-client: long-polling through
// Node's global fetch (undici), the upgrade through Node's global WebSocket (undici too; Node 20
// needs --experimental-websocket, e.g. in NODE_OPTIONS). Driven by tests/test_fetch_eio_client.py
// with one JSON command a line on stdin (tests/js/commands.js); one JSON object a line out.
//
//   node tests/js/fetch_eio_client.js CLOSE_WAIT_MS
//
// HTTP requests ("get", "post", "open", and those of "heartbeat"), their options:
//   "url"            the server's base URL, e.g. http://127.0.0.1:PORT (for "open" and a session-
//                    less "get"/"post"; a session keeps its own)
//   "name"           a session opened by "open": its sid is in the query, its options are the
//                    defaults of its requests
//   "sid"            a sid of your own (or "" for none) instead of the session's
//   "connection"     "close": the request carries `Connection: close`. Undici 6 (Node 20) sends
//                    `connection: keep-alive` by default, lets a caller replace it, and then
//                    closes that connection itself once the response is read.
//   "stack"          "fetch" (default), or "raw": a TCP connection of its own, HTTP/1.1 written
//                    and read by hand; with "connection":"close" it waits up to CLOSE_WAIT_MS
//                    for the server to close the connection after its response ("serverClosed"),
//                    which an HTTP client cannot show.
//   "packets"        (POST) Engine.IO packets, joined with \x1e as one payload; or "body"
// Every request prints, as its head goes out, {"ev":"sent","tag","head":[lines],"port"} (the head
// as written, read from undici's diagnostics channel "undici:client:sendHeaders", and the local
// port: a new port is a new connection), then {"ev":"response","tag","status","headers","body",
// "ms"[,"serverClosed"]} (headers lower-cased, minus "date"; ms since the session's handshake was
// sent). A request that fails at the HTTP level prints {"ev":"response","tag","error"}.
//
// Commands ("tag" names the answers):
//   {"op":"open","tag","name","url",...}     the handshake GET; the session takes its sid
//   {"op":"get","tag",...} / {"op":"post","tag","packets",...}
//   {"op":"heartbeat","tag","name","pings":N}
//       polls as a client does and answers each ping "2" with a POST "3", until N pings;
//       prints {"ev":"heartbeat","tag","pings":[ms...],"received":[packets],"ok":bool}
//       (ok: false when a poll or a pong is not answered 200, or the server sent "1")
//   {"op":"upgrade","tag","name"}
//       opens transport=websocket&sid=..., sends "2probe", waits for the answer frame, then
//       (as engine.io-client pauses polling) for the session's polls in flight, then sends "5";
//       prints {"ev":"upgraded","tag","probe","ms"} (probe: the first frame received), or
//       {"ev":"upgraded","tag","error"} when the websocket closes first. From then on each frame
//       prints {"ev":"frame","name","data"} (text) or {"ev":"frame","name","hex"} (binary), a ping
//       is answered "3", and a close prints {"ev":"ws_close","name","code"}.
//   {"op":"ws_send","tag","name","data"}       a text frame; prints {"ev":"ws_sent","tag"}

"use strict";

const dc = require("node:diagnostics_channel");
const net = require("node:net");
const { print, serveCommands } = require("./commands");

const closeWaitMs = Number(process.argv[2] || 1000);
const PATH = "/socket.io/";
const SEPARATOR = "\x1e"; // between the packets of one polling payload (Engine.IO v4)

const sessions = new Map(); // name -> {url, sid, connection, stack, openedAt, inflight, ws}
const sentTags = new Map(); // the request's cache-buster "t" -> its tag
let requests = 0;

// undici reports each request head as it writes it: the exact bytes and the connection
dc.subscribe("undici:client:sendHeaders", ({ request, headers, socket }) => {
  const id = new URLSearchParams(request.path.split("?")[1] || "").get("t");
  const tag = sentTags.get(id);
  if (tag === undefined) return;
  sentTags.delete(id);
  print({ ev: "sent", tag, head: headLines(headers), port: socket.localPort });
});

function headLines(head) {
  return head.split("\r\n").filter((line) => line !== "");
}

function sinceOpen(session) {
  return session ? Math.round(performance.now() - session.openedAt) : null;
}

function requestUrl(cmd, session, transport) {
  const base = cmd.url || (session && session.url);
  const query = new URLSearchParams({ EIO: "4", transport });
  const sid = cmd.sid !== undefined ? cmd.sid : session && session.sid;
  if (sid) query.set("sid", sid);
  return new URL(`${PATH}?${query}`, base);
}

// --- one HTTP request, through fetch or by hand ---------------------------------------------------

async function httpRequest(cmd, tag, method) {
  const session = cmd.name !== undefined ? sessions.get(cmd.name) : undefined;
  if (cmd.name !== undefined && session === undefined) throw new Error(`no session ${cmd.name}`);
  const url = requestUrl(cmd, session, "polling");
  const id = String(++requests);
  url.searchParams.set("t", id); // a cache buster, as engine.io-client sends; it names the request
  const connection = cmd.connection || (session && session.connection);
  const stack = cmd.stack || (session && session.stack) || "fetch";
  const body = method === "POST" ? (cmd.packets ? cmd.packets.join(SEPARATOR) : cmd.body) : null;
  const headers = connection ? { Connection: connection } : {};
  let result;
  try {
    if (stack === "raw") {
      result = await rawRequest(url, method, headers, body, tag);
    } else if (stack === "fetch") {
      sentTags.set(id, tag);
      const response = await fetch(url, { method, headers, body });
      result = { status: response.status, headers: headerObject(response.headers),
                 body: await response.text() };
    } else {
      throw new Error(`unknown stack ${stack}`);
    }
  } catch (err) {
    result = { error: String((err && err.cause) || err) };
  }
  const answer = { ev: "response", tag, ...result, ms: sinceOpen(session) };
  print(answer);
  return answer;
}

function headerObject(headers) {
  const out = {};
  for (const [name, value] of headers) if (name !== "date") out[name] = value;
  return out;
}

// HTTP/1.1 over a bare TCP connection: what a minimal client (or a proxy) sees, including whether
// the server closes the connection after answering a `Connection: close` request (RFC 9112 9.6).
function rawRequest(url, method, headers, body, tag) {
  return new Promise((resolve, reject) => {
    const payload = body === null || body === undefined ? Buffer.alloc(0) : Buffer.from(body);
    const head = [`${method} ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`];
    for (const [name, value] of Object.entries(headers)) head.push(`${name}: ${value}`);
    if (method === "POST") {
      head.push("Content-Type: text/plain;charset=UTF-8", `Content-Length: ${payload.length}`);
    }
    const socket = net.connect(Number(url.port), url.hostname);
    const waitsForClose = (headers.Connection || "").toLowerCase() === "close";
    let received = Buffer.alloc(0);
    let response = null;
    let timer = null;
    const finish = (serverClosed) => {
      clearTimeout(timer);
      socket.destroy();
      if (response === null) {
        reject(new Error(`connection ended before a complete response (${received.length} bytes)`));
      } else {
        resolve(waitsForClose ? { ...response, serverClosed } : response);
      }
    };
    socket.on("connect", () => {
      socket.write(Buffer.concat([Buffer.from(head.join("\r\n") + "\r\n\r\n"), payload]));
      print({ ev: "sent", tag, head, port: socket.localPort });
    });
    socket.on("data", (chunk) => {
      received = Buffer.concat([received, chunk]);
      if (response !== null) return;
      response = parseResponse(received);
      if (response === null) return;
      if (!waitsForClose) finish(false);
      else timer = setTimeout(() => finish(false), closeWaitMs);
    });
    socket.on("end", () => finish(true));
    socket.on("error", (err) => (response === null ? reject(err) : finish(true)));
  });
}

// A complete response in `data`, or null while more is needed. Framing (RFC 9112 6.3): chunked
// (the reference server's error answers) or Content-Length.
function parseResponse(data) {
  const end = data.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const [statusLine, ...lines] = data.subarray(0, end).toString("latin1").split("\r\n");
  const headers = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).trim().toLowerCase();
    if (name !== "date") headers[name] = line.slice(colon + 1).trim();
  }
  const body = headers["transfer-encoding"] === "chunked"
    ? dechunk(data.subarray(end + 4))
    : contentOf(data.subarray(end + 4), Number(headers["content-length"] || 0));
  if (body === null) return null;
  return { status: Number(statusLine.split(" ")[1]), headers, body: body.toString("utf8") };
}

function contentOf(data, length) {
  return data.length < length ? null : data.subarray(0, length);
}

function dechunk(data) {
  const chunks = [];
  for (let at = 0; ;) {
    const lineEnd = data.indexOf("\r\n", at);
    if (lineEnd < 0) return null;
    const size = parseInt(data.subarray(at, lineEnd).toString("latin1"), 16);
    if (size === 0) return Buffer.concat(chunks); // no trailers from the servers tested here
    if (data.length < lineEnd + 2 + size + 2) return null;
    chunks.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}

// A request of a session, counted in flight until answered (an upgrade waits for them).
function sessionRequest(cmd, tag, method) {
  const session = sessions.get(cmd.name);
  const pending = httpRequest(cmd, tag, method);
  if (session !== undefined) {
    session.inflight.add(pending);
    pending.finally(() => session.inflight.delete(pending));
  }
  return pending;
}

// --- the Engine.IO client -------------------------------------------------------------------------

async function open(cmd) {
  const session = {
    url: cmd.url,
    sid: null,
    connection: cmd.connection,
    stack: cmd.stack,
    openedAt: performance.now(),
    inflight: new Set(),
    ws: null,
  };
  sessions.set(cmd.name, session);
  const answer = await httpRequest({ ...cmd, sid: "" }, cmd.tag, "GET");
  if (answer.status === 200 && answer.body.startsWith("0")) {
    session.sid = JSON.parse(answer.body.slice(1)).sid;
  }
}

async function heartbeat(cmd) {
  const session = sessions.get(cmd.name);
  const pings = [];
  const received = [];
  let round = 0;
  const done = (ok) => print({ ev: "heartbeat", tag: cmd.tag, pings, received, ok });
  while (pings.length < cmd.pings) {
    const poll = await sessionRequest(cmd, `${cmd.tag}.${++round}`, "GET");
    if (poll.status !== 200) return done(false);
    for (const packet of poll.body.split(SEPARATOR)) {
      received.push(packet);
      if (packet === "1") return done(false);
      if (packet !== "2") continue;
      pings.push(sinceOpen(session));
      const pong = await sessionRequest({ ...cmd, packets: ["3"] }, `${cmd.tag}.${++round}`,
                                        "POST");
      if (pong.status !== 200 || pong.body !== "ok") return done(false);
    }
  }
  return done(true);
}

async function upgrade(cmd) {
  const session = sessions.get(cmd.name);
  const url = requestUrl(cmd, session, "websocket");
  url.protocol = "ws:";
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  session.ws = ws;
  let upgraded = false;
  const early = []; // frames before "5"
  let wake = null;
  const waitFrame = () => new Promise((resolve) => {
    if (early.length) resolve(early.shift());
    else wake = resolve;
  });
  const onFrame = (data) => {
    if (typeof data === "string") {
      print({ ev: "frame", name: cmd.name, data });
      if (data === "2") ws.send("3");
    } else {
      print({ ev: "frame", name: cmd.name, hex: Buffer.from(data).toString("hex") });
    }
  };
  ws.addEventListener("message", ({ data }) => {
    if (upgraded) {
      onFrame(data);
    } else if (wake !== null) {
      const resolve = wake;
      wake = null;
      resolve(data);
    } else {
      early.push(data);
    }
  });
  ws.addEventListener("close", ({ code }) => {
    print({ ev: "ws_close", name: cmd.name, code });
    if (wake !== null) wake(null);
  });
  await new Promise((resolve) => {
    ws.addEventListener("open", resolve);
    ws.addEventListener("close", resolve);
  });
  if (ws.readyState !== WebSocket.OPEN) {
    return print({ ev: "upgraded", tag: cmd.tag, error: "websocket closed before it opened" });
  }
  ws.send("2probe");
  const probe = await waitFrame();
  if (probe === null) {
    return print({ ev: "upgraded", tag: cmd.tag, error: "websocket closed during the probe" });
  }
  // like engine.io-client: polling pauses, the poll in flight ends (the server sends it a "6")
  await Promise.allSettled([...session.inflight]);
  upgraded = true;
  ws.send("5");
  print({ ev: "upgraded", tag: cmd.tag, probe, ms: sinceOpen(session) });
  for (const data of early.splice(0)) onFrame(data);
}

function wsSend(cmd) {
  sessions.get(cmd.name).ws.send(cmd.data);
  print({ ev: "ws_sent", tag: cmd.tag });
}

// an async command's failure is printed like a synchronous one's (commands.js)
function run(fn) {
  return (cmd) => fn(cmd).catch((err) => {
    print({ ev: "error", tag: cmd.tag, message: String(err && err.stack ? err.stack : err) });
  });
}

serveCommands({
  open: run(open),
  get: run((cmd) => sessionRequest(cmd, cmd.tag, "GET")),
  post: run((cmd) => sessionRequest(cmd, cmd.tag, "POST")),
  heartbeat: run(heartbeat),
  upgrade: run(upgrade),
  ws_send: wsSend,
});
