// A Next.js App Router app on the package (tests/next-app), built with `next build`
// and served by `next start`, the chat server behind its rewrites:
// - `/` is the README's React quick start as written: its prerendered HTML holds the
//   idle state, it hydrates without a mismatch, connects with the dev-login cookie,
//   and its button joins and sends;
// - `/session?user=…` is the Next-Auth pattern (a token from the app's own route,
//   fetched by `getToken`): two users chat across two browser contexts.
//
// Run by `cargo xtask test next`, which passes RELAYWIRE_NEXT (the app's URL).
import { chromium } from "playwright-core";
import { CHROMIUM_FLAGS, CHROMIUM_PATH } from "./chromium.mjs";
import { check, required, step, steps } from "./script.mjs";

const app = required("RELAYWIRE_NEXT", "next");



/** A page that records errors and warnings (React reports hydration mismatches there). */
async function open(context, path) {
  const page = await context.newPage();
  const problems = [];
  const logs = [];
  page.on("pageerror", (error) => problems.push(error.message));
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") problems.push(message.text());
    else logs.push(message.text());
  });
  await page.goto(`${app}${path}`);
  return { page, problems, logs };
}

/** Connection failures while the server is away are expected noise; nothing else is. */
function unexpected(problems) {
  return problems.filter((text) => !/WebSocket connection to .* failed/.test(text));
}

const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_FLAGS });
let failed = false;
try {
  step("next build prerendered the quick start in its idle state");
  // React separates adjacent text with empty comments.
  const html = (await (await fetch(app)).text()).replaceAll("<!-- -->", "");
  check(html.includes("idle · 0 online"), `the prerendered page lacks the idle state:\n${html.slice(0, 2000)}`);

  step("the quick start hydrates, connects with the dev-login cookie and sends on click");
  const ada = await browser.newContext();
  const login = await ada.request.post(`${app}/auth/dev-login`, { data: { userId: "ada", name: "Ada" } });
  check(login.ok(), `dev login through the app's rewrite answered ${login.status()}`);
  const quick = await open(ada, "/");
  await quick.page.getByRole("button", { name: /^open · / }).waitFor({ timeout: 15_000 });
  await quick.page.getByRole("button").click();
  const deadline = Date.now() + 10_000;
  while (!quick.logs.includes("Ada: Hello!")) {
    check(Date.now() < deadline, `the quick start's message never came back; console: ${quick.logs.join(" | ")}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  check(unexpected(quick.problems).length === 0, `the quick start page reported: ${quick.problems.join("\n")}`);

  step("the session page renders idle on the server and connects with getToken");
  const sessionHtml = await (await fetch(`${app}/session?user=grace`)).text();
  check(sessionHtml.includes('data-testid="status">idle<'), "the session page was not rendered idle");
  const grace = await open(await browser.newContext(), "/session?user=grace");
  const linus = await open(await browser.newContext(), "/session?user=linus");
  for (const { page } of [grace, linus]) {
    await page.getByTestId("status").filter({ hasText: /^open$/ }).waitFor({ timeout: 15_000 });
    await page.getByTestId("join").click();
    await page.getByTestId("rooms").filter({ hasText: "general" }).waitFor();
  }
  check((await grace.page.getByTestId("user").textContent()) === "grace", "the token's user is not grace");

  step("two users chat through the app's origin");
  await grace.page.getByTestId("send").click();
  await linus.page.getByTestId("send").click();
  for (const { page } of [grace, linus]) {
    await page.getByText("grace: hello from grace").waitFor();
    await page.getByText("linus: hello from linus").waitFor();
    check((await page.getByTestId("failure").textContent()) === "", "a send was refused");
  }
  for (const window of [grace, linus]) {
    check(unexpected(window.problems).length === 0, `the session page reported: ${window.problems.join("\n")}`);
  }
  console.log(`next: ${steps.length} steps passed`);
} catch (error) {
  failed = true;
  console.error(`next failed at step ${steps.length}, "${steps.at(-1)}":\n${error.stack ?? error}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
