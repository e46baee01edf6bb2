// The browser half of `cargo xtask bench`: starts the three servers (the reference
// chat server, a `ws` echo server, a Socket.IO server), serves the page cross-origin
// isolated (so `performance.now()` is fine-grained), and runs every scenario in
// headless Chromium, once per fresh browser launch. Writes every figure as JSON to
// $BENCH_OUT; `relaywire-bench` takes the medians and writes the report.
//
// Environment: RELAYWIRE_SERVER_BIN, RELAYWIRE_PACKAGE (the built package folder),
// BENCH_OUT, and optionally BENCH_RUNS (3), BENCH_MESSAGES (20000), BENCH_PINGS (1000),
// BENCH_RECONNECTS (5 per run), CHROMIUM.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { connect, createServer as createTcpServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { bundle } from "./bundle.mjs";
import { CHROMIUM_FLAGS, CHROMIUM_PATH } from "../../tests/e2e/chromium.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const env = (name, fallback) => process.env[name] || fallback;

/** Chromium as the tests launch it, kept off every host but 127.0.0.1 (no QUIC, no DNS). */
const launchChromium = () =>
  chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [...CHROMIUM_FLAGS, "--disable-quic", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
  });
const required = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run \`cargo xtask bench\``);
  return value;
};

const SERVER_BIN = required("RELAYWIRE_SERVER_BIN");
const PACKAGE = required("RELAYWIRE_PACKAGE");
/** The same package with the wasm's function names kept, for the profiled run. */
const PROFILE_PACKAGE = env("RELAYWIRE_PROFILE_PACKAGE", PACKAGE);
let servedPackage = PACKAGE;
const OUT = required("BENCH_OUT");
const RUNS = Number(env("BENCH_RUNS", "3"));
const MESSAGES = Number(env("BENCH_MESSAGES", "20000"));
const PINGS = Number(env("BENCH_PINGS", "1000"));
const RECONNECTS = Number(env("BENCH_RECONNECTS", "5"));
const QUEUED = 10;
const DOWN_MS = 1000;
const SECRET = "bench-secret-0123456789abcdef";
const SERVICE_KEY = "bench-service-key";
/** The same backoff for both reconnecting clients. */
const BACKOFF = { initialDelayMs: 250, maxDelayMs: 2000, factor: 2, jitter: 0.5 };
/** A scenario that takes longer than this has failed. */
const SCENARIO_TIMEOUT_MS = 120_000;

const log = (line) => console.error(`bench: ${line}`);

/** Where a profiled function's self time is charged. */
function category({ functionName: name, url }) {
  if (name === "(root)" || name === "(idle)") return null;
  if (name === "(garbage collector)") return "garbage collection";
  if (name === "(program)") return "browser work outside JS (events, WebSocket frames)";
  if (url.startsWith("wasm://") || url.endsWith(".wasm") || name.startsWith("$")) return "Relaywire wasm";
  if (url.includes("/relaywire/relaywire_client.js")) return "Relaywire JS glue (wasm-bindgen)";
  if (url.includes("/relaywire/")) return "Relaywire package JS";
  if (url.includes("/vendor/socket.io-client")) return "socket.io-client";
  if (url.includes("/page/bench.js")) return "benchmark page: send loop and handlers";
  if (url === "") return `built-in \`${name || "(anonymous)"}\``;
  return "other";
}

/** Self time in ms by category, from a DevTools CPU profile. */
function selfTimes(profile) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const totals = new Map();
  profile.samples.forEach((id, i) => {
    const key = category(byId.get(id).callFrame);
    if (key) totals.set(key, (totals.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  });
  return [...totals.entries()].map(([category, ms]) => ({ category, ms })).sort((a, b) => b.ms - a.ms);
}

/** The functions of the client with the most self time, in ms. */
function hottest(profile, count) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const totals = new Map();
  profile.samples.forEach((id, i) => {
    const frame = byId.get(id).callFrame;
    const where = category(frame);
    if (where?.startsWith("Relaywire")) {
      const file = frame.url.split("/").pop();
      const name = frame.functionName || `(anonymous) ${file}:${frame.lineNumber + 1}`;
      totals.set(name, (totals.get(name) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
    }
  });
  return [...totals.entries()].map(([name, ms]) => ({ name, ms })).sort((a, b) => b.ms - a.ms).slice(0, count);
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createTcpServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

function accepts(port) {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** A server as a child process that can be killed outright and started again. */
class Child {
  constructor(name, command, args, environment, port) {
    Object.assign(this, { name, command, args, environment, port, process: null });
  }

  /** Starts it; resolves with the epoch ms at which its port first accepted. */
  async start() {
    this.process = spawn(this.command, this.args, {
      env: { PATH: process.env.PATH, ...this.environment },
      stdio: ["pipe", "ignore", "inherit"],
    });
    const started = Date.now();
    while (Date.now() - started < 20_000) {
      if (this.process.exitCode !== null) throw new Error(`${this.name} exited with ${this.process.exitCode}`);
      if (await accepts(this.port)) return Date.now();
      await sleep(2);
    }
    throw new Error(`${this.name} did not listen on ${this.port}`);
  }

  async kill() {
    const child = this.process;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }
}

const dataDir = mkdtempSync(join(tmpdir(), "relaywire-bench-"));
const [pagePort, echoPort, socketioPort, relaywirePort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
const origin = `http://127.0.0.1:${pagePort}`;
const servers = {
  echo: new Child("the ws echo server", "node", [join(here, "servers/echo.mjs")], { PORT: String(echoPort) }, echoPort),
  socketio: new Child("the Socket.IO server", "node", [join(here, "servers/socketio.mjs")], { PORT: String(socketioPort), JWT_SECRET: SECRET }, socketioPort),
  relaywire: new Child(
    "the reference server",
    SERVER_BIN,
    [],
    {
      JWT_SECRET: SECRET,
      WS_PORT: String(relaywirePort),
      DATA_DIR: dataDir,
      DATABASE_URL: join(dataDir, "chat.db"),
      SERVICE_KEYS: SERVICE_KEY,
      // The defaults protect against abusive clients; a benchmark floods on purpose.
      RATE_LIMIT: "1000000",
      RATE_LIMIT_BURST: "1000000",
      USER_RATE_LIMIT: "1000000",
      USER_RATE_LIMIT_BURST: "1000000",
      OUTBOUND_QUEUE: "65536",
      CORS_ORIGIN: origin,
      TEST_HOOKS: "true",
      LOG_LEVEL: "warn",
      EXIT_ON_STDIN_CLOSE: "true",
    },
    relaywirePort,
  ),
};

/** How many tabs the tabs measurement opens. */
const TABS = 5;

/**
 * Opens TABS pages of one fresh context with a client each (`mode`: sharing one
 * connection, or one each), and once all are open reads how many sockets the server
 * holds for their user and the pages' JS heaps after a collection, summed.
 */
async function measureTabs(browser, mode, { user, token: userToken, url }, errors) {
  const context = await browser.newContext();
  try {
    const pages = [];
    for (let i = 0; i < TABS; i += 1) {
      const page = await context.newPage();
      page.on("pageerror", (error) => errors.push(error.message));
      const query = new URLSearchParams({ mode, url, token: userToken });
      await page.goto(`${origin}/page/tabs.html?${query}`);
      pages.push(page);
    }
    for (const page of pages) await page.waitForFunction(() => window.tab?.status() === "open");
    const status = await fetch(`http://127.0.0.1:${relaywirePort}/api/users/${user}/status`, {
      headers: { authorization: `Bearer ${SERVICE_KEY}` },
    });
    if (!status.ok) throw new Error(`status of ${user}: ${status.status}`);
    const { connections } = await status.json();
    let heapBytes = 0;
    for (const page of pages) {
      const cdp = await context.newCDPSession(page);
      await cdp.send("HeapProfiler.collectGarbage");
      await cdp.send("Performance.enable");
      const { metrics } = await cdp.send("Performance.getMetrics");
      heapBytes += metrics.find((metric) => metric.name === "JSHeapUsedSize").value;
    }
    return { connections, heapBytes };
  } finally {
    await context.close();
  }
}

async function cleanUp() {
  await Promise.all(Object.values(servers).map((server) => server.kill()));
  rmSync(dataDir, { recursive: true, force: true });
}

async function api(path, body, bearer) {
  const response = await fetch(`http://127.0.0.1:${relaywirePort}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

const token = async (userId) => (await api("/test/token", { userId, ttlSecs: 3600 })).token;

try {
  await Promise.all(Object.values(servers).map((server) => server.start()));
  const users = { native: "bench-native", client: "bench-relaywire", socketio: "bench-socketio" };
  for (const user of [users.native, users.client]) {
    await api("/api/chats", { id: `chat-${user}`, title: user, participantIds: [user] }, SERVICE_KEY);
  }
  const config = {
    echo: { url: `ws://127.0.0.1:${echoPort}` },
    relaywire: {
      subprotocol: "relaywire.v2",
      native: { url: `ws://127.0.0.1:${relaywirePort}/ws`, token: await token(users.native), chatId: `chat-${users.native}` },
      client: { url: `ws://127.0.0.1:${relaywirePort}/ws`, token: await token(users.client), chatId: `chat-${users.client}` },
    },
    socketio: { url: `http://127.0.0.1:${socketioPort}`, token: await token(users.socketio), chatId: "chat-bench-socketio" },
    warmup: 2000,
    pingWarmup: 100,
    backoff: BACKOFF,
  };

  // One user per way of holding the tabs' connection, so their sockets are counted apart.
  const tabsConfig = {};
  for (const mode of ["shared", "own"]) {
    const user = `bench-tabs-${mode}`;
    tabsConfig[mode] = { user, token: await token(user), url: `ws://127.0.0.1:${relaywirePort}/ws` };
  }

  const vendor = { "/vendor/socket.io-client.js": await bundle({ entry: "export { io } from 'socket.io-client';" }) };
  const types = { ".js": "text/javascript", ".html": "text/html", ".json": "application/json", ".wasm": "application/wasm" };
  const site = createServer((request, response) => {
    const path = new URL(request.url, origin).pathname;
    const headers = {
      "cross-origin-opener-policy": "same-origin",
      "cross-origin-embedder-policy": "require-corp",
      "cache-control": "no-store",
    };
    const send = (body, type) => response.writeHead(200, { ...headers, "content-type": type }).end(body);
    try {
      if (path === "/" || path === "/index.html") return send(readFileSync(join(here, "page/bench.html")), types[".html"]);
      if (path === "/config") return send(JSON.stringify(config), types[".json"]);
      if (vendor[path]) return send(vendor[path], types[".js"]);
      const [root, rest] = path.startsWith("/relaywire/") ? [servedPackage, path.slice(11)] : path.startsWith("/page/") ? [join(here, "page"), path.slice(6)] : [null, null];
      const file = root && normalize(join(root, rest));
      if (file && file.startsWith(root)) return send(readFileSync(file), types[extname(file)] ?? "application/octet-stream");
    } catch {
      // Falls through to 404.
    }
    response.writeHead(404, headers).end();
  });
  await new Promise((resolve) => site.listen(pagePort, "127.0.0.1", resolve));

  const LIBRARIES = ["native-echo", "native-relaywire-server", "socket.io", "relaywire"];
  const runs = [];
  for (let run = 1; run <= RUNS; run += 1) {
    log(`run ${run} of ${RUNS}: a fresh Chromium`);
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      page.setDefaultTimeout(SCENARIO_TIMEOUT_MS);
      await page.route("**/*", (route) => (new URL(route.request().url()).hostname === "127.0.0.1" ? route.continue() : route.abort()));
      const errors = [];
      page.on("pageerror", (error) => errors.push(error.message));
      await page.goto(origin);
      await page.waitForFunction(() => window.bench?.ready);
      const result = { throughput: {}, latency: {}, reconnect: {} };
      for (const library of LIBRARIES) {
        result.throughput[library] = await page.evaluate(([l, n]) => window.bench.throughput[l](n), [library, MESSAGES]);
        log(`  throughput ${library}: ${Math.round(result.throughput[library].perSecond)} msg/s`);
      }
      for (const library of LIBRARIES) {
        result.latency[library] = await page.evaluate(([l, n]) => window.bench.latency[l](n), [library, PINGS]);
        log(`  latency ${library}: p50 ${result.latency[library].p50.toFixed(3)} ms, p99 ${result.latency[library].p99.toFixed(3)} ms`);
      }
      for (const [library, server] of [["relaywire", servers.relaywire], ["socket.io", servers.socketio]]) {
        const key = library === "socket.io" ? "socketio" : library;
        await page.evaluate((l) => window.bench.reconnect.prepare(l), key);
        const cycles = [];
        for (let cycle = 0; cycle < RECONNECTS; cycle += 1) {
          await server.kill();
          await page.evaluate(([l, n]) => window.bench.reconnect.queue(l, n), [key, QUEUED]);
          await sleep(DOWN_MS);
          const upAt = await server.start();
          const { openAt, ackedAt } = await page.evaluate((l) => window.bench.reconnect.finish(l), key);
          cycles.push({ openMs: openAt - upAt, ackedMs: ackedAt - upAt });
        }
        await page.evaluate((l) => window.bench.reconnect.close(l), key);
        result.reconnect[library] = cycles;
        log(`  reconnect ${library}: acked after ${cycles.map((c) => c.ackedMs).join(", ")} ms`);
      }
      result.tabs = {};
      for (const mode of ["shared", "own"]) {
        result.tabs[mode] = await measureTabs(browser, mode, tabsConfig[mode], errors);
        log(`  ${TABS} tabs, ${mode}: ${result.tabs[mode].connections} sockets, JS heap ${(result.tabs[mode].heapBytes / 1e6).toFixed(1)} MB`);
      }
      if (errors.length > 0) throw new Error(`the page failed: ${errors.join("; ")}`);
      runs.push(result);
    } finally {
      // Playwright gives every launch a fresh profile and removes it.
      await browser.close();
    }
  }
  // One more launch, profiled, for where the time goes; its figures are not reported
  // as speeds (the profiler slows everything down).
  const profiles = {};
  let hottestFunctions = [];
  servedPackage = PROFILE_PACKAGE;
  {
    log("profiling one throughput run per client");
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      page.setDefaultTimeout(SCENARIO_TIMEOUT_MS);
      await page.goto(origin);
      await page.waitForFunction(() => window.bench?.ready);
      const cdp = await page.context().newCDPSession(page);
      await cdp.send("Profiler.enable");
      await cdp.send("Profiler.setSamplingInterval", { interval: 100 });
      for (const library of LIBRARIES) {
        await cdp.send("Profiler.start");
        await page.evaluate(([l, n]) => window.bench.throughput[l](n), [library, MESSAGES]);
        const { profile } = await cdp.send("Profiler.stop");
        profiles[library] = selfTimes(profile);
        if (library === "relaywire") hottestFunctions = hottest(profile, 15);
      }
    } finally {
      await browser.close();
    }
  }
  const versions = {
    chromium: (await (async () => {
      const browser = await launchChromium();
      const version = browser.version();
      await browser.close();
      return version;
    })()),
    node: process.versions.node,
  };
  writeFileSync(
    OUT,
    JSON.stringify({ runs, profiles, hottestFunctions, versions, settings: { messages: MESSAGES, pings: PINGS, reconnects: RECONNECTS, queued: QUEUED, downMs: DOWN_MS, backoff: BACKOFF, warmup: config.warmup, pingWarmup: config.pingWarmup } }),
  );
  site.close();
} finally {
  await cleanUp();
}
process.exit(0);
