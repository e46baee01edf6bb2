"use client";

// The Next-Auth pattern: the socket authenticates with a token the app's server mints
// from its session, fetched by `getToken` before every connect.
import { useState } from "react";
import type { RelaywireError } from "relaywire";
import { chatProtocol, joinChat, sendChatMessage } from "relaywire/chat";
import { createRelaywire } from "relaywire/react";

const { RelaywireProvider, useConnection, useMessage, useRelaywire } = createRelaywire(chatProtocol);

async function getToken(): Promise<string | null> {
  // The fixture's "session" is the `user` query parameter of the page.
  const user = new URLSearchParams(window.location.search).get("user");
  if (user === null) return null;
  const response = await fetch(`/session-token?user=${encodeURIComponent(user)}`);
  if (!response.ok) throw new Error(`no token: ${response.status}`);
  return response.text();
}

export function SessionChat() {
  return (
    <RelaywireProvider options={{ url: "/ws", auth: { getToken } }}>
      <Room />
    </RelaywireProvider>
  );
}

function Room() {
  const client = useRelaywire();
  const { status, user, rooms } = useConnection();
  const [lines, setLines] = useState<string[]>([]);
  const [failure, setFailure] = useState<string | null>(null);
  useMessage("chat:message", ({ message }) =>
    setLines((previous) => [...previous, `${message.senderName}: ${message.content}`]),
  );
  const join = () =>
    joinChat(client, "general").catch((error: RelaywireError) => setFailure(error.code));
  const send = (text: string) =>
    sendChatMessage(client, "general", text).catch((error: RelaywireError) => setFailure(error.code));
  return (
    <section>
      <p data-testid="status">{status}</p>
      <p data-testid="user">{user?.name ?? ""}</p>
      <p data-testid="rooms">{rooms.join(",")}</p>
      <p data-testid="failure">{failure ?? ""}</p>
      <button data-testid="join" onClick={join}>
        join
      </button>
      <button data-testid="send" onClick={() => send(`hello from ${user?.name ?? "?"}`)}>
        send
      </button>
      <ul data-testid="lines">
        {lines.map((line, index) => (
          <li key={index}>{line}</li>
        ))}
      </ul>
    </section>
  );
}
