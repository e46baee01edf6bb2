import { defineConfig } from "vite";

// The page imports the service's generated TypeScript from ../bindings.
export default defineConfig({
  server: { fs: { allow: [".."] } },
});
