// The README's React quick start, as written (`cargo xtask test next` copies it here),
// prerendered by `next build` and hydrated in the browser.
import App from "./quickstart";

export default function Page() {
  return <App />;
}
