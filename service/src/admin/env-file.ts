import { parseEnv } from "node:util";
import { ENV_NAME_PATTERN } from "@reoclo/protocol";

// `apps add --env-file`: the dotenv format as Node reads it (`util.parseEnv`, the parser behind
// `node --env-file`): `NAME=value`, an optional leading `export `, '…', "…" and `…` quotes (a
// quoted value may span lines), `#` comments, empty values. Each entry is handed to parseEnv on its
// own, so a malformed line is reported by its number and cannot run into the next entry; as with
// Node, a name set twice keeps its last value.

export type EnvFileResult =
  | { ok: true; env: Record<string, string> }
  /** Names the line and what is wrong with it, never the value (it may be a secret). */
  | { ok: false; line: number; problem: string };

// Node 20.20's parser drops a leading `export `, but not with two spaces after it, and the 20.x
// releases the engines field still admits may not drop it at all: strip it here for all of them.
const ASSIGNMENT = /^(?:export\s+)?([^=\s]*)\s*=(.*)$/;
const QUOTES = new Set(["'", '"', "`"]);

export function parseEnvFile(text: string): EnvFileResult {
  const lines = text.split(/\r?\n/);
  const env: Record<string, string> = {};
  for (let i = 0; i < lines.length; i++) {
    // Only the start: the end of a line may be the start of a multi-line value.
    const text = (lines[i] ?? "").trimStart();
    if (text.trim() === "" || text.startsWith("#")) continue;
    const line = i + 1;
    const m = ASSIGNMENT.exec(text);
    const name = m?.[1];
    if (m === null || name === undefined || !ENV_NAME_PATTERN.test(name))
      return { ok: false, line, problem: "is not NAME=value" };
    let value = (m[2] ?? "").trimStart();
    const quote = value[0];
    if (quote !== undefined && QUOTES.has(quote) && !value.includes(quote, 1)) {
      // A quoted value that goes on: up to the line that closes it.
      let end = i + 1;
      while (end < lines.length && !(lines[end] ?? "").includes(quote)) end++;
      if (end >= lines.length)
        return { ok: false, line, problem: `opens a ${quote} quote that is never closed` };
      value = [value, ...lines.slice(i + 1, end + 1)].join("\n");
      i = end;
    }
    const parsed = parseEnv(`${name}=${value}`);
    const keys = Object.keys(parsed);
    if (keys.length !== 1 || keys[0] !== name) return { ok: false, line, problem: "is not NAME=value" };
    env[name] = parsed[name] ?? "";
  }
  return { ok: true, env };
}
