/**
 * Relaywire: typed realtime messaging with a reconnecting WebSocket client.
 *
 * Importing this module compiles the client's WebAssembly (embedded in the package),
 * so `new RelaywireClient(...)` works at once, in any bundler, with no configuration.
 *
 * @example
 * ```ts
 * import { RelaywireClient } from "relaywire";
 *
 * const client = new RelaywireClient({ url: "/ws" });
 * client.on("chat:message", (payload) => console.log(payload.message.content));
 * ```
 */
import { initSync } from "./relaywire_client.js";
import wasm from "./relaywire_client_wasm.js";

/** One character per byte; escaped bytes are stored 256 higher, hence the mask. */
function decode(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i += 1) bytes[i] = text.charCodeAt(i) & 0xff;
  return bytes;
}

initSync({ module: decode(wasm) });

export { RelaywireClient } from "./relaywire_client.js";
export type * from "./relaywire_client.js";
