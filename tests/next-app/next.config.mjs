// The chat server sits behind the app's own origin, as a deployment's proxy would put
// it: the README's `url: "/ws"` and its cookie work unchanged. `next start` proxies
// WebSocket upgrades of rewritten paths.
const server = process.env.RELAYWIRE_SERVER ?? "http://127.0.0.1:8080";

/** @type {import('next').NextConfig} */
const config = {
  async rewrites() {
    return [
      { source: "/ws", destination: `${server}/ws` },
      { source: "/auth/:path*", destination: `${server}/auth/:path*` },
      { source: "/api/:path*", destination: `${server}/api/:path*` },
    ];
  },
};

export default config;
