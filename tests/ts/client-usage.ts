// Proves the browser client's declarations are precise for any protocol: the client's
// type comes from the descriptor it is given, handlers see their message's payload
// type, sends are checked against the protocol, options and snapshots are typed, and
// mistakes fail to compile.
import {
  RelaywireClient,
  type ConnectionSnapshot,
  type ConnectionStatus,
  type Protocol,
  type RelaywireError,
  type RelaywireOptions,
} from "./generated/relaywire_client";
import { chatProtocol, type ChatProtocol } from "../../bindings/chat";

export function wire(client: RelaywireClient<ChatProtocol>): Array<() => void> {
  return [
    client.on("chat:message", (payload, message) => {
      const text: string = payload.message.content;
      const kind: "chat:message" = message.type;
      void text;
      void kind;
    }),
    client.on("user:online", (payload) => {
      const online: boolean = payload.online;
      void online;
    }),
    client.on("error", (payload) => {
      const code: string = payload.code;
      void code;
    }),
    // @ts-expect-error a misspelt message type
    client.on("chat:mesage", () => {}),
    // @ts-expect-error a payload field of another message
    client.on("user:online", (payload) => payload.message),
    client.onAny((message) => {
      if (message.type === "notification") {
        const title: string = message.payload.title;
        void title;
      }
    }),
    client.onUnknown((message) => {
      const payload: unknown = message.payload;
      void payload;
    }),
    client.subscribe(() => {}),
  ];
}

export async function talk(client: RelaywireClient<ChatProtocol>): Promise<string | undefined> {
  client.send({ type: "chat:join", payload: { chatId: "general" } });
  // @ts-expect-error a misspelt message type
  client.send({ type: "chat:jion", payload: { chatId: "general" } });
  // @ts-expect-error a server message cannot be sent
  client.send({ type: "pong", payload: { timestamp: "now" } });
  // @ts-expect-error a payload of another message type
  client.send({ type: "chat:typing", payload: { chatId: "general" } });
  client.send({ type: "chat:typing", payload: { chatId: "general", isTyping: true } });
  const ack = await client.request({ type: "chat:message", payload: { chatId: "general", content: "Hello!" } });
  const id: string = ack.id;
  void id;
  await client.request({ type: "chat:read", payload: { chatId: "general", messageId: "m1" } }, { timeoutMs: 500 });
  return ack.messageId;
}

export function status(client: RelaywireClient<ChatProtocol>): ConnectionStatus {
  const snapshot: ConnectionSnapshot = client.getSnapshot();
  if (snapshot.lastError !== null) {
    const code: string = snapshot.lastError.code;
    void code;
  }
  const rooms: readonly string[] = snapshot.rooms;
  void rooms;
  // @ts-expect-error snapshots are read-only
  snapshot.status = "open";
  return snapshot.status;
}

export function isRelaywireError(error: unknown): error is RelaywireError {
  return error instanceof Error && error.name === "RelaywireError";
}

// The Next-Auth guide's settings: 5 attempts, 1000 ms first delay, 5000 ms cap.
export const nextAuthLike: RelaywireOptions<ChatProtocol> = {
  url: "/ws",
  protocol: chatProtocol,
  auth: { getToken: async ({ forceRefresh }) => (forceRefresh ? "fresh" : null) },
  reconnect: { maxAttempts: 5, initialDelayMs: 1000, maxDelayMs: 5000 },
};

export const mistakes: RelaywireOptions<ChatProtocol>[] = [
  // @ts-expect-error url is required
  { protocol: chatProtocol, auth: "cookie" },
  // @ts-expect-error the protocol is required
  { url: "/ws" },
  // @ts-expect-error a misspelt auth option
  { url: "/ws", protocol: chatProtocol, auth: { tokn: "x" } },
  // @ts-expect-error an unknown transport
  { url: "/ws", protocol: chatProtocol, tokenTransport: "header" },
];

// The protocol type follows from the descriptor: no type argument to write.
export function make(): RelaywireClient<ChatProtocol> {
  const client = new RelaywireClient({ url: "/ws", protocol: chatProtocol });
  client.send({ type: "chat:leave", payload: { chatId: "general" } });
  // @ts-expect-error the inferred protocol knows its message types
  client.send({ type: "order:place", payload: {} });
  return client;
}

// Without a protocol's types, everything is allowed and nothing is known.
export function untyped(client: RelaywireClient<Protocol>): void {
  client.send({ type: "anything", payload: { x: 1 } });
  client.on("whatever", (payload) => {
    const value: unknown = payload;
    void value;
  });
}
