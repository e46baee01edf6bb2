// A client module for React Server Components (Next.js App Router): the provider and
// hooks render on the server, and run in the browser.
"use client";

/**
 * React bindings for Relaywire: one client per tree, its state through
 * `useSyncExternalStore`, and typed message subscriptions. Thin by design: the
 * reconnecting, queueing and ephemeral-state logic lives in the client.
 *
 * `createRelaywire(protocol)` returns the provider and hooks typed for one protocol;
 * the plain exports are the same functions, typed for any protocol.
 *
 * @example
 * ```tsx
 * import { chatProtocol } from "relaywire/chat";
 * import { createRelaywire } from "relaywire/react";
 *
 * const { RelaywireProvider, useMessage, useRelaywire } = createRelaywire(chatProtocol);
 *
 * <RelaywireProvider options={{ url: "/ws" }}>
 *   <Chat />
 * </RelaywireProvider>;
 * ```
 */
import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useRef,
  useState,
  useSyncExternalStore,
  type ReactNode,
} from "react";
import {
  RelaywireClient,
  type ConnectionSnapshot,
  type PayloadOf,
  type Protocol,
  type ProtocolDescriptor,
  type ServerMessageOf,
  type ServerMessageType,
} from "./index.js";
import { SharedRelaywireClient, type SharedRelaywireOptions } from "./shared.js";

const ClientContext = createContext<RelaywireClient<Protocol> | null>(null);

/** How many mounted providers hold a client, and a pending close. */
interface Lease {
  holders: number;
  connected: boolean;
  closing: ReturnType<typeof setTimeout> | undefined;
}

const leases = new WeakMap<RelaywireClient<Protocol>, Lease>();

/**
 * Connects on the first holder and closes after the last one lets go. The close waits
 * a task, so React StrictMode's mount, unmount, mount opens one socket, closes
 * nothing and loses no queued message.
 */
function hold(client: RelaywireClient<Protocol>): () => void {
  const lease = leases.get(client) ?? { holders: 0, connected: false, closing: undefined };
  leases.set(client, lease);
  lease.holders += 1;
  clearTimeout(lease.closing);
  lease.closing = undefined;
  if (!lease.connected) {
    lease.connected = true;
    client.connect();
  }
  return () => {
    lease.holders -= 1;
    if (lease.holders > 0) return;
    lease.closing = setTimeout(() => {
      if (lease.holders === 0) {
        lease.connected = false;
        client.close();
      }
    }, 0);
  };
}

/** Props of {@link RelaywireProvider}: options for a client it owns (with `shared`, one
 * whose connection the tabs share), or a client. */
export type RelaywireProviderProps<P extends Protocol = Protocol> =
  | { options: SharedRelaywireOptions<P>; client?: never; children?: ReactNode }
  | { client: RelaywireClient<P> | SharedRelaywireClient<P>; options?: never; children?: ReactNode };

/**
 * Owns one client for the tree below: connects on mount, closes on unmount. `options`
 * are read once; give the provider a new `key` to connect differently. Rendered on a
 * server, it renders the `idle` snapshot and never connects: the browser connects in
 * an effect after hydration.
 */
export function RelaywireProvider<P extends Protocol>(props: RelaywireProviderProps<P>): ReactNode {
  const [client] = useState(() => {
    if (props.client !== undefined) return props.client as unknown as RelaywireClient<Protocol>;
    const options = { ...props.options, autoConnect: false };
    const owned = options.shared === undefined ? new RelaywireClient<P>(options) : new SharedRelaywireClient<P>(options);
    return owned as unknown as RelaywireClient<Protocol>;
  });
  useEffect(() => hold(client), [client]);
  return <ClientContext.Provider value={client}>{props.children}</ClientContext.Provider>;
}

/** The client of the nearest provider. */
export function useRelaywire<P extends Protocol = Protocol>(): RelaywireClient<P> {
  const client = useContext(ClientContext);
  if (client === null) {
    throw new Error("useRelaywire must be used inside a <RelaywireProvider>");
  }
  return client as unknown as RelaywireClient<P>;
}

/** The connection snapshot; re-renders only when it changes. */
export function useConnection(): ConnectionSnapshot {
  const client = useRelaywire();
  const subscribe = useCallback((listener: () => void) => client.subscribe(listener), [client]);
  const snapshot = useCallback(() => client.getSnapshot(), [client]);
  return useSyncExternalStore(subscribe, snapshot, snapshot);
}

/** The signed-in user from `connected`, or `null` before it arrives. */
export function useUser(): ConnectionSnapshot["user"] {
  return useConnection().user;
}

/** Stable `send` and `request` functions of the client. */
export function useSend<P extends Protocol = Protocol>(): Pick<RelaywireClient<P>, "send" | "request"> {
  const client = useRelaywire<P>();
  const [functions] = useState(() => ({
    send: client.send.bind(client),
    request: client.request.bind(client),
  }));
  return functions;
}

/**
 * Calls `handler(payload, message)` for every message of `type` while the component is
 * mounted. The handler may change between renders without resubscribing.
 */
export function useMessage<P extends Protocol = Protocol, K extends ServerMessageType<P> = ServerMessageType<P>>(
  type: K,
  handler: (payload: PayloadOf<P, K>, message: ServerMessageOf<P, K>) => void,
): void {
  const client = useRelaywire<P>();
  const latest = useRef(handler);
  useEffect(() => {
    latest.current = handler;
  });
  useEffect(
    () => client.on(type, (payload, message) => latest.current(payload, message)),
    [client, type],
  );
}

/** The provider and hooks of {@link createRelaywire}, typed for one protocol. */
export interface RelaywireBindings<P extends Protocol> {
  /** {@link RelaywireProvider} whose `options` need no `protocol`. */
  RelaywireProvider(
    props:
      | { options: Omit<SharedRelaywireOptions<P>, "protocol">; client?: never; children?: ReactNode }
      | { client: RelaywireClient<P> | SharedRelaywireClient<P>; options?: never; children?: ReactNode },
  ): ReactNode;
  /** {@link useRelaywire}. */
  useRelaywire(): RelaywireClient<P>;
  /** {@link useConnection}. */
  useConnection(): ConnectionSnapshot;
  /** {@link useUser}. */
  useUser(): ConnectionSnapshot["user"];
  /** {@link useSend}. */
  useSend(): Pick<RelaywireClient<P>, "send" | "request">;
  /** {@link useMessage}, narrowing on the protocol's own message types. */
  useMessage<K extends ServerMessageType<P>>(
    type: K,
    handler: (payload: PayloadOf<P, K>, message: ServerMessageOf<P, K>) => void,
  ): void;
}

/**
 * The provider and hooks for one protocol, typed by its descriptor: a misspelt
 * message type fails to compile, and handlers see their payload types.
 */
export function createRelaywire<P extends Protocol>(protocol: ProtocolDescriptor<P>): RelaywireBindings<P> {
  return {
    RelaywireProvider: (props) =>
      props.client !== undefined ? (
        <RelaywireProvider client={props.client}>{props.children}</RelaywireProvider>
      ) : (
        <RelaywireProvider options={{ ...props.options, protocol } as SharedRelaywireOptions<P>}>
          {props.children}
        </RelaywireProvider>
      ),
    useRelaywire: () => useRelaywire<P>(),
    useConnection,
    useUser,
    useSend: () => useSend<P>(),
    useMessage: (type, handler) => useMessage<P, typeof type>(type, handler),
  };
}
