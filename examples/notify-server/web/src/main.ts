// The notification service's page: sign in with the dev login (an HTTP-only cookie),
// then one typed client for the service's protocol. Every message and notification the
// server stores for the user appears in the inbox, numbered; `system` announcements
// show in a banner.
import { RelaywireClient, type RelaywireError } from "relaywire";
import { notifyProtocol } from "../../bindings/notify";

function element<T extends HTMLElement>(testId: string): T {
  const found = document.querySelector<T>(`[data-testid="${testId}"]`);
  if (found === null) throw new Error(`the page has no ${testId}`);
  return found;
}

function field(form: HTMLFormElement, name: string): string {
  const value = new FormData(form).get(name);
  return typeof value === "string" ? value.trim() : "";
}

function addToInbox(kind: "message" | "notification", text: string, seq: number | undefined): void {
  const item = document.createElement("li");
  item.dataset.testid = kind;
  if (seq !== undefined) item.dataset.seq = String(seq);
  item.textContent = text;
  element("inbox").append(item);
}

function start(userId: string): void {
  element("user").textContent = userId;
  // The last numbered message this browser showed the user: the next page load resumes
  // after it, so what arrived while no page was open is replayed, and nothing twice.
  const seqKey = `relaywire-notify.seq.${userId}`;
  const kept = Number(localStorage.getItem(seqKey) ?? Number.NaN);
  const keep = (seq: number | undefined) => {
    if (seq !== undefined) localStorage.setItem(seqKey, String(seq));
  };
  const client = new RelaywireClient({
    url: "/ws",
    protocol: notifyProtocol,
    resumeFrom: Number.isInteger(kept) ? kept : null,
  });

  const status = element("status");
  client.subscribe(() => {
    const snapshot = client.getSnapshot();
    status.dataset.status = snapshot.status;
    status.dataset.closeCode = String(snapshot.lastError?.closeCode ?? "");
    status.textContent = snapshot.lastError === null ? snapshot.status : `${snapshot.status} (${snapshot.lastError.code})`;
  });

  client.on("message", (message) => {
    const data = message.data as { text?: unknown } | null;
    const text = typeof data?.text === "string" ? data.text : JSON.stringify(message.data);
    addToInbox("message", `${message.from ?? "service"} [${message.type}]: ${text}`, message.seq);
    keep(message.seq);
  });
  client.on("notification", (notification) => {
    addToInbox("notification", `${notification.title}: ${notification.body}`, notification.seq);
    keep(notification.seq);
  });
  client.on("system", (system) => {
    const banner = element("system");
    banner.hidden = false;
    banner.dataset.level = system.level;
    banner.textContent = system.message;
  });

  const form = element<HTMLFormElement>("send");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const to = field(form, "to")
      .split(",")
      .map((user) => user.trim())
      .filter((user) => user !== "");
    const result = element("send-result");
    result.textContent = "sending";
    client
      .request({ type: "message:send", payload: { to, type: field(form, "type"), data: { text: field(form, "text") } } })
      .then((ack) => {
        result.dataset.result = "sent";
        result.textContent = `sent ${ack.messageId ?? ""}`;
      })
      .catch((error: RelaywireError) => {
        result.dataset.result = error.code;
        result.textContent = `${error.code}: ${error.message}`;
      });
  });
}

const login = element<HTMLFormElement>("login");
login.addEventListener("submit", (event) => {
  event.preventDefault();
  const userId = field(login, "user");
  void fetch("/auth/dev-login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userId }),
  }).then((response) => {
    if (!response.ok) throw new Error(`dev login answered ${response.status}`);
    login.hidden = true;
    element("app").hidden = false;
    start(userId);
  });
});
