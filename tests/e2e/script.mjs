// What the page scripts share: the settings `cargo xtask test <check>` passes them,
// numbered steps (so a failure names the step it stopped at), and checks.

/** The environment variable `name`, which `cargo xtask test <check>` sets. */
export function required(name, check) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this with \`cargo xtask test ${check}\``);
  return value;
}

/** The steps begun so far; the last is the one running. */
export const steps = [];

/** Begins and prints a step. */
export function step(name) {
  steps.push(name);
  console.log(`  ${steps.length}. ${name}`);
}

/** Fails the running step with `message` unless `condition` holds. */
export function check(condition, message) {
  if (!condition) throw new Error(message);
}
