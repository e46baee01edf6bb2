/**
 * React bindings for Relaywire: one client per tree, its state through
 * `useSyncExternalStore`, and typed message subscriptions. Thin by design: the
 * reconnecting, queueing and typing logic lives in the client.
 *
 * @example
 * ```tsx
 * import { RelaywireProvider, useConnection, useMessage, useRelaywire } from "relaywire/react";
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
  type RelaywireOptions,
  type ServerMessageOf,
  type ServerMessageType,
} from "./index.js";

const ClientContext = createContext<RelaywireClient | null>(null);

/** How many mounted providers hold a client, and a pending close. */
interface Lease {
  holders: number;
  connected: boolean;
  closing: ReturnType<typeof setTimeout> | undefined;
}

const leases = new WeakMap<RelaywireClient, Lease>();

/**
 * Connects on the first holder and closes after the last one lets go. The close waits
 * a task, so React StrictMode's mount, unmount, mount opens one socket, closes
 * nothing and loses no queued message.
 */
function hold(client: RelaywireClient): () => void {
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

/** Props of {@link RelaywireProvider}: options for a client it owns, or a client. */
export type RelaywireProviderProps =
  | { options: RelaywireOptions; client?: never; children?: ReactNode }
  | { client: RelaywireClient; options?: never; children?: ReactNode };

/**
 * Owns one client for the tree below: connects on mount, closes on unmount. `options`
 * are read once; give the provider a new `key` to connect differently.
 */
export function RelaywireProvider(props: RelaywireProviderProps): ReactNode {
  const [client] = useState(
    () => props.client ?? new RelaywireClient({ ...props.options, autoConnect: false }),
  );
  useEffect(() => hold(client), [client]);
  return <ClientContext.Provider value={client}>{props.children}</ClientContext.Provider>;
}

/** The client of the nearest provider. */
export function useRelaywire(): RelaywireClient {
  const client = useContext(ClientContext);
  if (client === null) {
    throw new Error("useRelaywire must be used inside a <RelaywireProvider>");
  }
  return client;
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
export function useSend(): Pick<RelaywireClient, "send" | "request"> {
  const client = useRelaywire();
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
export function useMessage<K extends ServerMessageType>(
  type: K,
  handler: (payload: PayloadOf<K>, message: ServerMessageOf<K>) => void,
): void {
  const client = useRelaywire();
  const latest = useRef(handler);
  useEffect(() => {
    latest.current = handler;
  });
  useEffect(
    () => client.on(type, (payload, message) => latest.current(payload, message)),
    [client, type],
  );
}
