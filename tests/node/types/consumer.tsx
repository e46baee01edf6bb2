// An app's use of the package's public types, compiled with `skipLibCheck: false`
// under the Vite and Next.js templates' settings (tsconfig.vite.json,
// tsconfig.next.json): every declaration the package ships must check.
import { RelaywireClient, type ConnectionSnapshot, type RelaywireError } from "relaywire";
import { chatProtocol, joinChat, sendChatMessage, type ChatProtocol } from "relaywire/chat";
import { createRelaywire } from "relaywire/react";

const { RelaywireProvider, useConnection, useMessage } = createRelaywire(chatProtocol);

export function App() {
  return (
    <RelaywireProvider options={{ url: "/ws", auth: { getToken: async () => "token" } }}>
      <Status />
    </RelaywireProvider>
  );
}

function Status() {
  const snapshot: ConnectionSnapshot = useConnection();
  useMessage("chat:message", ({ message }) => console.log(message.content));
  return <p>{snapshot.status}</p>;
}

export async function plain(): Promise<string> {
  const client: RelaywireClient<ChatProtocol> = new RelaywireClient({ url: "/ws", protocol: chatProtocol });
  try {
    await joinChat(client, "general");
    return (await sendChatMessage(client, "general", "hi")).messageId ?? "";
  } catch (error) {
    return (error as RelaywireError).code;
  } finally {
    client.close();
  }
}
