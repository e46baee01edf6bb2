// The browser scenarios of `cargo xtask bench`, one function per library so each is
// written as its users would write it. `browser.mjs` calls them through `window.bench`
// and does the server kills and restarts of the reconnect scenario itself.
import { RelaywireClient } from "/relaywire/index.js";
import { chatProtocol, sendChatMessage } from "/relaywire/chat.js";
import { io } from "/vendor/socket.io-client.js";

const config = await (await fetch("/config")).json();
const CONTENT = "hello world 123";

const until = (check, what, ms = 60_000) =>
  new Promise((resolve, reject) => {
    const started = performance.now();
    const poll = () => {
      if (check()) resolve();
      else if (performance.now() - started > ms) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(poll, 1);
    };
    poll();
  });

/** A promise the handlers settle the moment `n` echoes are in; no polling delay. */
function counter() {
  let target = Infinity;
  let resolve = () => {};
  const state = {
    received: 0,
    bad: 0,
    extra: () => true,
    check() {
      if (state.received >= target && state.extra()) resolve(performance.now());
    },
    expect(n) {
      state.received = 0;
      target = n;
      return new Promise((r) => (resolve = r));
    },
  };
  return state;
}

/** Times `n` sends until their echoes are in. */
async function burst(count, n, send) {
  const done = count.expect(n);
  const started = performance.now();
  for (let i = 0; i < n; i += 1) send(i);
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error(`${count.received} of ${n} echoes in 60 s`)), 60_000));
  return (await Promise.race([done, timeout])) - started;
}

function percentile(samples, p) {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}

/**
 * Sequential round trips, timed the same way for every library: `measure` sends ping `i`
 * with `ping(i)` and waits until the library's handler calls `pong` (with the echoed
 * sequence number where the server echoes one).
 */
function roundTrips() {
  let waiting = null;
  return {
    pong(seq) {
      if (waiting && (seq === undefined || seq === waiting.seq)) {
        const done = waiting.resolve;
        waiting = null;
        done();
      }
    },
    async measure(count, ping) {
      const samples = [];
      for (let i = 0; i < config.pingWarmup + count; i += 1) {
        const started = performance.now();
        await new Promise((resolve) => {
          waiting = { seq: i, resolve };
          ping(i);
        });
        if (i >= config.pingWarmup) samples.push(performance.now() - started);
      }
      return { p50: percentile(samples, 50), p99: percentile(samples, 99), samples: samples.length };
    },
  };
}

// --- native WebSocket -------------------------------------------------------------

function openNative(url, protocol) {
  return new Promise((resolve, reject) => {
    const socket = protocol ? new WebSocket(url, [protocol]) : new WebSocket(url);
    socket.onopen = () => resolve(socket);
    socket.onerror = () => reject(new Error(`cannot open ${url}`));
  });
}

/** The native WebSocket against `target` (`echo` or `relaywire`): what a hand-written client does. */
async function nativeConnection(target) {
  if (target === "echo") {
    return { socket: await openNative(config.echo.url), chatId: "echo", message: (i) => ({ type: "chat:message", payload: { chatId: "echo", content: CONTENT, i } }) };
  }
  const { url, token, chatId } = config.relaywire.native;
  const socket = await openNative(`${url}?token=${encodeURIComponent(token)}`, config.relaywire.subprotocol);
  await new Promise((resolve) => {
    socket.onmessage = (event) => {
      if (JSON.parse(event.data).type === "connected") resolve();
    };
  });
  // Ids must be unique across connections: the server drops a repeated id as a resend.
  const prefix = crypto.randomUUID().slice(0, 8);
  let id = 0;
  return { socket, chatId, message: () => ({ type: "chat:message", id: `${prefix}-${(id += 1)}`, payload: { chatId, content: CONTENT } }) };
}

async function nativeThroughput(target, count) {
  const { socket, chatId, message } = await nativeConnection(target);
  const echoes = counter();
  socket.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type !== "chat:message") return;
    const payload = frame.payload;
    if (payload.chatId === chatId && (payload.content === CONTENT || payload.message?.content === CONTENT)) echoes.received += 1;
    else echoes.bad += 1;
    echoes.check();
  };
  const send = (i) => socket.send(JSON.stringify(message(i)));
  await burst(echoes, config.warmup, send);
  const elapsed = await burst(echoes, count, send);
  socket.close();
  return { perSecond: (count / elapsed) * 1000, elapsedMs: elapsed, bad: echoes.bad };
}

async function nativeLatency(target, count) {
  const { socket } = await nativeConnection(target);
  const trips = roundTrips();
  socket.onmessage = (event) => {
    if (JSON.parse(event.data).type === "pong") trips.pong();
  };
  const result = await trips.measure(count, (i) =>
    socket.send(JSON.stringify({ type: "ping", payload: target === "echo" ? { seq: i } : {} })),
  );
  socket.close();
  return result;
}

// --- socket.io-client ---------------------------------------------------------------

function socketio(extra = {}) {
  const { url, token, chatId } = config.socketio;
  const socket = io(url, { transports: ["websocket"], auth: { token, chatIds: [chatId] }, ...extra });
  return { socket, chatId };
}

const connected = (socket) => (socket.connected ? Promise.resolve() : new Promise((resolve) => socket.once("connect", resolve)));

async function socketioThroughput(count) {
  const { socket, chatId } = socketio();
  await connected(socket);
  const echoes = counter();
  socket.on("chat:message", (payload) => {
    if (payload.chatId === chatId && payload.message.content === CONTENT) echoes.received += 1;
    else echoes.bad += 1;
    echoes.check();
  });
  const send = () => socket.emit("chat:message", { chatId, content: CONTENT });
  await burst(echoes, config.warmup, send);
  const elapsed = await burst(echoes, count, send);
  socket.disconnect();
  return { perSecond: (count / elapsed) * 1000, elapsedMs: elapsed, bad: echoes.bad };
}

async function socketioLatency(count) {
  const { socket } = socketio();
  await connected(socket);
  const trips = roundTrips();
  socket.on("pong", (payload) => trips.pong(payload.seq));
  const result = await trips.measure(count, (i) => socket.emit("ping", { seq: i }));
  socket.disconnect();
  return result;
}

// --- Relaywire ------------------------------------------------------------------------

function relaywire(options = {}) {
  const { url, token, chatId } = config.relaywire.client;
  const client = new RelaywireClient({ url, protocol: chatProtocol, auth: { token }, ...options });
  return { client, chatId };
}

const opened = (client) => until(() => client.getSnapshot().status === "open", "the client to open");

async function relaywireThroughput(count) {
  const { client, chatId } = relaywire({ queueSize: count + 1000 });
  await opened(client);
  const echoes = counter();
  // Done when every echo is in and every message acknowledged.
  echoes.extra = () => client.getSnapshot().pending === 0;
  client.subscribe(() => echoes.check());
  client.on("chat:message", (payload) => {
    if (payload.chatId === chatId && payload.message.content === CONTENT) echoes.received += 1;
    else echoes.bad += 1;
    echoes.check();
  });
  const send = () => client.send({ type: "chat:message", payload: { chatId, content: CONTENT } });
  await burst(echoes, config.warmup, send);
  const elapsed = await burst(echoes, count, send);
  client.close();
  return { perSecond: (count / elapsed) * 1000, elapsedMs: elapsed, bad: echoes.bad };
}

async function relaywireLatency(count) {
  const { client } = relaywire();
  await opened(client);
  const trips = roundTrips();
  client.on("pong", () => trips.pong());
  const result = await trips.measure(count, () => client.send({ type: "ping", payload: {} }));
  client.close();
  return result;
}

// --- reconnect: the driver kills the server between `prepare` and `queue`, and starts
// it again before `finish`; times are epoch ms so they compare with the driver's. ------

const reconnecting = {};

const reconnect = {
  async prepare(library) {
    const { initialDelayMs, maxDelayMs, factor, jitter } = config.backoff;
    const state = { openAt: null };
    if (library === "relaywire") {
      const { client, chatId } = relaywire({ reconnect: { initialDelayMs, maxDelayMs, factor, jitter } });
      await opened(client);
      client.subscribe(() => {
        if (client.getSnapshot().status === "open" && state.openAt === null) state.openAt = Date.now();
      });
      Object.assign(state, {
        isOpen: () => client.getSnapshot().status === "open",
        send: (content) => sendChatMessage(client, chatId, content),
        close: () => client.close(),
      });
    } else {
      const { socket, chatId } = socketio({
        reconnectionDelay: initialDelayMs,
        reconnectionDelayMax: maxDelayMs,
        randomizationFactor: jitter,
      });
      await connected(socket);
      socket.on("connect", () => {
        if (state.openAt === null) state.openAt = Date.now();
      });
      Object.assign(state, {
        isOpen: () => socket.connected,
        send: (content) => socket.timeout(30_000).emitWithAck("chat:message", { chatId, content }),
        close: () => socket.disconnect(),
      });
    }
    reconnecting[library] = state;
  },

  /** Once the client has seen the server go, queues messages while it is away. */
  async queue(library, count) {
    const state = reconnecting[library];
    await until(() => !state.isOpen(), "the client to see the server go", 10_000);
    state.openAt = null;
    state.acked = Promise.all(Array.from({ length: count }, (_, i) => state.send(`queued ${i}`))).then(() => Date.now());
  },

  async finish(library) {
    const state = reconnecting[library];
    const ackedAt = await state.acked;
    return { openAt: state.openAt, ackedAt };
  },

  close(library) {
    reconnecting[library]?.close();
  },
};

window.bench = {
  throughput: {
    "native-echo": (n) => nativeThroughput("echo", n),
    "native-relaywire-server": (n) => nativeThroughput("relaywire", n),
    "socket.io": socketioThroughput,
    relaywire: relaywireThroughput,
  },
  latency: {
    "native-echo": (n) => nativeLatency("echo", n),
    "native-relaywire-server": (n) => nativeLatency("relaywire", n),
    "socket.io": socketioLatency,
    relaywire: relaywireLatency,
  },
  reconnect,
  ready: true,
};
