// One connection shared by the tabs of a context (relaywire/shared), in Chromium
// against the real server: N tabs hold one socket; every tab gets every message once;
// the leading tab is closed in the middle of a burst from every tab and another takes
// over, with nothing lost and nothing doubled; another user's tabs do not share; and
// unshared tabs hold one socket each.
//
// Run by `cargo xtask test shared`, which serves the package and shared.html from the
// chat server; it passes RELAYWIRE_APP, RELAYWIRE_SERVICE_KEY and
// RELAYWIRE_TEST_JWT_SECRET.
import { createHmac } from "node:crypto";
import { chromium } from "playwright-core";
import { CHROMIUM_FLAGS, CHROMIUM_PATH } from "./chromium.mjs";
import { check, required, step, steps } from "./script.mjs";

const app = required("RELAYWIRE_APP", "shared");
const serviceKey = required("RELAYWIRE_SERVICE_KEY", "shared");
const secret = required("RELAYWIRE_TEST_JWT_SECRET", "shared");




function token(user) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const body = `${encode({ alg: "HS256", typ: "JWT" })}.${encode({ sub: user, name: user, exp: now + 600 })}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

/** How many sockets the server holds for `user`. */
async function connections(user) {
  const response = await fetch(`${app}/api/users/${user}/status`, {
    headers: { authorization: `Bearer ${serviceKey}` },
  });
  check(response.ok, `status of ${user} answered ${response.status}`);
  return (await response.json()).connections;
}

async function eventually(what, condition, ms = 15_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const last = await condition();
    if (last === true) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Each of `expected` exactly once in `seen` (other lines are ignored). */
function once(seen, expected, where) {
  const counts = new Map();
  for (const line of seen) counts.set(line, (counts.get(line) ?? 0) + 1);
  const lost = expected.filter((line) => !counts.has(line));
  const doubled = expected.filter((line) => (counts.get(line) ?? 0) > 1);
  check(lost.length === 0 && doubled.length === 0, `${where}: lost ${JSON.stringify(lost)}, doubled ${JSON.stringify(doubled)}`);
}

const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_FLAGS });
let failed = false;
try {
  const context = await browser.newContext();
  const login = await context.request.post(`${app}/auth/dev-login`, { data: { userId: "ada", name: "Ada" } });
  check(login.ok(), `dev login answered ${login.status()}`);
  const problems = [];
  async function openTab(query = "") {
    const page = await context.newPage();
    page.on("pageerror", (error) => problems.push(error.message));
    await page.goto(`${app}/shared.html${query}`);
    await page.waitForFunction(() => window.tab?.status() === "open", null, { timeout: 15_000 });
    return page;
  }

  step("three tabs of one user share one socket");
  const tabs = [await openTab(), await openTab(), await openTab()];
  await eventually("one socket for three tabs", async () => (await connections("ada")) === 1 || (await connections("ada")));
  const leaders = await Promise.all(tabs.map((page) => page.evaluate(() => window.tab.leading())));
  check(leaders.filter(Boolean).length === 1, `leaders: ${leaders}`);
  for (const page of tabs) check((await page.evaluate(() => window.tab.user())) === "ada", "a tab does not see ada");

  step("a join from one tab reaches every tab's snapshot; every tab gets every message once");
  await tabs[1].evaluate(() => window.tab.join("general"));
  for (const page of tabs) {
    await page.waitForFunction(() => window.tab.rooms().includes("general"));
  }
  const warm = [];
  for (const [index, page] of tabs.entries()) {
    await page.evaluate((tag) => window.tab.burst(tag, 5), `warm${index}`);
    for (let i = 0; i < 5; i += 1) warm.push(`warm${index}-${i}`);
  }
  for (const [index, page] of tabs.entries()) {
    await eventually(`tab ${index} to receive the warm-up`, async () => {
      const received = await page.evaluate(() => window.tab.state.received);
      return warm.every((line) => received.includes(line)) || received.length;
    });
    once(await page.evaluate(() => window.tab.state.received), warm, `tab ${index}`);
  }

  step("the leading tab closes in the middle of a burst from every tab: another takes over");
  const leaderIndex = leaders.indexOf(true);
  const leader = tabs[leaderIndex];
  const followers = tabs.filter((_, index) => index !== leaderIndex);
  const burst = 40;
  const bursts = followers.map((page, index) => page.evaluate(([tag, n]) => window.tab.burst(tag, n), [`f${index}`, burst]));
  // The leader hands over its own burst, then goes before most of it is answered.
  await leader.evaluate((n) => void window.tab.burst("leader", n), burst);
  await leader.close();
  const acked = await Promise.all(bursts);
  const refusals = await Promise.all(followers.map((page) => page.evaluate(() => window.tab.state.failed)));
  check(acked.every((count) => count === burst), `followers' acks: ${acked}; refused: ${refusals.flat().slice(0, 5)}`);
  const expected = [];
  for (const tag of ["leader", ...followers.map((_, index) => `f${index}`)]) {
    for (let i = 0; i < burst; i += 1) expected.push(`${tag}-${i}`);
  }
  await eventually("one socket again", async () => (await connections("ada")) === 1 || (await connections("ada")));
  for (const [index, page] of followers.entries()) {
    await eventually(`follower ${index} to receive every message`, async () => {
      const received = await page.evaluate(() => window.tab.state.received);
      return expected.every((line) => received.includes(line)) || expected.filter((line) => !received.includes(line)).length;
    });
    const { received, failed: refused } = await page.evaluate(() => window.tab.state);
    check(refused.length === 0, `follower ${index} saw refusals: ${refused}`);
    once(received, [...warm, ...expected], `follower ${index}`);
  }
  const history = await context.request.get(`${app}/api/chats/general/messages?limit=200`);
  check(history.ok(), `history answered ${history.status()}`);
  const stored = (await history.json()).messages.map((message) => message.content);
  once(stored, [...warm, ...expected], "the server's history");
  const newLeaders = await Promise.all(followers.map((page) => page.evaluate(() => window.tab.leading())));
  check(newLeaders.filter(Boolean).length === 1, `leaders after the handover: ${newLeaders}`);

  step("another user's tab in the same browser does not share");
  const other = await openTab(`?key=bob&token=${token("bob")}`);
  check((await other.evaluate(() => window.tab.user())) === "bob", "the other tab is not bob");
  check(await other.evaluate(() => window.tab.leading()), "bob's tab does not hold its own connection");
  check((await connections("bob")) === 1 && (await connections("ada")) === 1, "bob and ada do not hold one socket each");
  for (const page of followers) check((await page.evaluate(() => window.tab.user())) === "ada", "ada's tabs changed user");

  step("unshared tabs hold a socket each");
  const unshared = await browser.newContext();
  await unshared.request.post(`${app}/auth/dev-login`, { data: { userId: "cy", name: "Cy" } });
  const own = [];
  for (let i = 0; i < 3; i += 1) {
    const page = await unshared.newPage();
    await page.goto(`${app}/shared.html?shared=0`);
    await page.waitForFunction(() => window.tab?.status() === "open");
    own.push(page);
  }
  check((await connections("cy")) === 3, `unshared tabs: ${await connections("cy")} sockets`);
  check(problems.length === 0, `the tabs reported: ${problems.join("\n")}`);
  console.log(`shared: ${steps.length} steps passed`);
} catch (error) {
  failed = true;
  console.error(`shared failed at step ${steps.length}, "${steps.at(-1)}":\n${error.stack ?? error}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
