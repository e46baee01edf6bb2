// The chat page written in Rust (examples/web-chat, on relaywire_client::web), end to
// end: Alice and Bob sign in with the dev login, see each other online, type and chat;
// the server is killed mid-conversation and restarted, and both pages recover with
// nothing lost.
//
// Run by `cargo xtask test rust-web`, which builds the page, starts the server and
// passes RELAYWIRE_APP, RELAYWIRE_SUPERVISOR, RELAYWIRE_SERVICE_KEY and
// RELAYWIRE_SCREENSHOTS.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM_FLAGS, CHROMIUM_PATH } from "./chromium.mjs";
import { check, required, step, steps } from "./script.mjs";

const app = required("RELAYWIRE_APP", "rust-web");
const supervisor = required("RELAYWIRE_SUPERVISOR", "rust-web");
const serviceKey = required("RELAYWIRE_SERVICE_KEY", "rust-web");
const screenshots = required("RELAYWIRE_SCREENSHOTS", "rust-web");
mkdirSync(screenshots, { recursive: true });

async function admin(path) {
  const response = await fetch(`${app}${path}`, { headers: { authorization: `Bearer ${serviceKey}` } });
  check(response.ok, `GET ${path} answered ${response.status}`);
  return response.json();
}

async function supervise(action) {
  const response = await fetch(`${supervisor}/${action}`, { method: "POST" });
  check(response.ok, `supervisor ${action} answered ${response.status}`);
}

const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_FLAGS });

function status(page, wanted, timeout = 15000) {
  return page.waitForSelector(`#status[data-status="${wanted}"]`, { timeout });
}

/** A window signed in as `name`, with its page errors collected. */
async function signIn(name) {
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  // What the page logs as an error (the Rust side's failures), but not the 401 the
  // browser logs for `GET /api/me` before signing in.
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) errors.push(message.text());
  });
  await page.goto(app);
  await page.fill("#name", name);
  await page.click("#login button");
  await status(page, "open");
  return { page, errors, name };
}

/** The stored lines a page shows, in order. */
const lines = (page) =>
  page.$$eval("#messages li:not(.pending)", (items) => items.map((item) => item.querySelector("span").textContent));

const shoot = (window, label) =>
  window.page.screenshot({ path: join(screenshots, `rust-${window.name.toLowerCase()}-${label}.png`) });

let failed = false;
try {
  step("Alice and Bob sign in with the dev login; the Rust client connects with the cookie");
  const alice = await signIn("Alice");
  const bob = await signIn("Bob");

  step("each sees the other online");
  await alice.page.waitForSelector('#online:has-text("bob")');
  await bob.page.waitForSelector('#online:has-text("alice")');

  step("Alice types: Bob sees it");
  await alice.page.type("#draft", "Hello Bob, from Rust!");
  await bob.page.waitForSelector('#typing:has-text("Alice is typing")');

  step("Alice sends: Bob receives it, and the indicator clears");
  await alice.page.press("#draft", "Enter");
  await bob.page.waitForSelector('#messages li span:has-text("Hello Bob, from Rust!")');
  await bob.page.waitForFunction(() => document.querySelector("#typing").textContent === "");

  step("Bob answers");
  await bob.page.fill("#draft", "Hi Alice!");
  await bob.page.click("#composer button");
  await alice.page.waitForSelector('#messages li span:has-text("Hi Alice!")');
  await shoot(alice, "chatting");

  step("the server is killed: both pages show reconnecting");
  await supervise("kill");
  for (const window of [alice, bob]) await status(window.page, "reconnecting");

  step("Alice writes while the server is down: the line waits, pending");
  await alice.page.fill("#draft", "Sent while the server was down");
  await alice.page.press("#draft", "Enter");
  await alice.page.waitForSelector('#messages li.pending span:has-text("Sent while the server was down")');
  await shoot(alice, "reconnecting");

  step("the server comes back: both reconnect and the waiting message arrives once");
  await supervise("start");
  for (const window of [alice, bob]) await status(window.page, "open", 30000);
  await bob.page.waitForSelector('#messages li span:has-text("Sent while the server was down")', { timeout: 15000 });
  await alice.page.waitForFunction(() => document.querySelectorAll("#messages li.pending").length === 0);

  step("nothing lost or doubled: both pages and the store hold the same conversation");
  const expected = ["Hello Bob, from Rust!", "Hi Alice!", "Sent while the server was down"];
  const stored = (await admin("/api/chats/general/messages?limit=200")).messages.map((m) => m.content);
  for (const [label, list] of [["Alice", await lines(alice.page)], ["Bob", await lines(bob.page)], ["the store", stored]]) {
    check(JSON.stringify(list) === JSON.stringify(expected), `${label} holds ${JSON.stringify(list)}, expected ${JSON.stringify(expected)}`);
  }
  await shoot(bob, "recovered");
  for (const window of [alice, bob]) {
    check(window.errors.length === 0, `${window.name}'s page reported: ${window.errors.join("; ")}`);
  }
  console.log(`rust-web: ${steps.length} steps passed`);
} catch (error) {
  failed = true;
  console.error(`rust-web failed at step ${steps.length}, "${steps.at(-1)}":\n${error.stack ?? error}`);
  for (const context of browser.contexts()) {
    for (const [index, page] of context.pages().entries()) {
      await page
        .screenshot({ path: join(screenshots, `rust-failure-${browser.contexts().indexOf(context)}-${index}.png`) })
        .catch(() => {});
    }
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
