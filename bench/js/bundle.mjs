// Bundling and compressing, as every size figure of the benchmark is measured:
// esbuild `--bundle --minify --format=esm` for the browser, GNU `gzip -9 -n`, and
// brotli at quality 11 in text mode.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants } from "node:zlib";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));

/** The libraries compared, each as an app imports it. */
export const PEERS = [
  {
    name: "socket.io-client",
    entry: "export { io } from 'socket.io-client';",
  },
  {
    name: "reconnecting-websocket",
    entry: "export { default as ReconnectingWebSocket } from 'reconnecting-websocket';",
  },
];

/** Relaywire's client, as an app imports it from the built package in `packageDir`. */
export function relaywire(packageDir) {
  return {
    name: "relaywire",
    entry: "export { RelaywireClient } from 'relaywire';",
    alias: { relaywire: resolve(packageDir) },
  };
}

/** The version of an installed package, or of the package in `dir`. */
export function version(name, dir) {
  const manifest = dir ? join(dir, "package.json") : join(here, "node_modules", name, "package.json");
  return JSON.parse(readFileSync(manifest, "utf8")).version;
}

/** Bundles one entry; returns the code. */
export async function bundle({ entry, alias = {} }, extra = {}) {
  const result = await build({
    stdin: { contents: entry, resolveDir: here, loader: "js" },
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    alias,
    external: ["react", "react-dom", "react/jsx-runtime"],
    write: false,
    logLevel: "error",
    ...extra,
  });
  return Buffer.from(result.outputFiles[0].contents);
}

/** Raw, gzip -9 and brotli sizes in bytes. */
export function sizes(bytes) {
  const gzip = execFileSync("gzip", ["-9", "-n", "-c"], { input: bytes, maxBuffer: 1 << 28 });
  const brotli = brotliCompressSync(bytes, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 11,
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
      [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
    },
  });
  return { raw: bytes.length, gzip: gzip.length, brotli: brotli.length };
}
