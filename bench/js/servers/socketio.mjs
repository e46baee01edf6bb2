// The Socket.IO peer of the reference chat server, for the same work: an HS256 token
// checked at the handshake, `chat:message` broadcast to the chat's room (the sender
// included) with an acknowledgement, and `ping` answered with `pong`. It stores
// nothing, where the reference server writes every message to SQLite first.
// Listens on 127.0.0.1:$PORT (websocket transport only); exits when stdin closes.
// With $REDIS_URL it is one node of several: `@socket.io/redis-adapter` carries each
// room broadcast to the other nodes over Redis pub/sub, as Socket.IO scales out.
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.env.PORT);
const secret = process.env.JWT_SECRET ?? "";

/** The token's claims when its HS256 signature and expiry hold, else null. */
function verify(token) {
  if (typeof token !== "string") return null;
  const [header, payload, signature] = token.split(".");
  if (!header || !payload || !signature) return null;
  const expected = createHmac("sha256", secret).update(`${header}.${payload}`).digest();
  const given = Buffer.from(signature, "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
  return typeof claims.sub === "string" && claims.exp * 1000 > Date.now() ? claims : null;
}

const http = createServer((_, response) => response.writeHead(404).end());
const io = new Server(http, { transports: ["websocket"], serveClient: false, cors: { origin: true } });
if (process.env.REDIS_URL) {
  const { createAdapter } = await import("@socket.io/redis-adapter");
  const { createClient } = await import("redis");
  const pub = createClient({ url: process.env.REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub));
}

io.use((socket, next) => {
  const claims = verify(socket.handshake.auth?.token);
  if (!claims) return next(new Error("AUTH_FAILED"));
  socket.data.userId = claims.sub;
  next();
});

io.on("connection", (socket) => {
  const chats = socket.handshake.auth?.chatIds;
  if (Array.isArray(chats)) socket.join(chats.filter((c) => typeof c === "string"));
  socket.on("chat:message", (payload, ack) => {
    if (!payload || typeof payload.chatId !== "string" || typeof payload.content !== "string") {
      if (typeof ack === "function") ack({ error: "VALIDATION_ERROR" });
      return;
    }
    const message = {
      id: randomUUID(),
      chatId: payload.chatId,
      senderId: socket.data.userId,
      content: payload.content,
      createdAt: new Date().toISOString(),
    };
    io.to(payload.chatId).emit("chat:message", { chatId: payload.chatId, message });
    if (typeof ack === "function") ack({ messageId: message.id });
  });
  socket.on("ping", (payload) => socket.emit("pong", payload ?? {}));
});

http.listen(port, "127.0.0.1", () => console.log("LISTENING"));
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
