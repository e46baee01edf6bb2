// A CommonJS consumer. The package is an ES module without top-level await, so
// `require()` loads it where Node can require ES modules (22.12+, or 20.17+ with
// `--experimental-require-module`), and `import()` works from CommonJS everywhere.
const assert = require("node:assert/strict");
const { RelaywireClient } = require("relaywire");
const { chatProtocol } = require("relaywire/chat");

const client = new RelaywireClient({ url: "ws://127.0.0.1:9/ws", protocol: chatProtocol, autoConnect: false });
assert.equal(client.getSnapshot().status, "idle");
client.close();
import("relaywire").then((imported) => {
  assert.equal(imported.RelaywireClient, RelaywireClient);
  console.log("commonjs: ok");
});
