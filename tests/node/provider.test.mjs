// @vitest-environment happy-dom
//
// The React provider in a DOM test environment (Vitest + happy-dom), against the real
// server: it connects after mounting, StrictMode's double mount opens one socket,
// hooks see the snapshot and messages, and unmounting closes the client. happy-dom has
// no WebSocket, so the test passes the `ws` package's, as Node apps before 22 do.
import { createElement, StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { expect, test } from "vitest";
import { WebSocket as NodeWs } from "ws";
import { chatProtocol, joinChat, sendChatMessage } from "relaywire/chat";
import { createRelaywire } from "relaywire/react";
import { tokenFor, until, wsUrl } from "./common.mjs";

// Updates come from a real socket, not from `act()`: React renders them as in a page.
globalThis.IS_REACT_ACT_ENVIRONMENT = false;
const { RelaywireProvider, useConnection, useMessage, useRelaywire } = createRelaywire(chatProtocol);

/** `ws`'s WebSocket, counting the sockets the client opens. */
let opened = 0;
class CountingWebSocket extends NodeWs {
  constructor(url, protocols) {
    super(url, protocols);
    opened += 1;
  }
}

test("the provider connects once under StrictMode, delivers, and closes on unmount", async () => {
  const chat = "general";
  const received = [];
  let client;
  function Chat() {
    client = useRelaywire();
    const { status, user } = useConnection();
    useMessage("chat:message", ({ message }) => {
      if (message.senderId === "grace") received.push(message.content);
    });
    return createElement("p", { id: "status" }, `${status}:${user?.id ?? "-"}`);
  }
  const container = document.createElement("div");
  document.body.append(container);
  const root = createRoot(container);
  root.render(
    createElement(
      StrictMode,
      null,
      createElement(
        RelaywireProvider,
        { options: { url: wsUrl, auth: { token: tokenFor("grace") }, WebSocket: CountingWebSocket } },
        createElement(Chat),
      ),
    ),
  );
  const text = () => container.querySelector("#status")?.textContent;
  await until("the provider's client to open", () => text() === "open:grace");
  expect(opened).toBe(1);

  await joinChat(client, chat);
  await sendChatMessage(client, chat, "hello from Vitest");
  await until("the message back through useMessage", () => received.length === 1);
  expect(received).toEqual(["hello from Vitest"]);

  const owned = client;
  root.unmount();
  // The close waits a task (StrictMode remounts within it).
  await until("the client to close", () => owned.getSnapshot().status === "closed");
  expect(opened).toBe(1);
});

test("with `shared`, where there are no Web Locks, the provider's client holds its own connection", async () => {
  const received = [];
  let client;
  function Chat() {
    client = useRelaywire();
    const { status } = useConnection();
    useMessage("chat:message", ({ message }) => {
      if (message.senderId === "hedy") received.push(message.content);
    });
    return createElement("p", { id: "shared-status" }, status);
  }
  const container = document.createElement("div");
  document.body.append(container);
  const root = createRoot(container);
  const before = opened;
  root.render(
    createElement(
      RelaywireProvider,
      { options: { url: wsUrl, auth: { token: tokenFor("hedy") }, WebSocket: CountingWebSocket, shared: true } },
      createElement(Chat),
    ),
  );
  const text = () => container.querySelector("#shared-status")?.textContent;
  await until("the shared client to open", () => text() === "open");
  expect(client.leading).toBe(true);
  expect(opened - before).toBe(1);
  await joinChat(client, "general");
  await sendChatMessage(client, "general", "hello from a shared client");
  await until("the message back", () => received.length === 1);
  const owned = client;
  root.unmount();
  await until("the client to close", () => owned.getSnapshot().status === "closed");
});
