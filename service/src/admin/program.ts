import { Command, CommanderError, Option, type OptionValues } from "commander";
import { UUID_PATTERN } from "@reoclo/protocol";
import packageJson from "../../package.json" with { type: "json" };
import { ConfigError } from "../config";
import { ServiceError } from "../errors";
import { itemsOf, type Executor, type RouteRef } from "./executor";
import { formatHuman } from "./format";
import { Stdin, UsageError } from "./inputs";
import { openExecutor } from "./open-executor";

// reoclo-admin's command line on commander (spec §10): `--version`, help per command, "did you
// mean" for a mistyped command or option, and errors that name the option. Each command builds one
// verb's input (snake_case, spec §11) and hands it to one executor (executor.ts); the output is the
// verb's answer, as one JSON value with --json.

export interface AdminIo {
  env: Record<string, string | undefined>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  readStdin: () => Promise<string>;
}

export interface AdminOptions {
  /** The management API's routes for the remote mode (default: the service's route table). */
  routes?: () => Promise<readonly RouteRef[]>;
}

/** The options every command takes (spec §10), wherever they appear on the line. */
interface GlobalOptions {
  org?: string;
  json?: boolean;
  url?: string;
  apiKeyStdin?: boolean;
}

/** A command of reoclo-admin: required options are checked after unknown ones, so a typo is named first. */
export class AdminCommand extends Command {
  readonly required: Option[] = [];

  override createCommand(name?: string): AdminCommand {
    return new AdminCommand(name);
  }

  /** A required option (commander's own check runs before the unknown-option one): parsed, or one of some choices. */
  need(flags: string, description: string, parse?: ((value: string) => unknown) | readonly string[]): this {
    const option = new Option(flags, `${description} (required)`);
    if (typeof parse === "function") option.argParser(parse);
    else if (parse) option.choices(parse);
    this.required.push(option);
    return this.addOption(option);
  }
}

/** One run of reoclo-admin, as its command's action sees it: the executor (opened on first use), standard input, lookups. */
export class Invocation {
  readonly stdin: Stdin;
  private executor: Promise<Executor> | undefined;
  private servers: Promise<{ id: string; name: string }[]> | undefined;
  private globals: GlobalOptions = {};

  constructor(
    readonly io: AdminIo,
    private readonly opts: AdminOptions,
  ) {
    this.stdin = new Stdin(io.readStdin);
  }

  /** Runs one verb; `--org` goes with it (the executor refuses it where it means nothing). */
  async call(verb: string, input: Record<string, unknown>): Promise<unknown> {
    const org = this.globals.org;
    return (await this.open()).call(verb, org === undefined ? input : { ...input, org });
  }

  /** The organisation's id, the `tenant_id` of the deploy and env routes. */
  async tenantId(): Promise<string> {
    return (await this.open()).tenantId(this.globals.org);
  }

  /** A server named by id or by its name, unique in the organisation (one list, once per run). */
  async serverId(idOrName: string): Promise<string> {
    if (UUID_PATTERN.test(idOrName)) return idOrName;
    this.servers ??= this.listAll("servers.list") as Promise<{ id: string; name: string }[]>;
    const named = (await this.servers).filter((s) => s.name === idOrName);
    if (named.length === 1) return named[0]!.id;
    if (named.length === 0)
      throw new ServiceError(
        "not_found",
        `No server is named "${idOrName}": give its id or its name ("reoclo-admin servers list" shows both).`,
      );
    throw new ServiceError(
      "conflict",
      `${named.length} servers are named "${idOrName}": give the id of the one you mean (${named.map((s) => s.id).join(", ")}).`,
    );
  }

  /** Every row of a list verb, page after page. */
  async listAll(verb: string): Promise<unknown[]> {
    const rows: unknown[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.call(verb, cursor === undefined ? {} : { cursor });
      rows.push(...itemsOf(page));
      cursor = nextCursor(page) ?? undefined;
    } while (cursor !== undefined);
    return rows;
  }

  /** Prints a verb's answer: a list's rows (its `items`), or the object as it came. */
  print(verb: string, result: unknown): void {
    const cursor = nextCursor(result);
    const shown = cursor === undefined ? result : itemsOf(result);
    this.io.stdout((this.globals.json ? JSON.stringify(shown, null, 2) : formatHuman(verb, shown)) + "\n");
    if (cursor) this.io.stderr(`reoclo-admin: more rows follow: add --cursor ${cursor}\n`);
  }

  setGlobals(globals: GlobalOptions): void {
    this.globals = globals;
  }

  async close(): Promise<void> {
    const executor = await this.executor?.catch(() => undefined);
    await executor?.close();
  }

  private open(): Promise<Executor> {
    return (this.executor ??= (async () =>
      openExecutor({
        env: this.io.env,
        url: this.globals.url,
        apiKey: this.globals.apiKeyStdin ? await this.stdin.line("api-key-stdin") : undefined,
        org: this.globals.org,
        warn: (message) => this.io.stderr(`warning: ${message}\n`),
        routes: this.opts.routes,
      }))());
  }
}

/** A list's `next_cursor` (null on its last page); undefined for anything else. */
function nextCursor(result: unknown): string | null | undefined {
  if (!result || typeof result !== "object" || Array.isArray(result) || !("next_cursor" in result))
    return undefined;
  const cursor = result.next_cursor;
  return typeof cursor === "string" ? cursor : null;
}

const ARGUMENT_HELP: Record<string, string> = {
  "<id>": "its id",
  "<name>": "its name",
  "<server>": "the server, by id or by its name (unique in the organisation)",
  "<application>": "the application's id",
};

type Build<O> = (args: string[], opts: O) => Record<string, unknown> | Promise<Record<string, unknown>>;

/**
 * `<group> <name> [args]`: one verb, its input built by `build` from the arguments and options.
 * The command's options are added by the caller on the returned command.
 */
export function verbCommand<O extends OptionValues>(
  parent: Command,
  nameAndArgs: string,
  verb: string,
  description: string,
  build: Build<O>,
  invocation: Invocation,
): AdminCommand {
  const [name, ...args] = nameAndArgs.split(" ");
  const cmd = parent.command(name!).description(description) as AdminCommand;
  for (const arg of args) cmd.argument(arg, ARGUMENT_HELP[arg] ?? "");
  cmd.action(async (...values: unknown[]) => {
    // commander passes the declared arguments, then the options, then the command itself.
    const self = values.at(-1) as Command;
    invocation.setGlobals(self.optsWithGlobals<GlobalOptions>());
    const input = await build(values.slice(0, -2) as string[], self.opts<O>());
    invocation.print(verb, await invocation.call(verb, input));
  });
  return cmd;
}

const HELP_AFTER = `
On the service's machine, reoclo-admin uses the service's settings: DATABASE_URL, or the data
directory REOCLO_DATA_DIR (default ./.reoclo, from the current directory), through the running
service's socket there. Anywhere else, give the service's address (--url or REOCLO_URL) and an
integration key (REOCLO_API_KEY=rk_t_…, or --api-key-stdin).

Help on a command: reoclo-admin <command> --help, e.g. reoclo-admin servers add --help`;

/** The root command, with the global options and the output and error conventions. */
export function rootCommand(io: AdminIo): AdminCommand {
  const program = new AdminCommand("reoclo-admin");
  program
    .description("Manage a Reoclo automation service: organisations, servers, keys, people, deploys.")
    .version(packageJson.version, "-V, --version", "print reoclo-admin's version")
    .option("--org <org>", "the organisation, by name or id (default: default)")
    .option("--json", "print the answer as one JSON value (a list as its array of rows)")
    .option("--url <url>", "a remote service (or REOCLO_URL), used with an integration key (REOCLO_API_KEY)")
    .option("--api-key-stdin", "read the remote service's integration key from standard input")
    .configureHelp({ showGlobalOptions: true })
    .addHelpText("after", HELP_AFTER)
    .configureOutput({
      writeOut: io.stdout,
      writeErr: io.stderr,
      outputError: (text, write) => write(text.replace(/^error: /, "reoclo-admin: ")),
    })
    .exitOverride()
    .hook("preAction", (_root, action) => {
      for (const option of (action as AdminCommand).required)
        if (action.getOptionValue(option.attributeName()) === undefined)
          action.error(`error: required option '${option.flags}' not specified`, {
            code: "commander.missingMandatoryOptionValue",
          });
    });
  return program;
}

/** After an error, each command says how it is called and where its help is. */
export function addUsageHints(cmd: Command, path: string[] = []): void {
  const here = [...path, cmd.name()].join(" ");
  cmd.showHelpAfterError(`usage: ${here} ${cmd.usage()}\n(${here} --help says more)`);
  for (const sub of cmd.commands) addUsageHints(sub, [...path, cmd.name()]);
}

/** The exit code for an error (0 ok, 1 refused or failed, 2 wrongly called), printed on stderr. */
export function reportError(err: unknown, io: AdminIo, json: boolean): number {
  if (err instanceof CommanderError) {
    // Help and the version asked for are not errors; commander printed everything else already.
    return err.code === "commander.helpDisplayed" || err.code === "commander.version" ? 0 : 2;
  }
  if (err instanceof UsageError) {
    io.stderr(`reoclo-admin: ${err.message}\n`);
    return 2;
  }
  if (err instanceof ConfigError) {
    io.stderr(`reoclo-admin: ${err.message}\n`);
    return 1;
  }
  if (err instanceof ServiceError) {
    io.stderr(
      json
        ? JSON.stringify({
            error: err.code,
            detail: err.detail,
            ...(err.fields ? { fields: err.fields } : {}),
          }) + "\n"
        : `reoclo-admin: ${err.code}: ${err.detail}\n`,
    );
    return 1;
  }
  io.stderr(`reoclo-admin: unexpected error: ${(err as Error).message}\n`);
  return 1;
}
