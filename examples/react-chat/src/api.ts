// The reference server's HTTP API, typed with the shapes the chat catalogue generates.
import type {
  ApiError,
  ChatList,
  ChatSummary,
  MessagePage,
  ReceiptList,
  Session,
} from "relaywire/chat";

/** An HTTP API failure, with the protocol's error code. */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(path, {
    method,
    credentials: "include",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    const failure = (await response.json().catch(() => null)) as ApiError | null;
    throw new ApiFailure(
      response.status,
      failure?.error.code ?? "HTTP_ERROR",
      failure?.error.message ?? response.statusText,
    );
  }
  return response.status === 204 ? (undefined as T) : ((await response.json()) as T);
}

export const api = {
  me: () => call<Session>("GET", "/api/me"),
  login: (userId: string, name: string) => call<Session>("POST", "/auth/dev-login", { userId, name }),
  logout: () => call<void>("POST", "/auth/logout"),
  chats: async (): Promise<ChatSummary[]> => (await call<ChatList>("GET", "/api/me/chats")).chats,
  history: (chatId: string) =>
    call<MessagePage>("GET", `/api/chats/${encodeURIComponent(chatId)}/messages?limit=200`),
  receipts: async (chatId: string) =>
    (await call<ReceiptList>("GET", `/api/chats/${encodeURIComponent(chatId)}/receipts`)).receipts,
};
