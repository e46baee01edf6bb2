// The React example app, end to end: two browser contexts as Alice and Bob on the
// real server, chatting, typing, reading, seeing each other online; then the server is
// killed mid-conversation and restarted, and both windows recover with nothing lost.
//
// Run by `cargo xtask test e2e`, which builds the package and the app and starts the
// server; it passes RELAYWIRE_APP (the server's URL), RELAYWIRE_SUPERVISOR (kills and
// restarts it), RELAYWIRE_SERVICE_KEY and RELAYWIRE_SCREENSHOTS (a folder).
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM_FLAGS, CHROMIUM_PATH } from "./chromium.mjs";

const app = required("RELAYWIRE_APP");
const supervisor = required("RELAYWIRE_SUPERVISOR");
const serviceKey = required("RELAYWIRE_SERVICE_KEY");
const screenshots = required("RELAYWIRE_SCREENSHOTS");
mkdirSync(screenshots, { recursive: true });

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this with \`cargo xtask test e2e\``);
  return value;
}

const steps = [];
function step(name) {
  steps.push(name);
  console.log(`  ${steps.length}. ${name}`);
}

async function admin(method, path, body) {
  const response = await fetch(`${app}${path}`, {
    method,
    headers: { authorization: `Bearer ${serviceKey}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}`);
  return response.json();
}

async function supervise(action) {
  const response = await fetch(`${supervisor}/${action}`, { method: "POST" });
  if (!response.ok) throw new Error(`supervisor ${action} answered ${response.status}`);
}

const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_FLAGS });

/** A window signed in as `name`, with its console errors collected. */
async function signIn(name) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(app);
  await page.getByTestId("login-name").fill(name);
  await page.getByTestId("login-submit").click();
  await status(page, "open");
  return { page, errors, name };
}

function status(page, wanted, timeout = 10000) {
  return page.waitForSelector(`[data-testid="connection-status"][data-status="${wanted}"]`, { timeout });
}

function messages(page) {
  return page.$$eval('[data-testid="message"]:not([data-pending])', (items) =>
    items.map((item) => item.querySelector(".content").textContent),
  );
}

async function shoot(window, label) {
  await window.page.screenshot({ path: join(screenshots, `${window.name.toLowerCase()}-${label}.png`) });
}

let failed = false;
try {
  step("Alice and Bob sign in with the server's dev login and connect with the cookie");
  const alice = await signIn("Alice");
  const bob = await signIn("Bob");

  step("both land in #general and see each other online");
  for (const [window, other] of [[alice, "bob"], [bob, "alice"]]) {
    await window.page.waitForSelector(`[data-testid="chat-item"][data-chat-id="general"].active`);
    await window.page.waitForSelector(`[data-testid="online-user"][data-user-id="${other}"]`);
  }

  step("StrictMode mounts twice, yet each user holds one connection");
  for (const user of ["alice", "bob"]) {
    const { connections } = await admin("GET", `/api/users/${user}/status`);
    if (connections !== 1) throw new Error(`${user} has ${connections} connections`);
  }

  step("Alice types: Bob sees the typing indicator");
  await alice.page.getByTestId("composer-input").fill("Hello Bob!");
  await bob.page.waitForSelector('[data-testid="typing-indicator"]:has-text("Alice is typing")');

  step("Alice sends: Bob receives it and the indicator clears");
  await alice.page.getByTestId("composer-input").press("Enter");
  await bob.page.waitForSelector('[data-testid="message"] .content:has-text("Hello Bob!")');
  await bob.page.waitForFunction(
    () => document.querySelector('[data-testid="typing-indicator"]').textContent === "",
  );

  step("Bob's open chat marks it read: Alice sees the receipt");
  await alice.page.waitForSelector('[data-testid="receipt"]:has-text("Seen by Bob")');

  step("Bob answers");
  await bob.page.getByTestId("composer-input").fill("Hi Alice, all good here.");
  await bob.page.getByTestId("composer-send").click();
  await alice.page.waitForSelector('[data-testid="message"] .content:has-text("all good here")');
  await shoot(alice, "chatting");
  await shoot(bob, "chatting");

  step("a notification from the HTTP API shows as a toast");
  await admin("POST", "/api/notifications", { userId: "bob", title: "Deploy finished", body: "v2.4 is live" });
  await bob.page.waitForSelector('[data-testid="toast"]:has-text("Deploy finished")');

  step("the server is killed mid-conversation: both windows show reconnecting");
  await supervise("kill");
  for (const window of [alice, bob]) {
    await window.page.waitForSelector(
      '[data-testid="connection-status"][data-status="reconnecting"]',
      { timeout: 15000 },
    );
  }
  await shoot(alice, "reconnecting");

  step("Alice writes while the server is down: the message waits");
  await alice.page.getByTestId("composer-input").fill("Sent while the server was down");
  await alice.page.getByTestId("composer-input").press("Enter");
  await alice.page.waitForSelector('[data-pending="true"] .content:has-text("Sent while the server was down")');
  await alice.page.waitForSelector('[data-testid="connection-status"]:has-text("waiting")');

  step("the server comes back: both reconnect and the queued message arrives");
  await supervise("start");
  for (const window of [alice, bob]) await status(window.page, "open", 30000);
  await bob.page.waitForSelector('[data-testid="message"] .content:has-text("Sent while the server was down")', {
    timeout: 15000,
  });
  await alice.page.waitForFunction(() => document.querySelectorAll('[data-pending="true"]').length === 0);

  step("nothing was lost: both windows and the store hold the same conversation in order");
  const expected = ["Hello Bob!", "Hi Alice, all good here.", "Sent while the server was down"];
  const stored = (await admin("GET", "/api/chats/general/messages?limit=200")).messages.map((m) => m.content);
  for (const [label, list] of [["Alice", await messages(alice.page)], ["Bob", await messages(bob.page)], ["the store", stored]]) {
    if (JSON.stringify(list) !== JSON.stringify(expected)) {
      throw new Error(`${label} holds ${JSON.stringify(list)}, expected ${JSON.stringify(expected)}`);
    }
  }
  await shoot(alice, "recovered");
  await shoot(bob, "recovered");

  for (const window of [alice, bob]) {
    if (window.errors.length > 0) throw new Error(`${window.name}'s page threw: ${window.errors.join("; ")}`);
  }
  console.log(`e2e: ${steps.length} steps passed; screenshots in ${screenshots}`);
} catch (error) {
  failed = true;
  console.error(`e2e failed at step ${steps.length}, "${steps.at(-1)}":\n${error.stack ?? error}`);
  for (const context of browser.contexts()) {
    for (const [index, page] of context.pages().entries()) {
      await page.screenshot({ path: join(screenshots, `failure-${browser.contexts().indexOf(context)}-${index}.png`) }).catch(() => {});
    }
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
