// How every script here (and `cargo xtask bench`) launches Debian's Chromium: headless,
// as root in a container, with nothing reaching beyond 127.0.0.1.

/** The Chromium to launch: `$CHROMIUM`, or Debian's. */
export const CHROMIUM_PATH = process.env.CHROMIUM ?? "/usr/bin/chromium";

/** The flags it needs here: no sandbox (root), no GPU, no background traffic. */
export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-dev-shm-usage",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];
