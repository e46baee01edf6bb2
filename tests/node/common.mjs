// What the Node tests share: the server `cargo xtask test node` started, tokens it
// accepts, and waiting for a condition with a deadline.
import { createHmac } from "node:crypto";

/** `http://127.0.0.1:<port>` of the chat server. */
export const server = process.env.RELAYWIRE_TEST_SERVER;
if (!server) {
  console.error("RELAYWIRE_TEST_SERVER is not set: run these tests with `cargo xtask test node`");
  process.exit(2);
}
/** Its WebSocket endpoint. */
export const wsUrl = `${server.replace(/^http/, "ws")}/ws`;

const secret = process.env.RELAYWIRE_TEST_JWT_SECRET ?? "";
const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");

/** An HS256 token for `user`, as an app's server would mint it. */
export function tokenFor(user) {
  const now = Math.floor(Date.now() / 1000);
  const body = `${encode({ alg: "HS256", typ: "JWT" })}.${encode({ sub: user, name: user, iat: now, exp: now + 600 })}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

/** Resolves when `condition()` holds, checked every 20 ms; rejects after `ms`. */
export async function until(what, condition, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
