import { useEffect, useState } from "react";
import type { Session } from "relaywire/chat";
import { RelaywireProvider } from "./relaywire";
import { api } from "./api";
import { ChatApp } from "./ChatApp";
import { Login } from "./Login";

/** Signs in with the server's dev login (an HTTP-only cookie), then opens the chat. */
export function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);

  useEffect(() => {
    api.me().then(setSession, () => setSession(null));
  }, []);

  if (session === undefined) return <div className="splash">Loading…</div>;
  if (session === null) return <Login onSignedIn={setSession} />;
  return (
    // The cookie authenticates the WebSocket: nothing to configure but the URL.
    <RelaywireProvider key={session.userId} options={{ url: "/ws" }}>
      <ChatApp
        session={session}
        onSignOut={() => {
          api.logout().finally(() => setSession(null));
        }}
      />
    </RelaywireProvider>
  );
}
