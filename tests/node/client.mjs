// The client in Node, against the real server: with the `ws` package's WebSocket
// passed in, with Node's global one where it has it (Node 22+, or Node 20 with
// `--experimental-websocket`), a clear coded error where there is none, server
// rendering of the React provider, and nothing left running after `close()`.
import assert from "node:assert/strict";
import { createElement } from "react";
import { renderToString } from "react-dom/server";
import { WebSocket as NodeWs } from "ws";
import { RelaywireClient } from "relaywire";
import { chatProtocol, joinChat, sendChatMessage } from "relaywire/chat";
import { RelaywireProvider, useConnection } from "relaywire/react";
import { tokenFor, until, wsUrl } from "./common.mjs";

const globalWebSocket = globalThis.WebSocket;

// No WebSocket at all: the constructor (which connects) and connect() say what to pass.
delete globalThis.WebSocket;
assert.throws(
  () => new RelaywireClient({ url: wsUrl, protocol: chatProtocol, auth: { token: tokenFor("ada") } }),
  (error) => error.name === "RelaywireError" && error.code === "INVALID_OPTIONS" && /`WebSocket` option/.test(error.message),
);
const idle = new RelaywireClient({ url: wsUrl, protocol: chatProtocol, autoConnect: false });
assert.equal(idle.getSnapshot().status, "idle");
assert.throws(() => idle.connect(), (error) => error.code === "INVALID_OPTIONS" && /`ws`/.test(error.message));
idle.close();
if (globalWebSocket !== undefined) globalThis.WebSocket = globalWebSocket;

// A path has nothing to resolve against without a page: created, yes; connected, no.
const relative = new RelaywireClient({ url: "/ws", protocol: chatProtocol, autoConnect: false, WebSocket: NodeWs });
assert.throws(() => relative.connect(), (error) => error.code === "INVALID_OPTIONS" && /page/.test(error.message));
relative.close();
assert.throws(
  () => new RelaywireClient({ url: wsUrl, protocol: chatProtocol, WebSocket: "ws" }),
  (error) => error.code === "INVALID_OPTIONS",
);

// Server rendering: the provider renders the idle snapshot and opens nothing.
function Status() {
  const { status, onlineUserIds } = useConnection();
  return createElement("p", null, `${status} · ${onlineUserIds.length} online`);
}
const html = renderToString(
  createElement(RelaywireProvider, { options: { url: "/ws", protocol: chatProtocol } }, createElement(Status)),
);
assert.equal(html, "<p>idle · 0 online</p>");

// Two users chatting: Ada through `ws`, Bob through the global WebSocket where there
// is one (else `ws` again).
const users = [
  ["ada", NodeWs],
  ["bob", globalWebSocket ?? NodeWs],
];
const seen = { ada: [], bob: [] };
const clients = users.map(([user, WebSocket]) => {
  const client = new RelaywireClient({ url: wsUrl, protocol: chatProtocol, auth: { token: tokenFor(user) }, WebSocket });
  client.on("chat:message", ({ message }) => seen[user].push(`${message.senderName}: ${message.content}`));
  return client;
});
const [ada, bob] = clients;
await until("both clients open", () => clients.every((c) => c.getSnapshot().status === "open"));
assert.equal(ada.getSnapshot().user.id, "ada");

// Sending to a chat one is not in is refused with the server's code.
await assert.rejects(sendChatMessage(ada, "not-joined", "hi"), (error) => error.code === "NOT_PARTICIPANT");

// The seeded open chat; each run's messages carry its own mark.
const chat = "general";
const mark = `${process.pid}`;
await joinChat(ada, chat);
await joinChat(bob, chat);
const ack = await sendChatMessage(ada, chat, `hello from Node ${mark}`);
assert.equal(typeof ack.messageId, "string");
await sendChatMessage(bob, chat, `hello back ${mark}`);
const ours = (user) => seen[user].filter((line) => line.endsWith(mark));
await until("both messages at both clients", () => ours("ada").length === 2 && ours("bob").length === 2);
assert.deepEqual(ours("ada"), [`ada: hello from Node ${mark}`, `bob: hello back ${mark}`]);
assert.deepEqual(ours("bob"), ours("ada"));
assert.ok(ada.getSnapshot().rooms.includes(chat));

for (const client of clients) client.close();
assert.equal(ada.getSnapshot().status, "closed");
// Nothing may keep the process alive now: no socket, timer or listener.
setTimeout(() => {
  console.error("the process is still running after close(): a socket or timer was left behind");
  process.exit(1);
}, 5_000).unref();
console.log(`node client: ok (bob on ${globalWebSocket ? "the global WebSocket" : "ws"})`);
