#!/usr/bin/env node
// reoclo-admin. Runs the bundle `npm run build` makes (dist/reoclo-admin.mjs, a fast start) while
// it is newer than every source it was built from; else the TypeScript sources through tsx, which
// compiles them on every call (a slow start), saying so once.
import { readFileSync, statSync } from "node:fs";
import { URL } from "node:url";

const bundle = new URL("../dist/reoclo-admin.mjs", import.meta.url);
/** The sources the bundle was built from, one a line, relative to it (scripts/build-admin.ts). */
const INPUTS = "reoclo-admin.inputs";

/** Why the bundle cannot be used, or undefined when it is up to date. */
function staleness() {
  let built;
  try {
    built = statSync(bundle).mtimeMs;
  } catch {
    return "there is no bundle (service/dist/reoclo-admin.mjs)";
  }
  try {
    const inputs = readFileSync(new URL(INPUTS, bundle), "utf8").split("\n").filter(Boolean);
    const changed = inputs.find((input) => statSync(new URL(input, bundle)).mtimeMs > built);
    if (changed) return `${changed.replace(/^(\.\.\/)+/, "")} changed after the bundle was built`;
  } catch {
    return "the bundle's list of sources is missing or names a file that is gone";
  }
  return undefined;
}

/** @returns {Promise<{ main: (argv: string[]) => Promise<number> }>} */
async function load() {
  const stale = staleness();
  // eslint-disable-next-line @typescript-eslint/no-unsafe-return -- built from ../src/admin/cli.ts (typed there)
  if (stale === undefined) return import(bundle.href);
  process.stderr.write(
    `reoclo-admin: ${stale}; running from the sources (slow start). \`npm run build\` makes the fast bundle.\n`,
  );
  const { register } = await import("tsx/esm/api");
  register();
  return import("../src/admin/cli.ts");
}

const { main } = await load();
process.exitCode = await main(process.argv.slice(2));
