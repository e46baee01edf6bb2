import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import type { RelaywireError } from "relaywire";
import { joinChat, markRead, sendChatMessage, setTyping as sendTyping, type ChatMessage, type ChatSummary, type Session } from "relaywire/chat";
import { useConnection, useMessage, useRelaywire } from "./relaywire";
import { api } from "./api";
import { ConnectionBadge } from "./ConnectionBadge";
import { Composer } from "./Composer";
import { Toasts, type Toast } from "./Toasts";

/** A message the user sent that the server has not acknowledged yet. */
interface Outgoing {
  key: number;
  chatId: string;
  content: string;
  error?: string;
}

type ByChat<T> = Record<string, T>;

/** Merges `incoming` into `known`, keeping the server's order and each message once. */
function merge(known: ChatMessage[], incoming: ChatMessage[]): ChatMessage[] {
  const seen = new Set(known.map((m) => m.id));
  const added = incoming.filter((m) => !seen.has(m.id));
  return added.length === 0 ? known : [...known, ...added];
}

const initials = (name: string) =>
  name
    .split(/\s+/)
    .map((part) => part[0] ?? "")
    .join("")
    .slice(0, 2)
    .toUpperCase();

/** Marks a closed chat (members are added by an admin, not by joining). */
function LockIcon() {
  return (
    <svg className="lock" viewBox="0 0 16 16" width="12" height="12" aria-label="Closed chat">
      <title>Closed chat</title>
      <path
        fill="currentColor"
        d="M4 7V5a4 4 0 1 1 8 0v2h1a1 1 0 0 1 1 1v6a1 1 0 0 1-1 1H3a1 1 0 0 1-1-1V8a1 1 0 0 1 1-1h1Zm2 0h4V5a2 2 0 1 0-4 0v2Z"
      />
    </svg>
  );
}

const time = (iso: string) =>
  new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

export function ChatApp({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const client = useRelaywire();
  const connection = useConnection();
  const open = connection.status === "open";
  const me = session.userId;

  const [chats, setChats] = useState<ChatSummary[]>([]);
  const [selected, setSelected] = useState<string | null>(null);
  const [messages, setMessages] = useState<ByChat<ChatMessage[]>>({});
  const [receipts, setReceipts] = useState<ByChat<ByChat<string>>>({});
  const [typing, setTyping] = useState<ByChat<ByChat<string>>>({});
  const [outbox, setOutbox] = useState<Outgoing[]>([]);
  const [toasts, setToasts] = useState<Toast[]>([]);
  const nextKey = useRef(0);

  const toast = useCallback((entry: Omit<Toast, "key">) => {
    nextKey.current += 1;
    const key = nextKey.current;
    setToasts((all) => [...all, { ...entry, key }]);
    setTimeout(() => setToasts((all) => all.filter((t) => t.key !== key)), 6000);
  }, []);

  // The chat list: on every (re)connect, and when joins or leaves change it.
  const chatIds = connection.rooms.join(",");
  useEffect(() => {
    if (!open) return;
    api.chats().then(setChats, () => undefined);
  }, [open, chatIds]);

  const joined = useMemo(() => chats.filter((c) => c.participantIds.includes(me) || connection.rooms.includes(c.id)), [chats, me, connection.rooms]);
  const joinable = useMemo(() => chats.filter((c) => !joined.includes(c)), [chats, joined]);

  useEffect(() => {
    if (selected === null && joined.length > 0) setSelected(joined[0]!.id);
  }, [selected, joined]);

  // History and receipts of the open chat: when it is selected, and after every
  // reconnect, so whatever happened while disconnected shows up.
  useEffect(() => {
    if (!open || selected === null) return;
    let current = true;
    api.history(selected).then((page) => {
      if (current) setMessages((all) => ({ ...all, [selected]: merge(page.messages, all[selected] ?? []) }));
    }, () => undefined);
    api.receipts(selected).then((list) => {
      if (!current) return;
      const positions: ByChat<string> = {};
      for (const receipt of list) positions[receipt.userId] = receipt.messageId;
      setReceipts((all) => ({ ...all, [selected]: positions }));
    }, () => undefined);
    return () => {
      current = false;
    };
  }, [open, selected]);

  useMessage("chat:message", ({ chatId, message }) => {
    setMessages((all) => ({ ...all, [chatId]: merge(all[chatId] ?? [], [message]) }));
    setTyping((all) => {
      const { [message.senderId]: _stopped, ...rest } = all[chatId] ?? {};
      return { ...all, [chatId]: rest };
    });
  });
  useMessage("chat:read", ({ chatId, userId, messageId }) => {
    setReceipts((all) => ({ ...all, [chatId]: { ...all[chatId], [userId]: messageId } }));
  });
  useMessage("chat:typing", ({ chatId, userId, userName, isTyping }) => {
    setTyping((all) => {
      const { [userId]: _old, ...rest } = all[chatId] ?? {};
      return { ...all, [chatId]: isTyping ? { ...rest, [userId]: userName } : rest };
    });
  });
  useMessage("notification", ({ title, body }) => toast({ kind: "info", title, body }));
  useMessage("system", ({ message, level }) => toast({ kind: level, title: "System", body: message }));

  // Mark what is on screen as read.
  const shown = selected === null ? [] : (messages[selected] ?? []);
  const lastFromOthers = [...shown].reverse().find((m) => m.senderId !== me);
  const marked = useRef<ByChat<string>>({});
  useEffect(() => {
    if (!open || selected === null || lastFromOthers === undefined) return;
    if (marked.current[selected] === lastFromOthers.id) return;
    marked.current[selected] = lastFromOthers.id;
    markRead(client, selected, lastFromOthers.id).catch(() => {
      delete marked.current[selected];
    });
  }, [client, open, selected, lastFromOthers]);

  const send = (content: string) => {
    if (selected === null) return;
    nextKey.current += 1;
    const key = nextKey.current;
    setOutbox((all) => [...all, { key, chatId: selected, content }]);
    sendChatMessage(client, selected, content).then(
      () => setOutbox((all) => all.filter((o) => o.key !== key)),
      (error: RelaywireError) =>
        setOutbox((all) => all.map((o) => (o.key === key ? { ...o, error: error.code } : o))),
    );
  };

  const join = (chatId: string) => {
    joinChat(client, chatId).then(
      () => setSelected(chatId),
      (error: RelaywireError) => toast({ kind: "error", title: "Cannot join", body: error.message }),
    );
  };

  const chat = chats.find((c) => c.id === selected);
  const names = useMemo(() => {
    const known: ByChat<string> = { [me]: session.name };
    for (const list of Object.values(messages)) for (const m of list) known[m.senderId] = m.senderName;
    return known;
  }, [messages, me, session.name]);
  const typists = Object.entries(typing[selected ?? ""] ?? {})
    .filter(([userId]) => userId !== me)
    .map(([, name]) => name);
  const readers = receipts[selected ?? ""] ?? {};
  const pending = outbox.filter((o) => o.chatId === selected);

  return (
    <div className="app">
      <header className="topbar">
        <div className="brand">
          <span className="brand-mark">R</span> Relaywire Chat
        </div>
        <ConnectionBadge snapshot={connection} onRetry={() => client.connect()} />
        <div className="me">
          <span className="avatar small">{initials(session.name)}</span>
          <span data-testid="me">{session.name}</span>
          <button className="link" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </header>

      <aside className="sidebar">
        <h2>Chats</h2>
        <ul className="chats">
          {joined.map((c) => (
            <li key={c.id}>
              <button
                data-testid="chat-item"
                data-chat-id={c.id}
                className={c.id === selected ? "chat active" : "chat"}
                onClick={() => setSelected(c.id)}
              >
                <span className="hash">#</span>
                {c.title}
                {!c.open && <LockIcon />}
              </button>
            </li>
          ))}
        </ul>
        {joinable.length > 0 && (
          <>
            <h2>Open chats</h2>
            <ul className="chats">
              {joinable.map((c) => (
                <li key={c.id} className="joinable">
                  <span>
                    <span className="hash">#</span>
                    {c.title}
                  </span>
                  <button data-testid="join" className="small" onClick={() => join(c.id)}>
                    Join
                  </button>
                </li>
              ))}
            </ul>
          </>
        )}
        <h2>Online</h2>
        <ul className="people">
          <li data-testid="online-user" data-user-id={me}>
            <span className="dot" /> {session.name} <span className="muted">(you)</span>
          </li>
          {connection.onlineUserIds.map((userId) => (
            <li key={userId} data-testid="online-user" data-user-id={userId}>
              <span className="dot" /> {names[userId] ?? userId}
            </li>
          ))}
        </ul>
      </aside>

      <main className="chat-view">
        {chat === undefined ? (
          <div className="empty">Join a chat to start talking.</div>
        ) : (
          <>
            <div className="chat-header">
              <h1>
                <span className="hash">#</span>
                {chat.title}
              </h1>
              <span className="muted">{chat.participantIds.length} members</span>
            </div>
            <ol className="messages" data-testid="messages">
              {shown.map((m) => {
                const seenBy = Object.entries(readers)
                  .filter(([userId, messageId]) => messageId === m.id && userId !== m.senderId && userId !== me)
                  .map(([userId]) => names[userId] ?? userId);
                const mine = m.senderId === me;
                return (
                  <li key={m.id} className={mine ? "message mine" : "message"} data-testid="message" data-message-id={m.id}>
                    {!mine && <span className="avatar">{initials(m.senderName)}</span>}
                    <div className="bubble">
                      <div className="meta">
                        {!mine && <strong>{m.senderName}</strong>}
                        <time>{time(m.createdAt)}</time>
                      </div>
                      <div className="content">{m.content}</div>
                      {seenBy.length > 0 && (
                        <div className="seen" data-testid="receipt">
                          Seen by {seenBy.join(", ")}
                        </div>
                      )}
                    </div>
                  </li>
                );
              })}
              {pending.map((o) => (
                <li key={`pending-${o.key}`} className="message mine pending" data-testid="message" data-pending="true">
                  <div className="bubble">
                    <div className="content">{o.content}</div>
                    <div className="seen">{o.error ? `Not sent (${o.error})` : open ? "Sending…" : "Waiting for the connection…"}</div>
                  </div>
                </li>
              ))}
            </ol>
            <div className="typing" data-testid="typing-indicator">
              {typists.length > 0 && `${typists.join(", ")} ${typists.length === 1 ? "is" : "are"} typing…`}
            </div>
            <Composer
              key={chat.id}
              onTyping={(active) => sendTyping(client, chat.id, active)}
              onSend={send}
              disabled={connection.status === "unauthorized" || connection.status === "closed"}
            />
          </>
        )}
      </main>
      <Toasts toasts={toasts} />
    </div>
  );
}
