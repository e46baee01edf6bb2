// The notification service's page in headless Chromium: users sign in with the dev
// login, send each other messages through the typed client, receive notifications and
// broadcasts sent through the HTTP API, see a refused message's error code, get what
// arrived while their page was closed when they open it again, are replaced by a second
// connection (one per user) and kicked by an admin.
//
// Run by `cargo xtask test notify`, which builds the package and the page and starts
// the service; it passes RELAYWIRE_APP (the service's URL) and RELAYWIRE_SERVICE_KEY.
import { chromium } from "playwright-core";
import { CHROMIUM_FLAGS, CHROMIUM_PATH } from "./chromium.mjs";

const app = required("RELAYWIRE_APP");
const serviceKey = required("RELAYWIRE_SERVICE_KEY");

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this with \`cargo xtask test notify\``);
  return value;
}

let stepCount = 0;
function step(name) {
  stepCount += 1;
  console.log(`  ${stepCount}. ${name}`);
}

async function api(method, path, body) {
  const response = await fetch(`${app}${path}`, {
    method,
    headers: { authorization: `Bearer ${serviceKey}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json().catch(() => null);
  return { status: response.status, json };
}

async function until(condition, what) {
  for (let i = 0; i < 50; i += 1) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function check(condition, what) {
  if (!condition) throw new Error(`expected ${what}`);
}

const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_FLAGS });
const errors = [];

async function signIn(user, context) {
  const page = await (context ?? (await browser.newContext())).newPage();
  page.on("pageerror", (error) => errors.push(`${user}: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") console.error(`  [${user}] ${message.text()}`);
  });
  await page.goto(app);
  await page.getByTestId("login-name").fill(user);
  await page.getByTestId("login-submit").click();
  await status(page, "open");
  return page;
}

async function status(page, wanted) {
  try {
    await page.waitForSelector(`[data-testid="status"][data-status="${wanted}"]`, { timeout: 10000 });
  } catch (error) {
    const shown = await page.getByTestId("status").textContent();
    throw new Error(`the page shows "${shown}", not ${wanted}`, { cause: error });
  }
}

function inbox(page, kind) {
  return page.$$eval(`[data-testid="${kind}"]`, (items) =>
    items.map((item) => ({ text: item.textContent, seq: Number(item.dataset.seq) })),
  );
}

async function waitForInbox(page, kind, count) {
  await page.waitForFunction(
    ([kind, count]) => document.querySelectorAll(`[data-testid="${kind}"]`).length >= count,
    [kind, count],
    { timeout: 10000 },
  );
  return inbox(page, kind);
}

async function send(page, to, text) {
  await page.getByTestId("send-to").fill(to);
  await page.getByTestId("send-text").fill(text);
  await page.getByTestId("send-submit").click();
  await page.waitForSelector('[data-testid="send-result"][data-result]', { timeout: 10000 });
  const result = await page.getByTestId("send-result").getAttribute("data-result");
  await page.$eval('[data-testid="send-result"]', (output) => delete output.dataset.result);
  return result;
}

let failed = false;
try {
  step("alice and bob sign in and connect with the session cookie");
  const alice = await signIn("alice");
  const bobContext = await browser.newContext();
  let bob = await signIn("bob", bobContext);

  step("alice sends bob a message through the typed client; it arrives numbered");
  check((await send(alice, "bob", "hello bob")) === "sent", "an acknowledged send");
  const [first] = await waitForInbox(bob, "message", 1);
  check(first.text === "alice [chat]: hello bob", `alice's message, got ${first.text}`);
  check(first.seq >= 1, "a numbered message");

  step("a message to nobody is refused with its code, and nothing arrives");
  check((await send(alice, "", "to nobody")) === "VALIDATION_ERROR", "VALIDATION_ERROR");

  step("a notification and a broadcast through the HTTP API reach the page");
  const notified = await api("POST", "/websocket/notification", {
    userId: "bob",
    title: "New Message",
    body: "You have a new message",
  });
  check(notified.status === 200 && notified.json.online === 1, `a delivered notification: ${JSON.stringify(notified)}`);
  const [notification] = await waitForInbox(bob, "notification", 1);
  check(notification.text === "New Message: You have a new message", notification.text);
  check(notification.seq > first.seq, "numbered after the message");
  const broadcast = await api("POST", "/websocket/message/broadcast", { type: "news", data: { text: "release" } });
  check(broadcast.json.recipients === 2, `a broadcast to both: ${JSON.stringify(broadcast)}`);
  for (const page of [alice, bob]) {
    const messages = await waitForInbox(page, "message", page === bob ? 2 : 1);
    check(messages.at(-1).text === "service [news]: release", messages.at(-1).text);
  }
  check((await inbox(bob, "message")).length === 2, "the refused message never arrived");
  const system = await api("POST", "/api/messages/broadcast", {
    message: { type: "system", payload: { message: "Maintenance at noon", level: "warning" } },
  });
  check(system.status === 200, `a system message: ${JSON.stringify(system)}`);
  await bob.waitForSelector('[data-testid="system"][data-level="warning"]', { timeout: 10000 });

  step("bob closes his page; what arrives meanwhile is there when he opens it again");
  await bob.close();
  await until(async () => (await api("GET", "/websocket/users/bob/status")).json.online === false, "bob offline");
  check((await send(alice, "bob", "while you were away")) === "sent", "a send to an offline user");
  bob = await signIn("bob", bobContext);
  const [missed] = await waitForInbox(bob, "message", 1);
  check(missed.text === "alice [chat]: while you were away", `the missed message, got ${missed.text}`);
  check(missed.seq > notification.seq, "numbered after what the page kept");
  await bob.waitForTimeout(500);
  check((await inbox(bob, "message")).length === 1, "nothing the page already showed, again");

  step("one connection per user: bob's second window replaces the first (4003)");
  const bobAgain = await signIn("bob", bobContext);
  await bob.waitForSelector('[data-testid="status"][data-close-code="4003"]', { timeout: 10000 });
  const connected = await api("GET", "/websocket/users/bob/status");
  check(connected.json.connections === 1, `one connection: ${JSON.stringify(connected.json)}`);

  step("an admin disconnects bob (4008) and his page stays closed");
  const kicked = await api("DELETE", "/websocket/users/bob/disconnect");
  check(kicked.status === 200, `a disconnect: ${JSON.stringify(kicked)}`);
  await bobAgain.waitForSelector('[data-testid="status"][data-close-code="4008"]', { timeout: 10000 });
  await bobAgain.waitForTimeout(1500);
  const shown = await bobAgain.getByTestId("status").getAttribute("data-status");
  check(shown !== "open" && shown !== "connecting", `no reconnect after a kick, got ${shown}`);
  const after = await api("GET", "/websocket/users/bob/status");
  check(after.json.online === false, "bob offline");

  check(errors.length === 0, `no page errors: ${errors.join("; ")}`);
  console.log("notify: every step passed");
} catch (error) {
  failed = true;
  console.error(`notify failed at step ${stepCount}:`, error);
  if (errors.length > 0) console.error(`page errors: ${errors.join("; ")}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
