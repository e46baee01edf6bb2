// The task board of the test crate, a catalogue the prebuilt browser client was not
// compiled with, in headless Chromium: the page loads the npm package and the board's
// generated descriptor, and two users work on a board through the real server.
//
// Run by `cargo xtask test tasks`, which builds the package, compiles the board's
// TypeScript and starts its server; it passes RELAYWIRE_APP (the server's URL).
import { chromium } from "playwright-core";
import { CHROMIUM_FLAGS, CHROMIUM_PATH } from "./chromium.mjs";

const app = process.env.RELAYWIRE_APP;
if (!app) throw new Error("RELAYWIRE_APP is not set: run this with `cargo xtask test tasks`");

async function token(userId) {
  const response = await fetch(`${app}/test/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userId, ttlSecs: 3600 }),
  });
  if (!response.ok) throw new Error(`/test/token answered ${response.status}`);
  return (await response.json()).token;
}

const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_FLAGS });
let failed = false;
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(`${app}/tasks.html`);
  await page.waitForSelector("body[data-ready]", { state: "attached", timeout: 10000 });
  const tokens = { alice: await token("alice"), bob: await token("bob"), carol: await token("carol") };

  const result = await page.evaluate(async (tokens) => {
    const { RelaywireClient, taskProtocol } = window.relaywire;
    const url = `${location.origin.replace(/^http/, "ws")}/ws`;
    const connect = (user) =>
      new RelaywireClient({ url, protocol: taskProtocol, auth: { token: tokens[user] } });
    const open = (client) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const status = client.getSnapshot().status;
          if (status === "open") resolve(client.getSnapshot());
          else if (status === "failed" || status === "unauthorized") reject(new Error(status));
        };
        client.subscribe(check);
        check();
      });
    const next = (client, type, accept = () => true) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${type} within 5 s`)), 5000);
        const stop = client.on(type, (payload) => {
          if (!accept(payload)) return;
          clearTimeout(timer);
          stop();
          resolve(payload);
        });
      });
    const code = (promise) => promise.then(() => "resolved", (error) => error.code);

    const alice = connect("alice");
    const bob = connect("bob");
    const carol = connect("carol");
    const [bobSession] = await Promise.all([open(bob), open(alice), open(carol)]);

    // A durable message: acknowledged once stored, fanned out numbered.
    const added = next(bob, "task:added");
    const ack = await alice.request({ type: "task:add", payload: { boardId: "launch", title: "write the post" } });
    const task = await added;

    // A request refused with its code; an open board joined, and the snapshot follows.
    const notMember = await code(carol.request({ type: "task:add", payload: { boardId: "launch", title: "x" } }));
    const closed = await code(carol.request({ type: "board:join", payload: { boardId: "launch" } }));
    await carol.request({ type: "board:join", payload: { boardId: "ideas" } });
    await alice.request({ type: "board:join", payload: { boardId: "ideas" } });
    const carolRooms = [...carol.getSnapshot().rooms];

    // An ephemeral state: on while sent, and the client stops it by itself on close.
    const viewing = next(alice, "board:viewing", (v) => v.userId === "carol" && v.viewing);
    carol.send({ type: "board:viewing", payload: { boardId: "ideas", viewing: true } });
    const on = await viewing;
    const stopped = next(alice, "board:viewing", (v) => v.userId === "carol" && !v.viewing);
    const offline = next(alice, "user:online", (p) => p.userId === "carol" && !p.online);
    carol.close();
    const off = await stopped;
    await offline;

    // A request that finishes the task: numbered after the task in Bob's stream.
    const done = next(bob, "task:done");
    await alice.request({ type: "task:done", payload: { boardId: "launch", taskId: task.id } });
    const finished = await done;
    for (const client of [alice, bob]) client.close();
    return {
      bobRooms: [...bobSession.rooms],
      ackMatches: ack.messageId === task.id,
      addedBy: task.addedBy,
      taskSeq: task.seq,
      doneSeq: finished.seq,
      notMember,
      closed,
      carolRooms,
      viewing: [on.viewing, off.viewing],
    };
  }, tokens);

  const expect = (condition, what) => {
    if (!condition) throw new Error(`expected ${what}: ${JSON.stringify(result)}`);
  };
  expect(result.bobRooms.join() === "launch", "bob on the launch board");
  expect(result.ackMatches && result.addedBy === "alice", "the ack naming the stored task");
  expect(Number.isInteger(result.taskSeq) && result.doneSeq === result.taskSeq + 1, "numbered events");
  expect(result.notMember === "NOT_PARTICIPANT" && result.closed === "FORBIDDEN", "coded refusals");
  expect(result.carolRooms.join() === "ideas", "the snapshot following the join");
  expect(result.viewing.join() === "true,false", "the viewing state on, then off");
  expect(errors.length === 0, `no page errors: ${errors.join("; ")}`);
  console.log("tasks: a catalogue from the test crate drives the browser client");
} catch (error) {
  failed = true;
  console.error("tasks failed:", error);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
