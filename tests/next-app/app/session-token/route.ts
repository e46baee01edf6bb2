import { createHmac } from "node:crypto";

// Mints the socket token from the app's session, as a Next-Auth app's route would from
// `getToken()`: an HS256 JWT signed with the secret the chat server verifies.
export const dynamic = "force-dynamic";

const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");

export function GET(request: Request): Response {
  const user = new URL(request.url).searchParams.get("user");
  const secret = process.env.JWT_SECRET;
  if (user === null || user === "" || secret === undefined) {
    return new Response("no session", { status: 401 });
  }
  const now = Math.floor(Date.now() / 1000);
  const body = `${encode({ alg: "HS256", typ: "JWT" })}.${encode({ sub: user, name: user, iat: now, exp: now + 600 })}`;
  const signature = createHmac("sha256", secret).update(body).digest("base64url");
  return new Response(`${body}.${signature}`, { headers: { "content-type": "text/plain" } });
}
