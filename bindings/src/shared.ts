/**
 * One connection for every tab of an origin: `SharedRelaywireClient` has the API of
 * `RelaywireClient`, but the tabs that share a `url` and a `key` elect one of them (by
 * a Web Lock) to hold the only socket, and talk to it over a `BroadcastChannel`. Every
 * tab gets every message, its own requests' answers and the leader's snapshot. When
 * the leading tab goes, the lock passes to another tab, which connects and resumes
 * after the last numbered event the tabs saw; each tab sends again what it handed over
 * and saw no answer to, under the same id, so the server stores it once.
 *
 * Where there is no `BroadcastChannel` or Web Locks (old browsers, Node) the client
 * does not share: it holds its own connection.
 *
 * @example
 * ```ts
 * import { chatProtocol } from "relaywire/chat";
 * import { SharedRelaywireClient } from "relaywire/shared";
 *
 * // Every tab signed in as this user shares one socket.
 * const client = new SharedRelaywireClient({ url: "/ws", protocol: chatProtocol, shared: { key: userId } });
 * ```
 */
import {
  RelaywireClient,
  type Ack,
  type ConnectionSnapshot,
  type PayloadOf,
  type Protocol,
  type RelaywireError,
  type RelaywireOptions,
  type ServerMessageOf,
  type ServerMessageType,
} from "./index.js";

/** Which tabs share: those whose client has the same `url`, protocol and `key`. */
export interface SharingOptions {
  /**
   * Who the tabs' connection belongs to. With cookie auth every tab of the origin has
   * the same user, so the default (`""`) is right; where tabs may hold tokens of
   * different users, give each user's id so that only their tabs share.
   */
  key?: string;
}

/** Options of {@link SharedRelaywireClient}: the client's, plus `shared`. */
export type SharedRelaywireOptions<P extends Protocol = Protocol> = RelaywireOptions<P> & {
  /** `true` or {@link SharingOptions}: share the connection with the other tabs. */
  shared?: true | SharingOptions;
};

/** A message the server sent, as the tabs pass it on. */
type ServerMessage = { type: string; payload: unknown };
/** A message a tab hands over; tracked ones carry their id. */
type Outgoing = { type: string; payload?: unknown; id?: string };
/** A rejection, as it crosses the channel (an Error's own fields do not). */
type Failure = { code: string; message: string; details?: unknown };

/** What the tabs say to each other. */
type Wire =
  /** The leader: which tab leads, its snapshot, and the orphans it took (on
   * election, and in answer to a `who`). */
  | { kind: "hello"; leader: string; snapshot: ConnectionSnapshot; adopted: string[] }
  /** A tab that just started: is anyone leading? */
  | { kind: "who" }
  /** The leader's snapshot changed. */
  | { kind: "state"; snapshot: ConnectionSnapshot }
  /** A message from the server, of a type the protocol knows or not. */
  | { kind: "message"; message: ServerMessage; known: boolean }
  /** A tab hands a message to the leader; `id` for tracked ones. */
  | { kind: "submit"; tab: string; message: Outgoing; request: boolean; timeoutMs?: number }
  /** The leader's answer to a tab's tracked message. */
  | { kind: "settle"; tab: string; id: string; ack?: Ack; failure?: Failure }
  /** The leader stops leading; `orphans` are its own unanswered messages (the tab is
   * going away), for the next leader to send. */
  | { kind: "resign"; leader: string; orphans: Outgoing[] };

/** A tracked message this tab handed over and has no answer to yet. */
interface Pending {
  message: Outgoing;
  request: boolean;
  timeoutMs?: number;
  resolve?: (ack: Ack) => void;
  reject?: (error: RelaywireError) => void;
}

/** Longest wait for an answer to a `send()`: tracked messages wait until answered. */
const NO_TIMEOUT_MS = 2 ** 32 - 1;

const IDLE: ConnectionSnapshot = Object.freeze({
  status: "idle",
  attempt: 0,
  nextRetryAt: null,
  lastError: null,
  user: null,
  rooms: Object.freeze([]) as readonly string[],
  onlineUserIds: Object.freeze([]) as readonly string[],
  pending: 0,
});

function relaywireError(code: string, message: string, details?: unknown): RelaywireError {
  const error = new Error(message) as Error & { code: string; details?: unknown };
  error.name = "RelaywireError";
  error.code = code;
  if (details !== undefined) error.details = details;
  return error as unknown as RelaywireError;
}

function failureOf(error: unknown): Failure {
  const { code, message, details } = error as { code?: string; message?: string; details?: unknown };
  return { code: code ?? "CONNECTION_FAILED", message: message ?? String(error), details };
}

function randomId(): string {
  return Math.random().toString(36).slice(2, 10) + Date.now().toString(36).slice(-4);
}

/**
 * A client whose connection the tabs of one origin share (see the module's
 * documentation). Its API is `RelaywireClient`'s; a tab that does not lead sees
 * client-side refusals of `send()` (a full queue, an invalid message) as rejections
 * in the console rather than thrown, as the leading tab decides them.
 */
export class SharedRelaywireClient<P extends Protocol = Protocol> {
  readonly #options: RelaywireOptions<P>;
  readonly #name: string;
  readonly #tab = randomId();
  #nextId = 0;
  #channel: BroadcastChannel | null = null;
  /** Set while this tab waits for or holds the lock; aborts the wait. */
  #abort: AbortController | null = null;
  /** Releases the lock this tab holds. */
  #release: (() => void) | null = null;
  /** The connection, while this tab leads. */
  #client: RelaywireClient<P> | null = null;
  /** The tab that leads, as far as this one knows (itself included). */
  #leader: string | null = null;
  #running = false;
  #snapshot: ConnectionSnapshot = IDLE;
  #lastSeq: number | undefined;
  readonly #pending = new Map<string, Pending>();
  /** A leaving leader's unanswered messages, kept until a leader takes them. */
  #orphans: Outgoing[] = [];
  readonly #handlers = new Map<string, Set<(payload: unknown, message: ServerMessage) => void>>();
  readonly #any = new Set<(message: ServerMessage) => void>();
  readonly #unknown = new Set<(message: ServerMessage) => void>();
  readonly #listeners = new Set<() => void>();
  readonly #onPageHide = () => this.#resign(true);
  /** Back from the back-forward cache: the page led before it went, or may lead now. */
  readonly #onPageShow = (event: PageTransitionEvent) => {
    if (event.persisted && this.#running && this.#client === null) {
      this.#leader = null;
      this.#queueForLock();
    }
  };

  /** Creates a client; it connects at once unless `autoConnect` is `false`. */
  constructor(options: SharedRelaywireOptions<P>) {
    const { shared, ...rest } = options;
    this.#options = rest;
    // Checks the options at once, as `RelaywireClient` does (throws INVALID_OPTIONS).
    new RelaywireClient<P>({ ...rest, autoConnect: false }).free();
    const key = shared === true || shared === undefined ? "" : (shared.key ?? "");
    this.#name = `relaywire ${options.protocol.name} ${options.url} ${key}`;
    this.#lastSeq = options.resumeFrom ?? undefined;
    if (options.autoConnect !== false) this.connect();
  }

  /** Starts sharing: leads when no other tab does, else follows the one that does. */
  connect(): void {
    if (this.#running) {
      this.#client?.connect();
      return;
    }
    this.#running = true;
    const canShare =
      typeof BroadcastChannel === "function" &&
      typeof navigator !== "undefined" &&
      typeof navigator.locks?.request === "function";
    if (!canShare) {
      this.#lead();
      return;
    }
    this.#channel = new BroadcastChannel(this.#name);
    this.#channel.onmessage = (event: MessageEvent<Wire>) => this.#receive(event.data);
    addEventListener("pagehide", this.#onPageHide);
    addEventListener("pageshow", this.#onPageShow);
    this.#setSnapshot({ ...IDLE, status: "connecting" });
    this.#queueForLock();
  }

  /** Waits for the lock (leading when it comes) and asks who leads meanwhile. */
  #queueForLock(): void {
    this.#abort?.abort();
    this.#abort = new AbortController();
    navigator.locks
      .request(this.#name, { signal: this.#abort.signal }, () => {
        if (!this.#running) return undefined;
        this.#lead();
        return new Promise<void>((release) => (this.#release = release));
      })
      .catch(() => {
        // The wait was abandoned by close().
      });
    this.#post({ kind: "who" });
  }

  /**
   * Closes this tab's client: its waiting messages and requests are rejected with
   * `CLIENT_CLOSED`. A leading tab hands the connection to another tab.
   */
  close(): void {
    if (!this.#running) return;
    this.#resign(false);
    this.#running = false;
    this.#abort?.abort();
    this.#abort = null;
    this.#channel?.close();
    this.#channel = null;
    if (typeof removeEventListener === "function") {
      removeEventListener("pagehide", this.#onPageHide);
      removeEventListener("pageshow", this.#onPageShow);
    }
    for (const [id, item] of this.#pending) {
      this.#pending.delete(id);
      item.reject?.(relaywireError("CLIENT_CLOSED", "the client was closed"));
    }
    this.#leader = null;
    this.#setSnapshot({ ...this.#snapshot, status: "closed", pending: 0 });
  }

  /** Hands a message over, as `RelaywireClient.send`. */
  send(message: P["client"] & { id?: string }): void {
    void this.#submit(message, false).catch((error: RelaywireError) => {
      console.warn(`relaywire: ${message.type} was refused: ${error.code}`);
    });
  }

  /** Sends a message and resolves with its `ack`, as `RelaywireClient.request`. */
  request(message: P["client"] & { id?: string }, options?: { timeoutMs?: number }): Promise<Ack> {
    return this.#submit(message, true, options?.timeoutMs);
  }

  /** Calls `handler(payload, message)` for every message of `type`. */
  on<K extends ServerMessageType<P>>(
    type: K,
    handler: (payload: PayloadOf<P, K>, message: ServerMessageOf<P, K>) => void,
  ): () => void {
    const set = this.#handlers.get(type) ?? new Set();
    this.#handlers.set(type, set);
    const entry = handler as unknown as (payload: unknown, message: ServerMessage) => void;
    set.add(entry);
    return () => set.delete(entry);
  }

  /** Calls `handler(message)` for every message of a type the protocol knows. */
  onAny(handler: (message: P["server"]) => void): () => void {
    const entry = handler as (message: ServerMessage) => void;
    this.#any.add(entry);
    return () => this.#any.delete(entry);
  }

  /** Calls `handler(message)` for messages of types the protocol does not know. */
  onUnknown(handler: (message: { type: string; payload: unknown }) => void): () => void {
    this.#unknown.add(handler);
    return () => this.#unknown.delete(handler);
  }

  /** Calls `listener()` whenever the snapshot changes. */
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The leader's connection snapshot: the same object until something changes. */
  getSnapshot(): ConnectionSnapshot {
    return this.#snapshot;
  }

  /** Closes the client (there is no wasm memory of its own to free). */
  free(): void {
    this.close();
  }

  /** Whether this tab is the one connected. */
  get leading(): boolean {
    return this.#client !== null;
  }

  #post(message: Wire): void {
    this.#channel?.postMessage(message);
  }

  #setSnapshot(snapshot: ConnectionSnapshot): void {
    this.#snapshot = Object.isFrozen(snapshot) ? snapshot : Object.freeze(snapshot);
    for (const listener of this.#listeners) listener();
  }

  /** This tab takes the connection: it connects, resuming where the tabs are. */
  #lead(): void {
    const client = new RelaywireClient<P>({
      ...this.#options,
      resumeFrom: this.#lastSeq ?? null,
      autoConnect: false,
    });
    this.#client = client;
    client.onAny((message) => this.#fromServer(message as ServerMessage, true));
    client.onUnknown((message) => this.#fromServer(message, false));
    client.subscribe(() => {
      const snapshot = client.getSnapshot();
      this.#setSnapshot(snapshot);
      this.#post({ kind: "state", snapshot });
    });
    client.connect();
    this.#leader = this.#tab;
    this.#setSnapshot(client.getSnapshot());
    const adopted = this.#adoptOrphans();
    this.#post({ kind: "hello", leader: this.#tab, snapshot: client.getSnapshot(), adopted });
    for (const id of this.#pending.keys()) this.#dispatch(id);
  }

  /** Stops leading (on `close()`, or when the page goes: then its own unanswered
   * messages go to the next leader instead of being rejected). */
  #resign(leaving: boolean): void {
    const client = this.#client;
    if (client === null) return;
    this.#client = null;
    const orphans: Outgoing[] = [];
    if (leaving) {
      // They stay pending here too: a page back from the back-forward cache sends them
      // again (same ids) and hears their answers.
      for (const [id, item] of this.#pending) orphans.push({ ...item.message, id });
    }
    this.#post({ kind: "resign", leader: this.#tab, orphans });
    client.close();
    client.free();
    this.#release?.();
    this.#release = null;
    this.#leader = null;
  }

  /** The leader sends the orphans it holds (nobody waits for their answers); returns
   * their ids, so the other tabs do not send them too. */
  #adoptOrphans(): string[] {
    const client = this.#client;
    if (client === null) return [];
    const adopted: string[] = [];
    for (const message of this.#orphans.splice(0)) {
      if (message.id !== undefined) adopted.push(message.id);
      try {
        client.request(message as P["client"], { timeoutMs: NO_TIMEOUT_MS }).catch(() => {});
      } catch {
        // Refused by the client's own checks: it was accepted once, so this cannot be.
      }
    }
    return adopted;
  }

  /** Hands the orphans this tab holds to the current leader. */
  #forwardOrphans(): void {
    for (const message of this.#orphans.splice(0)) {
      this.#post({ kind: "submit", tab: "", message, request: true, timeoutMs: NO_TIMEOUT_MS });
    }
  }

  /** A message from the server: numbered ones seen before are dropped, as a client
   * drops replays; the leader passes every message on to the other tabs. */
  #fromServer(message: ServerMessage, known: boolean): void {
    const seq = (message.payload as { seq?: unknown } | null)?.seq;
    if (known && this.#options.protocol.server[message.type]?.numbered && typeof seq === "number") {
      if (this.#lastSeq !== undefined && seq <= this.#lastSeq) return;
      this.#lastSeq = seq;
    }
    if (this.#client !== null) this.#post({ kind: "message", message, known });
    const calls: (() => void)[] = [];
    if (known) {
      for (const handler of this.#handlers.get(message.type) ?? []) calls.push(() => handler(message.payload, message));
      for (const handler of this.#any) calls.push(() => handler(message));
    } else {
      for (const handler of this.#unknown) calls.push(() => handler(message));
    }
    for (const call of calls) {
      try {
        call();
      } catch (error) {
        console.error("relaywire: a handler threw", error);
      }
    }
  }

  #submit(message: Outgoing, request: boolean, timeoutMs?: number): Promise<Ack> {
    if (!this.#running) return Promise.reject(relaywireError("CLIENT_CLOSED", "the client is closed"));
    const policy = this.#options.protocol.client[message.type];
    if (policy === undefined) {
      return Promise.reject(relaywireError("INVALID_MESSAGE", "no such client message type in the protocol"));
    }
    if (policy.delivery === "ephemeral") {
      if (request) return Promise.reject(relaywireError("INVALID_MESSAGE", "an ephemeral message gets no answer"));
      // Sent only while connected, as everywhere: dropped while no tab leads.
      try {
        if (this.#client !== null) this.#client.send(message as P["client"]);
        else if (this.#leader !== null) this.#post({ kind: "submit", tab: this.#tab, message, request: false });
      } catch (error) {
        return Promise.reject(error);
      }
      return Promise.resolve({} as Ack);
    }
    const id = message.id ?? `${this.#tab}-${(this.#nextId += 1).toString(36)}`;
    return new Promise<Ack>((resolve, reject) => {
      this.#pending.set(id, { message: { ...message, id }, request, timeoutMs, resolve, reject });
      this.#dispatch(id);
    });
  }

  /** Hands a pending message to the connection: this tab's, or the leader's. */
  #dispatch(id: string): void {
    const item = this.#pending.get(id);
    if (item === undefined) return;
    const timeoutMs = item.request ? item.timeoutMs : NO_TIMEOUT_MS;
    const client = this.#client;
    if (client !== null) {
      let answer: Promise<Ack>;
      try {
        answer = client.request(item.message as P["client"], { timeoutMs });
      } catch (error) {
        answer = Promise.reject(error);
      }
      answer.then(
        (ack) => this.#settle(id, ack, undefined),
        (error) => {
          // This tab stopped leading: the message waits for the next leader.
          if (this.#client === client) this.#settle(id, undefined, failureOf(error));
        },
      );
    } else if (this.#leader !== null) {
      this.#post({ kind: "submit", tab: this.#tab, message: item.message, request: true, timeoutMs });
    }
    // Otherwise it waits for a leader's hello.
  }

  #settle(id: string, ack: Ack | undefined, failure: Failure | undefined): void {
    const item = this.#pending.get(id);
    if (item === undefined) return;
    this.#pending.delete(id);
    if (failure === undefined) item.resolve?.(ack as Ack);
    else item.reject?.(relaywireError(failure.code, failure.message, failure.details));
  }

  #receive(wire: Wire): void {
    if (!this.#running) return;
    switch (wire.kind) {
      case "who":
        if (this.#client !== null) {
          this.#post({ kind: "hello", leader: this.#tab, snapshot: this.#client.getSnapshot(), adopted: [] });
        }
        break;
      case "hello": {
        if (this.#client !== null) break;
        this.#setSnapshot(wire.snapshot);
        const adopted = new Set(wire.adopted);
        this.#orphans = this.#orphans.filter((message) => !adopted.has(message.id ?? ""));
        if (this.#leader !== wire.leader) {
          // A new leader: what this tab handed over and saw no answer to goes again,
          // under the same ids, with the orphans the new leader did not take.
          this.#leader = wire.leader;
          for (const id of this.#pending.keys()) this.#dispatch(id);
          this.#forwardOrphans();
        }
        break;
      }
      case "state":
        if (this.#client === null) this.#setSnapshot(wire.snapshot);
        break;
      case "message":
        if (this.#client === null) this.#fromServer(wire.message, wire.known);
        break;
      case "submit":
        this.#forward(wire);
        break;
      case "settle":
        if (wire.tab === this.#tab) this.#settle(wire.id, wire.ack, wire.failure);
        break;
      case "resign":
        this.#orphans.push(...wire.orphans);
        if (this.#client !== null) {
          // Heard after this tab took over.
          this.#adoptOrphans();
        } else if (this.#leader === wire.leader) {
          this.#leader = null;
          this.#setSnapshot({ ...this.#snapshot, status: "reconnecting" });
        } else if (this.#leader !== null) {
          // Heard after the next leader's hello.
          this.#forwardOrphans();
        }
        break;
    }
  }

  /** The leader sends another tab's message and answers it. */
  #forward(wire: Extract<Wire, { kind: "submit" }>): void {
    const client = this.#client;
    if (client === null) return;
    const { tab, message } = wire;
    if (!wire.request || message.id === undefined) {
      try {
        client.send(message as P["client"]);
      } catch {
        // An ephemeral message that cannot go now is dropped, as it would be anywhere.
      }
      return;
    }
    const id = message.id;
    let answer: Promise<Ack>;
    try {
      answer = client.request(message as P["client"], { timeoutMs: wire.timeoutMs });
    } catch (error) {
      answer = Promise.reject(error);
    }
    answer.then(
      (ack) => this.#post({ kind: "settle", tab, id, ack }),
      (error) => {
        // Closing this leader: the tab sends it again to the next one.
        if (this.#client !== client) return;
        this.#post({ kind: "settle", tab, id, failure: failureOf(error) });
      },
    );
  }
}
