// A catalogue defined outside Relaywire's library crates (the task board of the test
// crate, `tests/src/tasks.rs`) types the prebuilt client exactly as the chat's does:
// the client's type comes from the generated descriptor, handlers narrow on the board's
// own messages, and mistakes fail to compile.
import { RelaywireClient } from "./generated/relaywire_client";
import { taskProtocol, type TaskAdded, type TaskProtocol } from "../bindings/tasks";

export function board(url: string): RelaywireClient<TaskProtocol> {
  const client = new RelaywireClient({ url, protocol: taskProtocol, autoConnect: false });
  client.on("task:added", (task: TaskAdded) => {
    const title: string = task.title;
    const seq: number | undefined = task.seq;
    void title;
    void seq;
  });
  client.on("board:viewing", (viewing) => {
    const looking: boolean = viewing.viewing;
    void looking;
  });
  // @ts-expect-error a chat message type is not the board's
  client.on("chat:message", () => {});
  // @ts-expect-error a field of another message
  client.on("task:done", (done) => done.title);
  return client;
}

export async function work(client: RelaywireClient<TaskProtocol>): Promise<string | undefined> {
  client.send({ type: "board:join", payload: { boardId: "ideas" } });
  client.send({ type: "board:viewing", payload: { boardId: "ideas", viewing: true } });
  // @ts-expect-error the state's switch is required
  client.send({ type: "board:viewing", payload: { boardId: "ideas" } });
  // @ts-expect-error a misspelt message type
  client.send({ type: "task:ad", payload: { boardId: "ideas", title: "t" } });
  // @ts-expect-error a server message cannot be sent
  client.send({ type: "task:added", payload: { id: "t1", boardId: "ideas", title: "t", addedBy: "me" } });
  const ack = await client.request({ type: "task:add", payload: { boardId: "ideas", title: "a mascot" } });
  return ack.messageId;
}

// The descriptor carries each line's class, read by the client at run time.
export const durable: "durable" | "request" | "ephemeral" = taskProtocol.client["task:add"].delivery;
export const numbered: boolean = taskProtocol.server["task:added"].numbered;
