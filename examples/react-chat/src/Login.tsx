import { useState, type FormEvent } from "react";
import type { Session } from "relaywire/chat";
import { api } from "./api";

const slug = (name: string) =>
  name
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "");

export function Login({ onSignedIn }: { onSignedIn: (session: Session) => void }) {
  const [name, setName] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const signIn = async (displayName: string) => {
    const userId = slug(displayName);
    if (!userId) {
      setError("Pick a name with at least one letter or digit.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await api.login(userId, displayName.trim()));
    } catch (failure) {
      setError(failure instanceof Error ? failure.message : "Sign-in failed.");
      setBusy(false);
    }
  };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    void signIn(name);
  };

  return (
    <div className="login">
      <form className="login-card" onSubmit={submit}>
        <div className="brand">
          <span className="brand-mark">R</span> Relaywire Chat
        </div>
        <p className="muted">Sign in with any name. The server sets an HTTP-only cookie; the client connects with it.</p>
        <label htmlFor="login-name">Your name</label>
        <input
          id="login-name"
          data-testid="login-name"
          autoFocus
          value={name}
          onChange={(event) => setName(event.target.value)}
          placeholder="Alice"
          maxLength={40}
        />
        {error && <div className="error">{error}</div>}
        <button data-testid="login-submit" type="submit" disabled={busy || !name.trim()}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <div className="quick">
          Demo users:
          {["Alice", "Bob"].map((demo) => (
            <button key={demo} type="button" className="link" onClick={() => void signIn(demo)}>
              {demo}
            </button>
          ))}
        </div>
      </form>
    </div>
  );
}
