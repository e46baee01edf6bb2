//! The TypeScript the package's `.d.ts` carries besides the class: the generated
//! protocol types, the options and snapshot shapes, and the typed `on`.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const PROTOCOL: &str = include_str!("../../../bindings/protocol.ts");

#[wasm_bindgen(typescript_custom_section)]
const CLIENT_TYPES: &str = r#"
/** Options of `new RelaywireClient(options)`. Every field but `url` is optional. */
export interface RelaywireOptions {
  /** `wss://host/ws`, `https://host/ws`, or a path such as `/ws` on the page's host. */
  url: string;
  /**
   * How the client proves who it is: the session cookie (default; the browser sends
   * it), a fixed token, or `getToken`, called before every connect and with
   * `forceRefresh: true` once when the server says the token expired.
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
  /** Messages that may wait for the connection or an ack (1000). */
  queueSize?: number;
  /** Timeout of `request()` and the helpers when none is given (10000 ms). */
  requestTimeoutMs?: number;
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
    readonly code: ErrorCode | ClientErrorCode | "CONNECTION_CLOSED";
    readonly closeCode: number | null;
  } | null;
  /** The user from `connected`. */
  readonly user: { readonly id: string; readonly name: string | null } | null;
  /** The user's chats, kept up to date by joins and leaves. */
  readonly chatIds: readonly string[];
  /** Users sharing a chat with the user who are online. */
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

/** Every server message type. */
export type ServerMessageType = ServerMessage["type"];

/** The message of one type. */
export type ServerMessageOf<K extends ServerMessageType> = Extract<ServerMessage, { type: K }>;

/** The payload of one message type. */
export type PayloadOf<K extends ServerMessageType> = ServerMessageOf<K>["payload"];

export interface RelaywireClient {
  /**
   * Calls `handler(payload, message)` for every message of type `type`; returns the
   * function that unsubscribes it.
   */
  on<K extends ServerMessageType>(
    type: K,
    handler: (payload: PayloadOf<K>, message: ServerMessageOf<K>) => void,
  ): () => void;
}
"#;
