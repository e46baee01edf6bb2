// Browser scenarios for `RelaywireClient`, run by tests/browser.rs in headless
// Chromium against the real reference server. Each throws on the first failed
// expectation.

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function fail(message) {
  throw new Error(message);
}

function check(condition, message) {
  if (!condition) fail(message);
}

function same(actual, expected, message) {
  const a = JSON.stringify(actual);
  const b = JSON.stringify(expected);
  if (a !== b) fail(`${message}: expected ${b}, got ${a}`);
}

async function until(what, probe, timeoutMs = 5000) {
  const started = performance.now();
  for (;;) {
    const value = probe();
    if (value) return value;
    if (performance.now() - started > timeoutMs) fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  fail("expected a rejection");
}

function thrown(f) {
  try {
    f();
  } catch (error) {
    return error;
  }
  fail("expected an exception");
}

// The chat protocol's messages, as relaywire/chat sends them: through the generic API.
const sendChatMessage = (client, chatId, content) =>
  client.request({ type: "chat:message", payload: { chatId, content } });
const markRead = (client, chatId, messageId) =>
  client.request({ type: "chat:read", payload: { chatId, messageId } });
const joinChat = (client, chatId) => client.request({ type: "chat:join", payload: { chatId } });
const leaveChat = (client, chatId) => client.request({ type: "chat:leave", payload: { chatId } });
const setTyping = (client, chatId, isTyping) =>
  client.send({ type: "chat:typing", payload: { chatId, isTyping } });

let unique = 0;
/** A user id no other test uses, so scenarios never see each other's traffic. */
function user(name) {
  unique += 1;
  return `${name}-${Date.now().toString(36)}-${unique}`;
}

const wsUrl = (env) => `${env.server.replace(/^http/, "ws")}/ws`;

async function post(url, body, headers = {}) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "include",
    headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  check(response.ok, `POST ${url} answered ${response.status}`);
  return response.status === 204 ? null : response.json();
}

async function token(env, userId, ttlSecs = 3600) {
  return (await post(`${env.server}/test/token`, { userId, name: userId, ttlSecs })).token;
}

async function admin(env, path) {
  const response = await fetch(`${env.server}${path}`, { headers: { authorization: "Bearer browser-tests-key" } });
  check(response.ok, `GET ${path} answered ${response.status}`);
  return response.json();
}

async function counter(env, line) {
  const text = await (await fetch(`${env.server}/metrics`)).text();
  const found = text.split("\n").find((l) => l.startsWith(`${line} `));
  return found ? Number(found.slice(line.length + 1)) : 0;
}

const pongs = (env, paused) => post(`${env.server}/test/pongs`, { paused });
const acks = (env, paused) => post(`${env.server}/test/acks`, { paused });
const supervise = (env, action) => post(`${env.supervisor}/${action}`);

function status(client, wanted, timeoutMs = 5000) {
  return until(`status ${wanted} (now ${client.getSnapshot().status})`, () => {
    const snapshot = client.getSnapshot();
    return snapshot.status === wanted ? snapshot : null;
  }, timeoutMs);
}

/** A client for `userId` with a fixed token, open. */
async function open(env, userId, options = {}) {
  const client = env.createClient({ url: wsUrl(env), auth: { token: await token(env, userId) }, ...options });
  await status(client, "open");
  return client;
}

/** Collects the messages of one type a client receives. */
function collect(client, type) {
  const received = [];
  client.on(type, (payload) => received.push(payload));
  return received;
}

export async function authModes(env) {
  // A fixed token in the first message (the default).
  const ana = user("ana");
  let client = await open(env, ana);
  same(client.getSnapshot().user.id, ana, "token auth");
  client.close();

  // A fixed token in the query string.
  client = env.createClient({ url: wsUrl(env), auth: { token: await token(env, ana) }, tokenTransport: "query" });
  same((await status(client, "open")).user.id, ana, "query auth");
  client.close();

  // A token provider, asked before the connect.
  const asked = [];
  client = env.createClient({
    url: wsUrl(env),
    auth: {
      getToken: async ({ forceRefresh }) => {
        asked.push(forceRefresh);
        return token(env, ana);
      },
    },
  });
  await status(client, "open");
  same(asked, [false], "getToken calls");
  client.close();

  // The HTTP-only cookie the server's dev login sets: nothing to configure.
  const cookieUser = user("cookie");
  await post(`${env.server}/auth/dev-login`, { userId: cookieUser });
  client = env.createClient({ url: wsUrl(env) });
  same((await status(client, "open")).user.id, cookieUser, "cookie auth");
  client.close();

  // Extra query parameters reach the server (a request id, as the useSocket hook sends).
  client = env.createClient({ url: wsUrl(env), auth: { token: await token(env, ana) }, params: () => ({ requestId: "r-1" }) });
  await status(client, "open");
  client.close();
}

export async function authFailureIsFinal(env) {
  const before = await counter(env, 'relaywire_auth_failures_total{reason="invalid"}');
  const client = env.createClient({ url: wsUrl(env), auth: { token: "not-a-token" } });
  const snapshot = await status(client, "unauthorized");
  same(snapshot.lastError, { code: "AUTH_FAILED", closeCode: 4001 }, "last error");
  await sleep(1500);
  same(client.getSnapshot().status, "unauthorized", "still unauthorized");
  const after = await counter(env, 'relaywire_auth_failures_total{reason="invalid"}');
  same(after - before, 1, "connection attempts with the bad token");
  // Sending now fails at once instead of queueing forever.
  same(thrown(() => client.send({ type: "chat:join", payload: { chatId: "general" } })).code, "CONNECTION_FAILED", "send after giving up");
  client.close();
}

export async function expiredTokenIsRefreshedOnce(env) {
  const bea = user("bea");
  const asked = [];
  let client = env.createClient({
    url: wsUrl(env),
    auth: {
      getToken: async ({ forceRefresh }) => {
        asked.push(forceRefresh);
        return token(env, bea, forceRefresh ? 3600 : -60);
      },
    },
  });
  await status(client, "open");
  same(asked, [false, true], "an expired token is refreshed once, forced");
  client.close();

  // A refresh that fails too ends in unauthorized: two attempts, no storm.
  asked.length = 0;
  client = env.createClient({
    url: wsUrl(env),
    auth: {
      getToken: async ({ forceRefresh }) => {
        asked.push(forceRefresh);
        return token(env, bea, -60);
      },
    },
  });
  const snapshot = await status(client, "unauthorized");
  same(snapshot.lastError.closeCode, 4002, "close code");
  await sleep(1000);
  same(asked, [false, true], "getToken calls");
  client.close();

  // No session at all (getToken resolves null): unauthorized without connecting.
  client = env.createClient({ url: wsUrl(env), auth: { getToken: () => null } });
  await status(client, "unauthorized");
  client.close();
}

export async function twoClientsChat(env) {
  const [aliceId, bobId] = [user("alice"), user("bob")];
  const alice = await open(env, aliceId);
  const bob = await open(env, bobId);
  await joinChat(alice, "random");
  await joinChat(bob, "random");
  check(alice.getSnapshot().rooms.includes("random"), "the join shows in the snapshot");
  await until("presence", () => alice.getSnapshot().onlineUserIds.includes(bobId));

  const aliceGot = collect(alice, "chat:message");
  const receipts = collect(alice, "chat:read");
  const typing = collect(bob, "chat:typing");

  const ack = await sendChatMessage(bob, "random", "Hello, Alice!");
  check(typeof ack.messageId === "string", "the ack carries the stored id");
  const message = await until("alice receives it", () => aliceGot.find((m) => m.message.id === ack.messageId));
  same([message.chatId, message.message.senderId, message.message.content], ["random", bobId, "Hello, Alice!"], "delivered message");

  await markRead(bob, "random", ack.messageId);
  const receipt = await until("the receipt", () => receipts.find((r) => r.userId === bobId));
  same(receipt.messageId, ack.messageId, "receipt");

  // Typing: one call, and the stop follows by itself after the typing timeout.
  const started = performance.now();
  setTyping(alice, "random", true);
  await until("typing starts", () => typing.find((t) => t.userId === aliceId && t.isTyping));
  await until("typing stops by itself", () => typing.find((t) => t.userId === aliceId && !t.isTyping), 6000);
  const lasted = performance.now() - started;
  check(lasted >= 2500, `typing stopped after ${lasted} ms, before the 3000 ms timeout`);

  // Presence: Bob leaves, Alice sees it.
  const presence = collect(alice, "user:online");
  bob.close();
  await until("bob goes offline", () => presence.find((p) => p.userId === bobId && !p.online));
  await until("the snapshot follows", () => !alice.getSnapshot().onlineUserIds.includes(bobId));
  alice.close();
}

export async function reconnectsAfterRestartAndFlushesInOrder(env) {
  const [writerId, readerId] = [user("writer"), user("reader")];
  const retry = { reconnect: { initialDelayMs: 200, maxDelayMs: 5000, factor: 2, jitter: 0 } };
  const writer = await open(env, writerId, retry);
  const reader = await open(env, readerId, retry);
  await joinChat(writer, "random");
  await joinChat(reader, "random");
  const readerGot = collect(reader, "chat:message");

  // Record each wait the writer announces while reconnecting.
  // The wait each attempt announced, as first seen.
  const waits = new Map();
  writer.subscribe(() => {
    const snapshot = writer.getSnapshot();
    if (snapshot.nextRetryAt !== null && !waits.has(snapshot.attempt)) {
      waits.set(snapshot.attempt, snapshot.nextRetryAt - Date.now());
    }
  });

  await supervise(env, "kill");
  await status(writer, "reconnecting");
  const sends = ["one", "two", "three"].map((text) => sendChatMessage(writer, "random", text));
  same(writer.getSnapshot().pending, 3, "messages wait while disconnected");
  await until("three failed attempts", () => writer.getSnapshot().attempt >= 4, 8000);
  await supervise(env, "start");
  await status(writer, "open", 10000);
  const acks = await Promise.all(sends);
  same(writer.getSnapshot().pending, 0, "nothing waits after the flush");

  const attempts = [...waits.entries()].sort((a, b) => a[0] - b[0]);
  check(attempts.length >= 3, `saw retries ${JSON.stringify(attempts)}`);
  for (let i = 1; i < attempts.length; i += 1) {
    check(attempts[i][1] > attempts[i - 1][1], `delays grow: ${JSON.stringify(attempts)}`);
  }

  await status(reader, "open", 10000);
  const ids = acks.map((ack) => ack.messageId);
  const history = await admin(env, `/api/chats/random/messages?limit=200`);
  const stored = history.messages.filter((m) => ids.includes(m.id)).map((m) => m.content);
  same(stored, ["one", "two", "three"], "stored in the order sent");
  // The reader missed nothing: what it did not get live it was sent on reconnecting.
  await until("the reader has all three", () => readerGot.filter((m) => ids.includes(m.message.id)).length >= 3);
  const live = readerGot.filter((m) => ids.includes(m.message.id)).map((m) => m.message.content);
  same(live, ["one", "two", "three"], "delivered once each, in order");
  writer.close();
  reader.close();
}

export async function deadConnectionIsDetected(env) {
  // The test server announces a 1000 ms heartbeat; it wins over the client's option.
  const client = await open(env, user("pinger"), { heartbeat: { intervalMs: 60000, timeoutMs: 1000 } });
  try {
    await pongs(env, true);
    const started = performance.now();
    await until("the dead connection is noticed", () => client.getSnapshot().status !== "open", 4000);
    const took = performance.now() - started;
    check(took <= 2000 + 600, `noticed after ${took} ms, more than interval + timeout`);
  } finally {
    await pongs(env, false);
  }
  await status(client, "open", 5000);
  client.close();
}

export async function requestsSettle(env) {
  const client = await open(env, user("requester"));
  const ack = await client.request({ type: "chat:join", payload: { chatId: "random" } });
  check(typeof ack.id === "string", "an ack echoes the request id");

  const notParticipant = await rejection(sendChatMessage(client, "design", "let me in"));
  same([notParticipant.name, notParticipant.code], ["RelaywireError", "NOT_PARTICIPANT"], "server error");
  check(notParticipant.message.includes("design"), `message: ${notParticipant.message}`);

  const tooLarge = await rejection(sendChatMessage(client, "random", "x".repeat(20000)));
  same(tooLarge.code, "MESSAGE_TOO_LARGE", "checked before sending");
  same(thrown(() => client.send({ type: "chat:delete", payload: {} })).code, "INVALID_MESSAGE", "unknown type");
  same(thrown(() => client.send({ type: "chat:join", payload: "general" })).code, "VALIDATION_ERROR", "payload");
  same(thrown(() => client.send("hello")).code, "INVALID_MESSAGE", "not an object");

  // An ephemeral message gets no answer, so it cannot be a request.
  same((await rejection(client.request({ type: "ping", payload: {} }))).code, "INVALID_MESSAGE", "ephemeral");
  try {
    await acks(env, true);
    const timedOut = await rejection(client.request({ type: "chat:join", payload: { chatId: "random" } }, { timeoutMs: 300 }));
    same(timedOut.code, "TIMEOUT", "no reply");
  } finally {
    await acks(env, false);
  }
  client.close();
  const closed = await rejection(client.request({ type: "chat:join", payload: { chatId: "random" } }));
  same(closed.code, "CLIENT_CLOSED", "after close");
}

export async function fullQueueRefuses(env) {
  const client = env.createClient({
    url: "ws://127.0.0.1:9/ws",
    queueSize: 2,
    reconnect: { initialDelayMs: 60000, maxDelayMs: 60000 },
  });
  await status(client, "reconnecting");
  const first = sendChatMessage(client, "general", "1");
  client.send({ type: "chat:join", payload: { chatId: "random" } });
  const full = thrown(() => client.send({ type: "chat:join", payload: { chatId: "general" } }));
  same([full.name, full.code], ["RelaywireError", "QUEUE_FULL"], "third message");
  same(client.getSnapshot().pending, 2, "two wait");
  same((await rejection(sendChatMessage(client, "general", "3"))).code, "QUEUE_FULL", "request");
  client.close();
  same((await rejection(first)).code, "CLIENT_CLOSED", "waiting requests settle on close");
  same(client.getSnapshot().pending, 0, "nothing waits after close");
}

/** Counts the sockets, timers and page listeners the code under test creates. */
function instrument() {
  const sockets = [];
  const timers = new Set();
  const listeners = new Map();
  const original = {
    WebSocket: globalThis.WebSocket,
    setTimeout: globalThis.setTimeout,
    clearTimeout: globalThis.clearTimeout,
    add: globalThis.addEventListener,
    remove: globalThis.removeEventListener,
    docAdd: document.addEventListener,
    docRemove: document.removeEventListener,
  };
  globalThis.WebSocket = class extends original.WebSocket {
    constructor(...args) {
      super(...args);
      sockets.push(this);
    }
  };
  globalThis.setTimeout = (handler, ms, ...rest) => {
    const id = original.setTimeout.call(globalThis, (...a) => {
      timers.delete(id);
      handler(...a);
    }, ms, ...rest);
    timers.add(id);
    return id;
  };
  globalThis.clearTimeout = (id) => {
    timers.delete(id);
    original.clearTimeout.call(globalThis, id);
  };
  const track = (target, add, remove) => {
    target.addEventListener = function (type, handler, ...rest) {
      listeners.set(type, (listeners.get(type) ?? 0) + 1);
      return add.call(this, type, handler, ...rest);
    };
    target.removeEventListener = function (type, handler, ...rest) {
      listeners.set(type, (listeners.get(type) ?? 0) - 1);
      return remove.call(this, type, handler, ...rest);
    };
  };
  track(globalThis, original.add, original.remove);
  track(document, original.docAdd, original.docRemove);
  return {
    sockets,
    timers,
    listeners,
    restore() {
      globalThis.WebSocket = original.WebSocket;
      globalThis.setTimeout = original.setTimeout;
      globalThis.clearTimeout = original.clearTimeout;
      globalThis.addEventListener = original.add;
      globalThis.removeEventListener = original.remove;
      document.addEventListener = original.docAdd;
      document.removeEventListener = original.docRemove;
    },
  };
}

export async function closeLeavesNothing(env) {
  const strictId = user("strict");
  const probe = instrument();
  let last;
  try {
    // What React StrictMode does, many times over: create, close, create.
    for (let i = 0; i < 20; i += 1) {
      const client = env.createClient({ url: wsUrl(env), auth: { token: await token(env, strictId) } });
      if (i % 2 === 0) await sleep(5);
      client.close();
    }
    last = await open(env, strictId);
    const live = probe.sockets.filter((s) => s.readyState === WebSocket.OPEN || s.readyState === WebSocket.CONNECTING);
    same(live.length, 1, "sockets open at once");
    await sleep(300);
    same((await admin(env, `/api/users/${strictId}/status`)).connections, 1, "connections the server sees");

    const before = await counter(env, "relaywire_connections_total");
    last.close();
    await sleep(50);
    check(probe.sockets.every((s) => s.readyState >= WebSocket.CLOSING), "every socket is closing or closed");
    same(probe.timers.size, 0, "timers left");
    for (const [type, count] of probe.listeners) same(count, 0, `${type} listeners left`);
    same(last.getSnapshot().status, "closed", "status");
    // Page events after close reach nothing.
    window.dispatchEvent(new Event("online"));
    document.dispatchEvent(new Event("visibilitychange"));
    await sleep(1500);
    same(await counter(env, "relaywire_connections_total"), before, "no connection after close");
    same((await admin(env, `/api/users/${strictId}/status`)).connections, 0, "the server saw it go");
  } finally {
    probe.restore();
  }
}

export async function snapshotIsStable(env) {
  const client = await open(env, user("snap"));
  let notified = 0;
  const unsubscribe = client.subscribe(() => {
    notified += 1;
  });
  const first = client.getSnapshot();
  check(first === client.getSnapshot(), "the same object while nothing changes");
  check(Object.isFrozen(first) && Object.isFrozen(first.rooms), "frozen");
  await sleep(200);
  check(first === client.getSnapshot(), "still the same after idle time");
  same(notified, 0, "no notification without a change");
  await joinChat(client, "random");
  const second = client.getSnapshot();
  check(second !== first, "a new object after a change");
  check(notified > 0, "listeners were told");
  check(second.rooms.includes("random") && !first.rooms.includes("random"), "old snapshots do not change");
  unsubscribe();
  const count = notified;
  await leaveChat(client, "random");
  same(notified, count, "an unsubscribed listener is not called");
  client.close();
}

export async function offlinePausesAndOnlineRetries(env) {
  const client = await open(env, user("roamer"), { reconnect: { initialDelayMs: 30000, maxDelayMs: 30000, jitter: 0 } });
  await supervise(env, "kill");
  await status(client, "reconnecting");
  window.dispatchEvent(new Event("offline"));
  await status(client, "offline");
  same(client.getSnapshot().nextRetryAt, null, "no retry is scheduled while offline");
  await supervise(env, "start");
  // The backoff says 30 s; going online retries at once.
  window.dispatchEvent(new Event("online"));
  await status(client, "open", 5000);
  client.close();
}

export async function unknownTypesReachTheUnknownHandler(env) {
  const id = user("future");
  const client = await open(env, id);
  const unknown = [];
  const any = [];
  client.onUnknown((message) => unknown.push(message));
  client.onAny((message) => any.push(message.type));
  await post(`${env.server}/test/raw`, { userId: id, frame: { type: "poll:created", payload: { question: "Lunch?" } } });
  await post(`${env.server}/test/raw`, { userId: id, frame: { type: "system", payload: { message: "hi", level: "info" } } });
  await until("the known message", () => any.includes("system"));
  same(unknown.map((m) => [m.type, m.payload.question]), [["poll:created", "Lunch?"]], "unknown messages");
  same(client.getSnapshot().status, "open", "nothing broke");
  client.close();
}

export async function missedMessagesAreReplayedOnce(env) {
  const [writerId, readerId] = [user("writer"), user("reader")];
  const writer = await open(env, writerId, { reconnect: { initialDelayMs: 100, maxDelayMs: 200, jitter: 0 } });
  const reader = await open(env, readerId, { reconnect: { initialDelayMs: 3000, maxDelayMs: 3000, jitter: 0 } });
  await joinChat(writer, "random");
  await joinChat(reader, "random");
  const got = collect(reader, "chat:message");
  await sendChatMessage(writer, "random", "before");
  await until("the first message", () => got.length === 1);

  await supervise(env, "kill");
  await status(reader, "reconnecting");
  await supervise(env, "start");
  await status(writer, "open", 5000);
  check(reader.getSnapshot().status !== "open", "the reader is still away");
  for (const text of ["while away 1", "while away 2", "while away 3"]) {
    await sendChatMessage(writer, "random", text);
  }
  // The reader comes back later and is sent what it missed, before anything new.
  await status(reader, "open", 8000);
  await until("the missed messages", () => got.length >= 4);
  await sendChatMessage(writer, "random", "after");
  await until("the live message", () => got.length >= 5);
  await sleep(300);
  same(
    got.map((m) => m.message.content),
    ["before", "while away 1", "while away 2", "while away 3", "after"],
    "each message once, in order",
  );
  writer.close();
  reader.close();
}

export async function aKeptSeqResumesANewClient(env) {
  const [writerId, readerId] = [user("writer"), user("reader")];
  const writer = await open(env, writerId);
  const reader = await open(env, readerId);
  await joinChat(writer, "random");
  await joinChat(reader, "random");
  const got = collect(reader, "chat:message");
  await sendChatMessage(writer, "random", "kept");
  await until("the first message", () => got.length === 1);
  // The page keeps the last seq it handled (localStorage, say) and goes away.
  const kept = got[0].seq;
  check(Number.isInteger(kept), "a numbered message");
  reader.close();
  for (const text of ["while closed 1", "while closed 2"]) {
    await sendChatMessage(writer, "random", text);
  }
  // A new client, as after a page load, resumes after what was kept; its handler is
  // registered before it connects, as a page's would be.
  const again = env.createClient({ url: wsUrl(env), auth: { token: await token(env, readerId) }, resumeFrom: kept });
  const replayed = collect(again, "chat:message");
  await status(again, "open");
  await until("the replay", () => replayed.length >= 2);
  await sleep(300);
  same(
    replayed.map((m) => m.message.content),
    ["while closed 1", "while closed 2"],
    "what came after the kept seq, once",
  );
  for (const bad of [-1, 1.5, "7", Number.MAX_SAFE_INTEGER + 2]) {
    const error = thrown(() => env.createClient({ url: wsUrl(env), resumeFrom: bad }));
    same(error.code, "INVALID_OPTIONS", `resumeFrom ${bad}`);
  }
  writer.close();
  again.close();
}
