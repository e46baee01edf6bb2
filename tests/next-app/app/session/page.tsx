import { SessionChat } from "./SessionChat";

// A server component: the chat below renders on the server in its idle state, then
// connects in the browser with a token from the app's own session.
export default function SessionPage() {
  return (
    <main>
      <h1>Session chat</h1>
      <SessionChat />
    </main>
  );
}
