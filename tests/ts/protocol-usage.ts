// Proves the generated protocol types are usable, not just present: every message can
// be built, every union narrows on `type`, and mistakes fail to compile.
import type {
  ClientEnvelope,
  ClientErrorCode,
  ClientMessage,
  ErrorCode,
  ServerMessage,
} from "../../bindings/chat";

// Every client message, built as an application would.
export const outgoing: ClientMessage[] = [
  { type: "auth", payload: { token: "eyJ..." } },
  { type: "chat:message", payload: { chatId: "general", content: "Hello" } },
  { type: "chat:read", payload: { chatId: "general", messageId: "m1" } },
  { type: "chat:typing", payload: { chatId: "general", isTyping: true } },
  { type: "chat:join", payload: { chatId: "general" } },
  { type: "chat:leave", payload: { chatId: "general" } },
  { type: "ping", payload: {} },
];

export const withId: ClientEnvelope = {
  id: "c1",
  type: "chat:join",
  payload: { chatId: "general" },
};

const assertNever = (value: never): never => {
  throw new Error(`unhandled ${JSON.stringify(value)}`);
};

// Narrowing on `type` gives each payload its own type; the `never` check proves the
// switch covers the whole union.
export function describe(message: ServerMessage): string {
  switch (message.type) {
    case "connected":
      return `${message.payload.userId} in ${message.payload.chatIds.length} chats, ` +
        `ping every ${message.payload.heartbeatIntervalMs ?? 30000} ms`;
    case "chat:message":
      return `${message.payload.message.senderName}: ${message.payload.message.content}`;
    case "chat:read":
      return `${message.payload.userId} read ${message.payload.messageId}`;
    case "chat:typing":
      return `${message.payload.userName} ${message.payload.isTyping ? "is" : "stopped"} typing`;
    case "user:online":
      return `${message.payload.userId} ${message.payload.online ? "online" : "offline"}`;
    case "pong":
      return message.payload.timestamp;
    case "notification":
      return `${message.payload.title}: ${message.payload.body}`;
    case "system": {
      const level: "info" | "warning" | "error" = message.payload.level;
      return `[${level}] ${message.payload.message}`;
    }
    case "event": {
      // Arbitrary JSON is `unknown`: it must be checked before use.
      const data: unknown = message.payload.data;
      return `${message.payload.name}: ${typeof data}`;
    }
    case "ack":
      return `ack ${message.payload.id} -> ${message.payload.messageId ?? "-"}`;
    case "error": {
      const code: ErrorCode = message.payload.code;
      return `${code} (${message.payload.id ?? "no id"}): ${message.payload.message}`;
    }
    default:
      return assertNever(message);
  }
}

export const codes: (ErrorCode | ClientErrorCode)[] = [
  "AUTH_FAILED",
  "INVALID_MESSAGE",
  "NOT_PARTICIPANT",
  "HTTP_ERROR",
  "INTERNAL_ERROR",
  "VALIDATION_ERROR",
  "RATE_LIMITED",
  "MESSAGE_TOO_LARGE",
  "TIMEOUT",
  "QUEUE_FULL",
];

// Mistakes that must not compile.
export const mistakes: ClientMessage[] = [
  // @ts-expect-error a misspelt message type
  { type: "chat:mesage", payload: { chatId: "general", content: "Hello" } },
  // @ts-expect-error a missing field
  { type: "chat:message", payload: { chatId: "general" } },
  // @ts-expect-error a field of the wrong type
  { type: "chat:typing", payload: { chatId: "general", isTyping: "yes" } },
  // @ts-expect-error a server-only message type
  { type: "pong", payload: { timestamp: "now" } },
  // @ts-expect-error snake_case instead of the wire's camelCase
  { type: "chat:join", payload: { chat_id: "general" } },
];

// @ts-expect-error an error code that does not exist
export const badCode: ErrorCode = "NOT_AN_ERROR";

// @ts-expect-error optional fields are omitted, never null
export const nullId: ClientEnvelope = { id: null, type: "ping", payload: {} };
