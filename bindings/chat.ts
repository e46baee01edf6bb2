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
 * Body of `POST /api/chats/{chatId}/participants`.
 */
export type AddParticipants = { 
/**
 * The users to add.
 */
userIds: Array<string>, };

/**
 * The body of every HTTP API error.
 */
export type ApiError = { 
/**
 * What went wrong.
 */
error: ErrorPayload, };

/**
 * Payload of `event`: an application-defined event.
 */
export type AppEvent = { 
/**
 * The application's event name, e.g. `"order:shipped"`.
 */
name: string, 
/**
 * Any JSON.
 */
data: unknown, };

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
 * Body of `POST /api/messages/broadcast`: push a message to every connected user.
 */
export type Broadcast<S> = { 
/**
 * A message the app lets admins push.
 */
message: S, };

/**
 * Response of `GET /api/chats` and `GET /api/me/chats`.
 */
export type ChatList = { 
/**
 * The chats, oldest first.
 */
chats: Array<ChatSummary>, };

/**
 * A stored chat message.
 */
export type ChatMessage = { 
/**
 * Server-assigned id.
 */
id: string, 
/**
 * The chat it belongs to.
 */
chatId: string, 
/**
 * The author.
 */
senderId: string, 
/**
 * The author's display name when the message was sent.
 */
senderName: string, 
/**
 * The text.
 */
content: string, 
/**
 * When the server stored it, RFC 3339 in UTC with milliseconds.
 */
createdAt: string, };

/**
 * A chat as the HTTP API returns it.
 */
export type ChatSummary = { 
/**
 * The chat id.
 */
id: string, 
/**
 * Its display title.
 */
title: string, 
/**
 * Whether anyone may join it with `chat:join`.
 */
open: boolean, 
/**
 * Its participants.
 */
participantIds: Array<string>, 
/**
 * When it was created, RFC 3339 in UTC with milliseconds.
 */
createdAt: string, };

/**
 * The code of a failure a client raises by itself, never sent on the wire: the
 * `code` of a rejected Promise in JavaScript, beside `ErrorCode`.
 */
export type ClientErrorCode = "TIMEOUT" | "QUEUE_FULL" | "CLIENT_CLOSED" | "CONNECTION_FAILED" | "INVALID_OPTIONS" | "CONNECTION_CLOSED";

/**
 * A message a chat client sends to the server.
 *
 * On the wire each message is a JSON text frame `{"type": "...", "payload": {...}}`;
 * a `ClientEnvelope` adds the optional client-assigned `id` the server echoes in
 * its `ack` or `error`.
 */
export type ClientMessage = { "type": "auth", "payload": Authenticate } | { "type": "ping", "payload": Ping } | { "type": "chat:message", "payload": SendMessage } | { "type": "chat:read", "payload": MarkRead } | { "type": "chat:typing", "payload": SetTyping } | { "type": "chat:join", "payload": JoinChat } | { "type": "chat:leave", "payload": LeaveChat };

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
 * Response of `GET /api/users/connected`.
 */
export type ConnectedUsers = { 
/**
 * Every user with an open connection.
 */
users: Array<UserStatus>, };

/**
 * Body of `POST /api/chats`.
 */
export type CreateChat = { 
/**
 * The id to use; the server makes one up when absent.
 */
id?: string, 
/**
 * Display title.
 */
title: string, 
/**
 * Whether anyone may join it (default: closed).
 */
open?: boolean, 
/**
 * Its first participants.
 */
participantIds?: Array<string>, };

/**
 * Response of the push endpoints: how far the message got.
 */
export type Delivery = { 
/**
 * Recipients with at least one open connection.
 */
usersReached: number, 
/**
 * Connections the message was queued on.
 */
connectionsReached: number, };

/**
 * Body of `POST /auth/dev-login` (local development only).
 */
export type DevLogin = { 
/**
 * The user to sign in as.
 */
userId: string, 
/**
 * Display name; defaults to the user id.
 */
name?: string, };

/**
 * Response of `DELETE /api/users/{userId}/connections`.
 */
export type Disconnected = { 
/**
 * Connections closed.
 */
connectionsClosed: number, };

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
 * Payload of client `chat:join`.
 */
export type JoinChat = { 
/**
 * An open chat.
 */
chatId: string, };

/**
 * Payload of client `chat:leave`.
 */
export type LeaveChat = { 
/**
 * A chat the client participates in.
 */
chatId: string, };

/**
 * Payload of client `chat:read`.
 */
export type MarkRead = { 
/**
 * The chat the message belongs to.
 */
chatId: string, 
/**
 * The message read; earlier messages count as read too.
 */
messageId: string, };

/**
 * Payload of server `chat:message`.
 */
export type MessageCreated = { 
/**
 * The chat the message was posted in.
 */
chatId: string, 
/**
 * The stored message.
 */
message: ChatMessage, 
/**
 * Its event number; a client that saw it already drops it.
 */
seq?: Seq, };

/**
 * Response of `GET /api/chats/{chatId}/messages?before=&after=&limit=`.
 */
export type MessagePage = { 
/**
 * Messages in the order they were sent.
 */
messages: Array<ChatMessage>, 
/**
 * Whether more messages lie beyond this page in the direction asked for.
 */
hasMore: boolean, };

/**
 * Payload of `notification`.
 */
export type Notification = { 
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
 * Body of `POST /api/messages/user`: push a message to one user's connections.
 */
export type PushToUser<S> = { 
/**
 * The recipient.
 */
userId: string, 
/**
 * A message the app lets admins push (for the chat server: `notification`,
 * `system` or `event`).
 */
message: S, };

/**
 * Body of `POST /api/messages/users`: push a message to several users.
 */
export type PushToUsers<S> = { 
/**
 * The recipients.
 */
userIds: Array<string>, 
/**
 * A message the app lets admins push.
 */
message: S, };

/**
 * Payload of server `chat:read`.
 */
export type ReadReceipt = { 
/**
 * The chat the message belongs to.
 */
chatId: string, 
/**
 * The message read.
 */
messageId: string, 
/**
 * The reader.
 */
userId: string, 
/**
 * When it was read, RFC 3339 in UTC with milliseconds.
 */
readAt: string, 
/**
 * Its event number; a client that saw it already drops it.
 */
seq?: Seq, };

/**
 * Response of `GET /api/chats/{chatId}/receipts`: where each participant has read to.
 */
export type ReceiptList = { 
/**
 * The latest receipt of each participant who has read something.
 */
receipts: Array<ReadReceipt>, };

/**
 * Payload of client `chat:message`.
 */
export type SendMessage = { 
/**
 * The chat to post in; the sender must be a participant.
 */
chatId: string, 
/**
 * The text; not empty, at most `Limits::max_content_chars` characters.
 */
content: string, };

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
 * A message the chat server sends to a client.
 *
 * On the wire each message is a JSON text frame `{"type": "...", "payload": {...}}`.
 * A type this version does not know decodes to `Unknown` (Rust only) instead of
 * failing, so older clients keep working when servers add messages.
 */
export type ServerMessage = { "type": "connected", "payload": Connected } | { "type": "ack", "payload": Ack } | { "type": "error", "payload": ErrorPayload } | { "type": "pong", "payload": Pong } | { "type": "user:online", "payload": PresenceChange } | { "type": "chat:message", "payload": MessageCreated } | { "type": "chat:read", "payload": ReadReceipt } | { "type": "chat:typing", "payload": TypingIndicator } | { "type": "notification", "payload": Notification } | { "type": "system", "payload": SystemNotice } | { "type": "event", "payload": AppEvent };

/**
 * Who a session belongs to: the response of `POST /auth/dev-login` and `GET /api/me`.
 */
export type Session = { 
/**
 * The user id.
 */
userId: string, 
/**
 * Display name.
 */
name: string, 
/**
 * Whether the user has at least one open connection.
 */
online: boolean, };

/**
 * Payload of client `chat:typing`.
 */
export type SetTyping = { 
/**
 * The chat being typed in.
 */
chatId: string, 
/**
 * `true` when typing starts; the server expires it after the typing timeout.
 */
isTyping: boolean, };

/**
 * Severity of a `SystemNotice`.
 */
export type SystemLevel = "info" | "warning" | "error";

/**
 * Payload of `system`.
 */
export type SystemNotice = { 
/**
 * The notice.
 */
message: string, 
/**
 * How serious it is.
 */
level: SystemLevel, };

/**
 * Payload of server `chat:typing`.
 */
export type TypingIndicator = { 
/**
 * The chat being typed in.
 */
chatId: string, 
/**
 * Who is typing.
 */
userId: string, 
/**
 * Their display name.
 */
userName: string, 
/**
 * `false` when they stopped, or when the server expired the indicator.
 */
isTyping: boolean, };

/**
 * A user's connection status: `GET /api/users/{userId}/status`, and the rows of
 * `GET /api/users/connected`.
 */
export type UserStatus = { 
/**
 * The user.
 */
userId: string, 
/**
 * Whether they have at least one open connection.
 */
online: boolean, 
/**
 * How many connections they have open.
 */
connections: number, 
/**
 * When their oldest open connection was established.
 */
connectedSince?: string, };

/**
 * A client message as it travels: with the `id` its `ack` or `error` echoes.
 */
export type ClientEnvelope = { id?: string } & ClientMessage;

/**
 * A server message as it travels. Under protocol 3 the sender's own copy of an event
 * its message stored carries that message's acknowledgement, and no `ack` follows.
 */
export type ServerEnvelope = { ack?: Ack } & ServerMessage;

/**
 * A frame under protocol 3: one message, or several (a batch) handled in order.
 */
export type Frame<M> = M | M[];

/**
 * The messages of `ChatProtocol`: `new RelaywireClient<ChatProtocol>(...)`.
 */
export type ChatProtocol = { client: ClientMessage; server: ServerMessage };

/**
 * What a client does with each message type of `ChatProtocol`: pass it as the
 * client's `protocol` option.
 */
export const chatProtocol: {
  readonly name: "ChatProtocol";
  readonly client: { readonly [K in ClientMessage["type"]]: { readonly delivery: "durable" | "request" | "ephemeral"; readonly key?: string; readonly active?: string; readonly joins?: string; readonly leaves?: string } };
  readonly server: { readonly [K in ServerMessage["type"]]: { readonly numbered: boolean } };
  /** Carries the message types for the client's type parameter; never set. */
  readonly types?: ChatProtocol;
} = {
  name: "ChatProtocol",
  client: {
    "auth": { delivery: "request" },
    "ping": { delivery: "ephemeral" },
    "chat:message": { delivery: "durable" },
    "chat:read": { delivery: "request" },
    "chat:typing": { delivery: "ephemeral", key: "chatId", active: "isTyping" },
    "chat:join": { delivery: "request", joins: "chatId" },
    "chat:leave": { delivery: "request", leaves: "chatId" },
  },
  server: {
    "connected": { numbered: false },
    "ack": { numbered: false },
    "error": { numbered: false },
    "pong": { numbered: false },
    "user:online": { numbered: false },
    "chat:message": { numbered: true },
    "chat:read": { numbered: true },
    "chat:typing": { numbered: false },
    "notification": { numbered: false },
    "system": { numbered: false },
    "event": { numbered: false },
  },
};
