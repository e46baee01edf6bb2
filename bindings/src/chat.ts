/**
 * The chat protocol of Relaywire's reference apps (the `relaywire-chat` catalogue),
 * built on the public client API: its types, its descriptor, and helpers for its
 * messages.
 *
 * @example
 * ```ts
 * import { RelaywireClient } from "relaywire";
 * import { chatProtocol, joinChat, sendChatMessage } from "relaywire/chat";
 *
 * const client = new RelaywireClient({ url: "/ws", protocol: chatProtocol });
 * await joinChat(client, "general");
 * await sendChatMessage(client, "general", "Hello!");
 * ```
 */
import type { Ack, RelaywireClient } from "./index.js";
import type { ChatProtocol } from "./chat-protocol.js";

export * from "./chat-protocol.js";

/** A client of the chat protocol. */
export type ChatClient = RelaywireClient<ChatProtocol>;

/** Posts a chat message; resolves with the `ack` carrying the stored message id. */
export function sendChatMessage(client: ChatClient, chatId: string, content: string): Promise<Ack> {
  return client.request({ type: "chat:message", payload: { chatId, content } });
}

/** Marks a message (and those before it) as read. */
export function markRead(client: ChatClient, chatId: string, messageId: string): Promise<Ack> {
  return client.request({ type: "chat:read", payload: { chatId, messageId } });
}

/** Joins an open chat; the snapshot's `rooms` include it once acknowledged. */
export function joinChat(client: ChatClient, chatId: string): Promise<Ack> {
  return client.request({ type: "chat:join", payload: { chatId } });
}

/** Leaves a chat. */
export function leaveChat(client: ChatClient, chatId: string): Promise<Ack> {
  return client.request({ type: "chat:leave", payload: { chatId } });
}

/**
 * Shows or hides the typing indicator in a chat. Call it on every keystroke: the
 * client limits what it sends and sends the stop by itself when the calls stop.
 */
export function setTyping(client: ChatClient, chatId: string, isTyping: boolean): void {
  client.send({ type: "chat:typing", payload: { chatId, isTyping } });
}
