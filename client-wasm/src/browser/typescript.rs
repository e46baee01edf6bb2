//! The TypeScript the package's `.d.ts` carries for the class (whose generated
//! declaration is skipped): the control messages every protocol shares, the generic
//! client, its options and snapshot. A protocol's own types come from its generated
//! file (`relaywire/chat` for the chat protocol) and reach the client through its type
//! parameter: `RelaywireClient<ChatProtocol>`.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const CONTROL: &str = include_str!("../../../bindings/relaywire.ts");

#[wasm_bindgen(typescript_custom_section)]
const CLIENT_TYPES: &str = r#"
/**
 * A protocol's messages, as its generated TypeScript exports them (e.g. `ChatProtocol`
 * from "relaywire/chat"): what `RelaywireClient<P>` sends and receives.
 */
export interface Protocol {
  client: { type: string; payload: unknown };
  server: { type: string; payload: unknown };
}

/** What a client does with the messages of one client message type. */
export interface ClientPolicy {
  /** `durable`: stored once, resent until acknowledged; `request`: answered, resent
   * until answered; `ephemeral`: sent only while connected. */
  readonly delivery: "durable" | "request" | "ephemeral";
  /** An ephemeral state: the string field that names it... */
  readonly key?: string;
  /** ...and the boolean field that switches it; the client stops it by itself. */
  readonly active?: string;
  /** The room field its acknowledgement joins. */
  readonly joins?: string;
  /** The room field its acknowledgement leaves. */
  readonly leaves?: string;
}

/**
 * What the client must know of a protocol it was not compiled with: each message
 * type's policy. A protocol's generated TypeScript exports one (`chatProtocol`).
 */
export interface ProtocolDescriptor<P extends Protocol = Protocol> {
  readonly name: string;
  readonly client: { readonly [type: string]: ClientPolicy };
  readonly server: { readonly [type: string]: { readonly numbered: boolean } };
  /** Carries the message types for the client's type parameter; never set. */
  readonly types?: P;
}

/** Every server message type of `P`. */
export type ServerMessageType<P extends Protocol> = P["server"]["type"];

/** The server message of `P` with type `K`. */
export type ServerMessageOf<P extends Protocol, K extends ServerMessageType<P>> = Extract<
  P["server"],
  { type: K }
>;

/** The payload of `P`'s server message type `K`. */
export type PayloadOf<P extends Protocol, K extends ServerMessageType<P>> = ServerMessageOf<
  P,
  K
>["payload"];

/** Options of `new RelaywireClient(options)`. Every field but `url` and `protocol` is optional. */
export interface RelaywireOptions<P extends Protocol = Protocol> {
  /** `wss://host/ws`, `https://host/ws`, or a path such as `/ws` on the page's host
   * (resolved when connecting, so a server may render a client it never connects). */
  url: string;
  /** The protocol's descriptor, from its generated TypeScript (e.g. `chatProtocol`). */
  protocol: ProtocolDescriptor<P>;
  /**
   * How the client proves who it is: the session cookie (default; the browser sends
   * it), a fixed token, or `getToken`, called before every connect and with
   * `forceRefresh: true` once when the server says the token expired. `null` means
   * signed out; a rejection means try again later.
   */
  auth?:
    | "cookie"
    | { token: string }
    | { getToken: (context: { forceRefresh: boolean }) => Promise<string | null> | string | null };
  /** Where a token travels: a first `auth` message (default) or the `?token=` query. */
  tokenTransport?: "message" | "query";
  /** Extra query parameters, read on every connect (a function is called each time). */
  params?: Record<string, string> | (() => Record<string, string>);
  /**
   * Retries: the n-th waits `min(maxDelayMs, initialDelayMs * factor^(n-1))` less a
   * random share of up to `jitter` of it. Defaults: 1000 ms, 30000 ms, 2, 0.5,
   * unbounded (`maxAttempts: null`), reset after 5000 ms of healthy connection.
   * `false` never retries.
   */
  reconnect?:
    | false
    | {
        initialDelayMs?: number;
        maxDelayMs?: number;
        factor?: number;
        jitter?: number;
        maxAttempts?: number | null;
        resetAfterMs?: number;
      };
  /**
   * Pings every `intervalMs` (30000; the server's value wins) and treats no traffic
   * within `timeoutMs` (10000) as a dead connection. `false` disables it.
   */
  heartbeat?: false | { intervalMs?: number; timeoutMs?: number };
  /** A connect attempt not open within this many ms is abandoned (10000). */
  connectTimeoutMs?: number;
  /** Messages that may wait for the connection or an answer (1000). */
  queueSize?: number;
  /** Timeout of `request()` when none is given (10000 ms). */
  requestTimeoutMs?: number;
  /**
   * The `seq` of the last numbered message the app kept (in `localStorage`, say): the
   * first connect resumes after it, so the server replays what came since. By default
   * the client starts at the server's newest event.
   */
  resumeFrom?: number | null;
  /** The WebSocket class to connect with, where there is no global one (Node before
   * 22: `WebSocket` from the `ws` package). The global `WebSocket` by default. */
  WebSocket?: new (url: string, protocol: string) => object;
  /** Connect at once (true). */
  autoConnect?: boolean;
  /** Log status changes to the console (false). */
  debug?: boolean;
}

/** The connection's status. */
export type ConnectionStatus =
  | "idle"
  | "connecting"
  | "open"
  | "reconnecting"
  | "offline"
  | "unauthorized"
  | "closed"
  | "failed";

/** What `getSnapshot()` returns: frozen, and the same object until something changes. */
export interface ConnectionSnapshot {
  readonly status: ConnectionStatus;
  /** Retries since the last healthy connection. */
  readonly attempt: number;
  /** When the next attempt starts (epoch ms), while waiting to retry. */
  readonly nextRetryAt: number | null;
  /** The last failure: an error code, and the close code that came with it. */
  readonly lastError: {
    readonly code: ErrorCode | ClientErrorCode;
    readonly closeCode: number | null;
  } | null;
  /** The user from `connected`. */
  readonly user: { readonly id: string; readonly name: string | null } | null;
  /** The rooms the user belongs to (the chat protocol's chats), kept up to date by
   * acknowledged joins and leaves. */
  readonly rooms: readonly string[];
  /** Users sharing a room with the user who are online. */
  readonly onlineUserIds: readonly string[];
  /** Messages waiting to be sent or acknowledged. */
  readonly pending: number;
}

/** What the client throws and rejects with. */
export interface RelaywireError extends Error {
  readonly name: "RelaywireError";
  readonly code: ErrorCode | ClientErrorCode;
  /** The server's `details`, for server errors. */
  readonly details?: unknown;
}

/**
 * A typed, reconnecting connection for the protocol `P`, over the browser's WebSocket.
 * `P` comes from the `protocol` option: `new RelaywireClient({ url, protocol: chatProtocol })`
 * is a `RelaywireClient<ChatProtocol>`.
 */
export class RelaywireClient<P extends Protocol = Protocol> {
  /** Creates a client; it connects at once unless `autoConnect` is `false`. Throws a
   * `RelaywireError` with code `INVALID_OPTIONS` for bad options. */
  constructor(options: RelaywireOptions<P>);
  /** Connects, or retries at once when waiting to retry; after `close()` or a terminal
   * failure it starts over. Throws `INVALID_OPTIONS` when there is nothing to connect
   * with: a path `url` where there is no page, or no `WebSocket`. */
  connect(): void;
  /** Closes for good: waiting messages and requests are rejected with `CLIENT_CLOSED`,
   * and no socket, timer or page listener is left behind. */
  close(): void;
  /** Hands a message over; what happens to it is its type's policy. Throws a
   * `RelaywireError` when it cannot be accepted. A tracked message keeps an `id` it is
   * given (1 to 128 bytes, unique per user: the server stores one message per id);
   * without one the client numbers it. */
  send(message: P["client"] & { id?: string }): void;
  /** Sends a message and resolves with its `ack`; rejects with the server's `error`
   * code, `TIMEOUT`, or why it could not be sent. */
  request(message: P["client"] & { id?: string }, options?: { timeoutMs?: number }): Promise<Ack>;
  /** Calls `handler(payload, message)` for every message of `type`; returns the
   * function that unsubscribes it. */
  on<K extends ServerMessageType<P>>(
    type: K,
    handler: (payload: PayloadOf<P, K>, message: ServerMessageOf<P, K>) => void,
  ): () => void;
  /** Calls `handler(message)` for every message of a type the protocol knows. */
  onAny(handler: (message: P["server"]) => void): () => void;
  /** Calls `handler(message)` for messages of types the protocol does not know (sent
   * by a newer server). */
  onUnknown(handler: (message: { type: string; payload: unknown }) => void): () => void;
  /** Calls `listener()` whenever the snapshot changes; for `useSyncExternalStore`. */
  subscribe(listener: () => void): () => void;
  /** The connection snapshot: the same object until something changes. */
  getSnapshot(): ConnectionSnapshot;
  /** Frees the client's memory; `close()` first. */
  free(): void;
}
"#;
