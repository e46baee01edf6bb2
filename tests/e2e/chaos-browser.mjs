// Drives the chaos page in headless Chromium for the chaos test (tests/src/bin/chaos.rs),
// which talks to it over stdin and stdout:
//   -> READY                    once the client is open
//   <- SEND <count> <interval>  sends numbered messages, then -> SENT <n>
//   <- EXPECT <total>           waits for nothing pending and <total> messages received
//   -> RESULT <json>            sent, received, opens, errors
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";
import { CHROMIUM_FLAGS, CHROMIUM_PATH } from "./chromium.mjs";

const page_url = process.env.CHAOS_PAGE;
if (!page_url) throw new Error("CHAOS_PAGE is not set: the chaos test runs this");

const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_FLAGS });
const page = await browser.newPage();
page.on("pageerror", (error) => console.error(`page error: ${error.message}`));
await page.goto(page_url);
await page.waitForFunction(() => window.chaos && window.chaos.status() === "open", null, { timeout: 20000 });
console.log("READY");

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const [command, ...args] = line.trim().split(" ");
  if (command === "SEND") {
    const [count, interval] = args.map(Number);
    await page.evaluate(([c, i]) => window.chaos.send(c, i), [count, interval]);
    console.log(`SENT ${await page.evaluate(() => window.chaos.state.sent.length)}`);
  } else if (command === "EXPECT") {
    const total = Number(args[0]);
    await page
      .waitForFunction(
        (n) => window.chaos.pending() === 0 && window.chaos.state.received.length >= n,
        total,
        { timeout: 60000, polling: 100 },
      )
      .catch(() => {});
    const result = await page.evaluate(() => window.chaos.state);
    console.log(`RESULT ${JSON.stringify(result)}`);
    break;
  }
}
await browser.close();
process.exit(0);
