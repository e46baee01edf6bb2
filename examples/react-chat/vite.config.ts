import { defineConfig } from "vite";

// `npm run dev` proxies the API and the WebSocket to a reference server
// (RELAYWIRE_SERVER, default http://127.0.0.1:8080); `cargo xtask demo` serves the
// built app from the server itself, so no proxy is involved there.
const server = process.env.RELAYWIRE_SERVER ?? "http://127.0.0.1:8080";

export default defineConfig({
  server: {
    proxy: {
      "/api": server,
      "/auth": server,
      "/ws": { target: server.replace(/^http/, "ws"), ws: true },
    },
  },
});
