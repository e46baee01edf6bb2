// Generated from a Relaywire catalogue by relaywire-protocol (ts-rs). Do not edit by hand.

/**
 * Payload of `ack`: the client message with this `id` was accepted.
 *
 * ```json
 * {"type": "ack", "payload": {"id": "k3f9-1", "messageId": "message-uuid"}}
 * ```
 */
export type Ack = { 
/**
 * The `id` of the client message accepted.
 */
id: string, 
/**
 * The id the server assigned to what the message created, e.g. the stored chat message.
 */
messageId?: string, };

/**
 * Payload of `auth`: the token that proves who the client is.
 *
 * ```json
 * {"type": "auth", "payload": {"token": "eyJhbGciOi..."}}
 * ```
 */
export type Authenticate = { 
/**
 * A JWT, as issued by the identity provider.
 */
token: string, };

/**
 * Body of `POST /websocket/message/broadcast`. (`POST /websocket/notification` takes
 * the library's [`NotifyUser`].)
 */
export type BroadcastMessage = { 
/**
 * The app's own message type.
 */
type: string, 
/**
 * The app's data, any JSON (`null` when absent).
 */
data?: unknown, };

/**
 * The code of a failure a client raises by itself, never sent on the wire: the
 * `code` of a rejected Promise in JavaScript, beside `ErrorCode`.
 */
export type ClientErrorCode = "TIMEOUT" | "QUEUE_FULL" | "CLIENT_CLOSED" | "CONNECTION_FAILED" | "INVALID_OPTIONS" | "CONNECTION_CLOSED";

/**
 * Payload of `connected`: who the client is and how to talk to this server; the first
 * message of every session.
 *
 * Every field after `chat_ids` is optional so that minimal servers stay valid; the
 * Relaywire server sends them all.
 *
 * ```json
 * {"type": "connected", "payload": {"userId": "user-uuid", "chatIds": ["chat-uuid-1", "chat-uuid-2"]}}
 * ```
 */
export type Connected = { 
/**
 * The authenticated user.
 */
userId: string, 
/**
 * The rooms the user belongs to (the chat protocol's chats; the wire name is the
 * chat server's).
 */
chatIds: Array<string>, 
/**
 * The user's display name.
 */
userName?: string, 
/**
 * Users sharing a room with this user who are online now.
 */
onlineUserIds?: Array<string>, 
/**
 * How often the client should `ping`, in milliseconds; wins over the client's option.
 */
heartbeatIntervalMs?: number, 
/**
 * The server closes a connection silent for this long, in milliseconds.
 */
connectionTimeoutMs?: number, 
/**
 * The server ends an ephemeral state (a typing indicator) after this long without a
 * renewal, in milliseconds.
 */
typingTimeoutMs?: number, 
/**
 * The largest text frame the server accepts, in bytes.
 */
maxMessageBytes?: number, 
/**
 * The protocol version the server speaks.
 */
protocolVersion?: number, 
/**
 * The user's newest event when the session began; events after it come live. A
 * client remembers the last `seq` it saw and resumes from it on reconnect.
 */
seq?: Seq, 
/**
 * How many missed events follow this message, replayed in order before anything new.
 */
replayed?: number, 
/**
 * More events were missed than the server replays: reload history over HTTP.
 */
replayTruncated?: boolean, };

/**
 * The code of an `error` message, and of HTTP API error bodies.
 *
 * Serialized as its wire string, e.g. `"NOT_PARTICIPANT"`. A code this version does
 * not know decodes to `Other` (Rust only) so that servers can add codes without
 * breaking older clients.
 */
export type ErrorCode = "AUTH_FAILED" | "INVALID_MESSAGE" | "NOT_PARTICIPANT" | "HTTP_ERROR" | "INTERNAL_ERROR" | "VALIDATION_ERROR" | "RATE_LIMITED" | "MESSAGE_TOO_LARGE" | "FORBIDDEN" | "NOT_FOUND" | "ID_REUSED";

/**
 * Payload of `error`: something went wrong; `id` names the client message this
 * answers, if any.
 *
 * ```json
 * {"type": "error", "payload": {"code": "AUTH_FAILED", "message": "Invalid token", "details": {}}}
 * ```
 */
export type ErrorPayload = { 
/**
 * What went wrong, machine-readable.
 */
code: ErrorCode, 
/**
 * What went wrong, for people.
 */
message: string, 
/**
 * Extra context, any JSON.
 */
details?: unknown, 
/**
 * The `id` of the client message this error answers, if it had one.
 */
id?: string, 
/**
 * The close code the server closes the connection with right after this error.
 * Sent where the socket's own close cannot carry it (a gateway's close is always
 * 1000): the client acts on this code's policy instead of the close's.
 */
closeCode?: number, };

/**
 * How serious a system message is.
 */
export type Level = "info" | "warning" | "error";

/**
 * Payload of `notification`.
 */
export type Notification = { 
/**
 * The notification's id.
 */
id: string, 
/**
 * Short title.
 */
title: string, 
/**
 * Body text.
 */
body: string, 
/**
 * The app's data, any JSON.
 */
data?: unknown, 
/**
 * When it was stored (RFC 3339).
 */
timestamp: string, 
/**
 * Its number in the receiver's stream.
 */
seq?: Seq, };

/**
 * What a client of the service sends.
 */
export type NotifyClient = { "type": "auth", "payload": Authenticate } | { "type": "ping", "payload": Ping } | { "type": "message:send", "payload": SendMessage };

/**
 * What the service sends.
 */
export type NotifyServer = { "type": "connected", "payload": Connected } | { "type": "ack", "payload": Ack } | { "type": "error", "payload": ErrorPayload } | { "type": "pong", "payload": Pong } | { "type": "user:online", "payload": PresenceChange } | { "type": "message", "payload": UserMessage } | { "type": "notification", "payload": Notification } | { "type": "system", "payload": SystemMessage };

/**
 * Body of `POST /api/notifications`: a notification for one user, in the message the
 * app builds from it.
 */
export type NotifyUser = { 
/**
 * The recipient.
 */
userId: string, 
/**
 * Short title.
 */
title: string, 
/**
 * Body text.
 */
body: string, 
/**
 * Application data, any JSON.
 */
data?: unknown, };

/**
 * Payload of `ping`: empty. The server answers with `pong`.
 *
 * ```json
 * {"type": "ping", "payload": {}}
 * ```
 */
export type Ping = Record<symbol, never>;

/**
 * Payload of `pong`, the heartbeat reply to `ping`.
 *
 * ```json
 * {"type": "pong", "payload": {"timestamp": "2024-01-01T12:00:00.000Z"}}
 * ```
 */
export type Pong = { 
/**
 * Server time, RFC 3339 in UTC with milliseconds.
 */
timestamp: string, };

/**
 * Payload of `user:online`: a user who shares a room with the client came online or
 * went offline.
 *
 * ```json
 * {"type": "user:online", "payload": {"userId": "user-uuid", "online": true}}
 * ```
 */
export type PresenceChange = { 
/**
 * The user whose presence changed.
 */
userId: string, 
/**
 * `true` when their first connection opened, `false` when their last one closed.
 */
online: boolean, };

/**
 * Payload of `message:send`.
 */
export type SendMessage = { 
/**
 * The recipients' user ids: one to [`MAX_RECIPIENTS`].
 */
to: Array<string>, 
/**
 * The app's own message type (`chat`, `invite`, …).
 */
type: string, 
/**
 * The app's data, any JSON (`null` when absent).
 */
data?: unknown, };

/**
 * Body of `POST /websocket/message/user`.
 */
export type SendToUser = { 
/**
 * The recipient.
 */
userId: string, 
/**
 * The app's own message type.
 */
type: string, 
/**
 * The app's data, any JSON (`null` when absent).
 */
data?: unknown, };

/**
 * Body of `POST /websocket/message/users`.
 */
export type SendToUsers = { 
/**
 * The recipients: one to 100.
 */
userIds: Array<string>, 
/**
 * The app's own message type.
 */
type: string, 
/**
 * The app's data, any JSON (`null` when absent).
 */
data?: unknown, };

/**
 * Response of the sending endpoints.
 */
export type Sent = { 
/**
 * The stored message's id; absent when a broadcast found nobody connected.
 */
messageId?: string, 
/**
 * Recipients it was stored for.
 */
recipients: number, 
/**
 * Recipients online when it was stored, who have it now; the others get it when
 * they come back.
 */
online: number, };

/**
 * The position of a stored event in one user's numbered stream: the server numbers
 * every event it stores for a user 1, 2, 3, ... Clients remember the last one they saw
 * and resume from it.
 *
 * At most 2^53 − 1, so `JSON.parse` reads it exactly; it is a `number` in TypeScript.
 *
 * ```
 * use relaywire_protocol::Seq;
 *
 * let seq = Seq::new(42).unwrap();
 * assert_eq!(seq.get(), 42);
 * assert!(Seq::new(1 << 53).is_err());
 * ```
 */
export type Seq = number;

/**
 * Payload of `system`.
 */
export type SystemMessage = { 
/**
 * What to tell users.
 */
message: string, 
/**
 * How serious it is.
 */
level: Level, 
/**
 * When it was sent (RFC 3339).
 */
timestamp?: string, };

/**
 * Payload of `message`.
 */
export type UserMessage = { 
/**
 * The message's id, the server's.
 */
id: string, 
/**
 * The sender's user id; absent when a service sent it.
 */
from?: string, 
/**
 * The app's own message type.
 */
type: string, 
/**
 * The app's data, any JSON.
 */
data: unknown, 
/**
 * When it was stored (RFC 3339).
 */
timestamp: string, 
/**
 * Its number in the receiver's stream.
 */
seq?: Seq, };

/**
 * A client message as it travels: with the `id` its `ack` or `error` echoes.
 */
export type ClientEnvelope = { id?: string } & NotifyClient;

/**
 * A server message as it travels. Under protocol 3 the sender's own copy of an event
 * its message stored carries that message's acknowledgement, and no `ack` follows.
 */
export type ServerEnvelope = { ack?: Ack } & NotifyServer;

/**
 * A frame under protocol 3: one message, or several (a batch) handled in order.
 */
export type Frame<M> = M | M[];

/**
 * The messages of `NotifyProtocol`: `new RelaywireClient<NotifyProtocol>(...)`.
 */
export type NotifyProtocol = { client: NotifyClient; server: NotifyServer };

/**
 * What a client does with each message type of `NotifyProtocol`: pass it as the
 * client's `protocol` option.
 */
export const notifyProtocol: {
  readonly name: "NotifyProtocol";
  readonly client: { readonly [K in NotifyClient["type"]]: { readonly delivery: "durable" | "request" | "ephemeral"; readonly key?: string; readonly active?: string; readonly joins?: string; readonly leaves?: string } };
  readonly server: { readonly [K in NotifyServer["type"]]: { readonly numbered: boolean } };
  /** Carries the message types for the client's type parameter; never set. */
  readonly types?: NotifyProtocol;
} = {
  name: "NotifyProtocol",
  client: {
    "auth": { delivery: "request" },
    "ping": { delivery: "ephemeral" },
    "message:send": { delivery: "durable" },
  },
  server: {
    "connected": { numbered: false },
    "ack": { numbered: false },
    "error": { numbered: false },
    "pong": { numbered: false },
    "user:online": { numbered: false },
    "message": { numbered: true },
    "notification": { numbered: true },
    "system": { numbered: false },
  },
};
