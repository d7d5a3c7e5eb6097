import { readFile } from "node:fs/promises";
import { InvalidArgumentError } from "commander";
import { parseEnvFile } from "./env-file";

// What reoclo-admin reads on the caller's side, so the service never opens a path named by the
// caller and no secret is ever an argument (visible in `ps`): files, standard input, and the
// parsing of option values.

/** A mistake in how the command was called: exit code 2, no JSON envelope. */
export class UsageError extends Error {}

/** `a,b, c` → ["a", "b", "c"]; an empty value is an empty list (`--allow-ip ''` clears a list). */
export const commaList = (v: string): string[] =>
  v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

/** An option value that must be a whole number (commander names the option in the error). */
export function wholeNumber(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError("It must be a whole number.");
  return Number(v);
}

/** The text of a file named by `--<flag>`; an unreadable file is a usage error naming the flag. */
export async function readText(file: string | undefined, flag: string): Promise<string | undefined> {
  if (file === undefined) return undefined;
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    throw new UsageError(
      `--${flag}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
}

/** A dotenv file (see env-file.ts); errors name the line, never the value. */
export async function readEnvFile(file: string | undefined): Promise<Record<string, string> | undefined> {
  const text = await readText(file, "env-file");
  if (text === undefined) return undefined;
  const parsed = parseEnvFile(text);
  if (!parsed.ok) throw new UsageError(`--env-file: line ${parsed.line} ${parsed.problem}`);
  return parsed.env;
}

/** Standard input, read once: a secret piped in (a passphrase, a password, an API key). */
export class Stdin {
  private used: string | undefined;
  constructor(private readonly read: () => Promise<string>) {}

  /** The first line of standard input, for `--<flag>`; only one flag may take it. */
  async line(flag: string): Promise<string> {
    if (this.used !== undefined)
      throw new UsageError(`--${flag} and --${this.used} both read standard input: give only one`);
    this.used = flag;
    return (await this.read()).replace(/\r?\n$/, "");
  }
}

/** Drops the fields the caller did not give, so an update changes only what was named. */
export const given = (o: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
