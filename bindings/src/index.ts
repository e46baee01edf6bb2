/**
 * Relaywire: typed realtime messaging with a reconnecting WebSocket client, for any
 * protocol defined with Relaywire's catalogue.
 *
 * Importing this module compiles the client's WebAssembly (embedded in the package),
 * so `new RelaywireClient(...)` works at once, in any bundler, with no configuration.
 *
 * @example
 * ```ts
 * import { RelaywireClient } from "relaywire";
 * import { chatProtocol } from "relaywire/chat";
 *
 * const client = new RelaywireClient({ url: "/ws", protocol: chatProtocol });
 * client.on("chat:message", (payload) => console.log(payload.message.content));
 * ```
 */
import { initSync } from "./relaywire_client.js";
import wasm from "./relaywire_client_wasm.js";

/**
 * The wasm is embedded as ASCII: a printable byte stands for itself, any other is `~`
 * or `` ` `` followed by a printable character indexing it (`cargo xtask package`).
 */
function decode(text: string): Uint8Array {
  const isLiteral = (b: number) => b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c && b !== 0x60 && b !== 0x7e;
  const literals: number[] = [];
  const escaped: number[] = [];
  for (let b = 0; b < 256; b += 1) (isLiteral(b) ? literals : escaped).push(b);
  const index = new Uint8Array(128);
  literals.forEach((b, i) => (index[b] = i));
  const bytes = new Uint8Array(text.length);
  let length = 0;
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if (c === 0x7e) bytes[length++] = escaped[index[text.charCodeAt(++i)]];
    else if (c === 0x60) bytes[length++] = escaped[literals.length + index[text.charCodeAt(++i)]];
    else bytes[length++] = c;
  }
  return bytes.subarray(0, length);
}

initSync({ module: decode(wasm) });

export { RelaywireClient } from "./relaywire_client.js";
// Relaywire's API only: the wasm-bindgen glue's own exports stay private.
export type {
  Ack,
  Authenticate,
  ClientErrorCode,
  ClientPolicy,
  Connected,
  ConnectionSnapshot,
  ConnectionStatus,
  ErrorCode,
  ErrorPayload,
  PayloadOf,
  Ping,
  Pong,
  PresenceChange,
  Protocol,
  ProtocolDescriptor,
  RelaywireError,
  RelaywireOptions,
  Seq,
  ServerMessageOf,
  ServerMessageType,
} from "./relaywire_client.js";
