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
 * Payload of `task:add`.
 */
export type AddTask = { 
/**
 * The board.
 */
boardId: string, 
/**
 * What is to be done; not empty.
 */
title: string, };

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
 * Payload of client `task:done`.
 */
export type FinishTask = { 
/**
 * The board.
 */
boardId: string, 
/**
 * The task.
 */
taskId: string, };

/**
 * Payload of `board:join`.
 */
export type JoinBoard = { 
/**
 * The board.
 */
boardId: string, };

/**
 * Payload of `board:leave`.
 */
export type LeaveBoard = { 
/**
 * The board.
 */
boardId: string, };

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
 * Payload of client `board:viewing`.
 */
export type SetViewing = { 
/**
 * The board.
 */
boardId: string, 
/**
 * `true` while looking at it.
 */
viewing: boolean, };

/**
 * Payload of `task:added`.
 */
export type TaskAdded = { 
/**
 * The task's id, the server's.
 */
id: string, 
/**
 * The board.
 */
boardId: string, 
/**
 * What is to be done.
 */
title: string, 
/**
 * Who added it.
 */
addedBy: string, 
/**
 * Its number in the receiver's stream.
 */
seq?: Seq, };

/**
 * What a task board client sends.
 */
export type TaskClient = { "type": "auth", "payload": Authenticate } | { "type": "ping", "payload": Ping } | { "type": "task:add", "payload": AddTask } | { "type": "task:done", "payload": FinishTask } | { "type": "board:join", "payload": JoinBoard } | { "type": "board:leave", "payload": LeaveBoard } | { "type": "board:viewing", "payload": SetViewing };

/**
 * Payload of server `task:done`.
 */
export type TaskDone = { 
/**
 * The board.
 */
boardId: string, 
/**
 * The task.
 */
taskId: string, 
/**
 * Who finished it.
 */
doneBy: string, 
/**
 * Its number in the receiver's stream.
 */
seq?: Seq, };

/**
 * What the task board server sends.
 */
export type TaskServer = { "type": "connected", "payload": Connected } | { "type": "ack", "payload": Ack } | { "type": "error", "payload": ErrorPayload } | { "type": "pong", "payload": Pong } | { "type": "user:online", "payload": PresenceChange } | { "type": "task:added", "payload": TaskAdded } | { "type": "task:done", "payload": TaskDone } | { "type": "board:viewing", "payload": Viewing };

/**
 * Payload of server `board:viewing`.
 */
export type Viewing = { 
/**
 * The board.
 */
boardId: string, 
/**
 * Who.
 */
userId: string, 
/**
 * `false` when they stopped, or when the server expired it.
 */
viewing: boolean, };

/**
 * A client message as it travels: with the `id` its `ack` or `error` echoes.
 */
export type ClientEnvelope = { id?: string } & TaskClient;

/**
 * A server message as it travels. Under protocol 3 the sender's own copy of an event
 * its message stored carries that message's acknowledgement, and no `ack` follows.
 */
export type ServerEnvelope = { ack?: Ack } & TaskServer;

/**
 * A frame under protocol 3: one message, or several (a batch) handled in order.
 */
export type Frame<M> = M | M[];

/**
 * The messages of `TaskProtocol`: `new RelaywireClient<TaskProtocol>(...)`.
 */
export type TaskProtocol = { client: TaskClient; server: TaskServer };

/**
 * What a client does with each message type of `TaskProtocol`: pass it as the
 * client's `protocol` option.
 */
export const taskProtocol: {
  readonly name: "TaskProtocol";
  readonly client: { readonly [K in TaskClient["type"]]: { readonly delivery: "durable" | "request" | "ephemeral"; readonly key?: string; readonly active?: string; readonly joins?: string; readonly leaves?: string } };
  readonly server: { readonly [K in TaskServer["type"]]: { readonly numbered: boolean } };
  /** Carries the message types for the client's type parameter; never set. */
  readonly types?: TaskProtocol;
} = {
  name: "TaskProtocol",
  client: {
    "auth": { delivery: "request" },
    "ping": { delivery: "ephemeral" },
    "task:add": { delivery: "durable" },
    "task:done": { delivery: "request" },
    "board:join": { delivery: "request", joins: "boardId" },
    "board:leave": { delivery: "request", leaves: "boardId" },
    "board:viewing": { delivery: "ephemeral", key: "boardId", active: "viewing" },
  },
  server: {
    "connected": { numbered: false },
    "ack": { numbered: false },
    "error": { numbered: false },
    "pong": { numbered: false },
    "user:online": { numbered: false },
    "task:added": { numbered: true },
    "task:done": { numbered: true },
    "board:viewing": { numbered: false },
  },
};
