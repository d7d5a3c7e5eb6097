import { Option, type Command } from "commander";
import { KEY_EXPIRY_CHOICES } from "@reoclo/protocol";
import { commaList, given, wholeNumber } from "./inputs";
import { verbCommand, type AdminCommand, type Invocation } from "./program";

// What reoclo-admin's command definitions (commands*.ts) are written with.

type Input = Record<string, unknown>;

export interface Kit {
  readonly s: Invocation;
  /** `reoclo-admin <name> …`: a group of commands. */
  readonly group: (name: string, description: string) => AdminCommand;
  /** One verb: `nameAndArgs` is `update <id>`; `build` makes its input from the arguments and options. */
  readonly verb: <O extends Input = Input>(
    parent: Command,
    nameAndArgs: string,
    verbName: string,
    description: string,
    build: (args: string[], opts: O) => Input | Promise<Input>,
  ) => AdminCommand;
  /** `<name> <id>` → `{id}`. */
  readonly byId: (parent: Command, name: string, verbName: string, description: string) => AdminCommand;
  /** `<name> <server>` → `{id}`, the server named by id or name. */
  readonly byServer: (parent: Command, name: string, verbName: string, description: string) => AdminCommand;
  /** `list`: one page of a list verb (`--cursor`, `--limit`), with the filters `filters` makes. */
  readonly list: <O extends Input = Input>(
    parent: Command,
    verbName: string,
    description: string,
    filters?: (opts: O) => Input | Promise<Input>,
  ) => AdminCommand;
  /** `--servers a,b` by ids or names → their ids. */
  readonly serverIds: (value: string | undefined) => Promise<string[] | undefined>;
}

export const choice = (flags: string, description: string, choices: readonly string[]) =>
  new Option(flags, description).choices(choices);
export const expiresOption = () =>
  choice("--expires <expiry>", "when the key stops working", KEY_EXPIRY_CHOICES);

export function commandKit(program: Command, s: Invocation): Kit {
  const kit: Kit = {
    s,
    group: (name, description) => program.command(name).description(description) as AdminCommand,
    verb: <O extends Input>(
      parent: Command,
      nameAndArgs: string,
      verbName: string,
      description: string,
      build: (args: string[], opts: O) => Input | Promise<Input>,
    ) => verbCommand<O>(parent, nameAndArgs, verbName, description, build, s),
    byId: (parent, name, verbName, description) =>
      kit.verb(parent, `${name} <id>`, verbName, description, ([id]) => ({ id })),
    byServer: (parent, name, verbName, description) =>
      kit.verb(parent, `${name} <server>`, verbName, description, async ([server]) => ({
        id: await s.serverId(server!),
      })),
    list: <O extends Input>(
      parent: Command,
      verbName: string,
      description: string,
      filters?: (opts: O) => Input | Promise<Input>,
    ) =>
      kit
        .verb<O & { cursor?: string; limit?: number }>(parent, "list", verbName, description, async (_, o) =>
          given({ ...(filters ? await filters(o) : {}), cursor: o.cursor, limit: o.limit }),
        )
        .option("--cursor <cursor>", "the next page, as the previous one said")
        .option("--limit <n>", "rows per page", wholeNumber),
    serverIds: async (value) =>
      value === undefined ? undefined : Promise.all(commaList(value).map((x) => s.serverId(x))),
  };
  return kit;
}
