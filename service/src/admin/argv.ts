import { readFile } from "node:fs/promises";
import { parseArgs, type ParseArgsConfig } from "node:util";
import {
  DEFAULT_RATE_LIMIT_PER_HOUR,
  DEFAULT_RATE_LIMIT_PER_MINUTE,
  KEY_EXPIRY_CHOICES,
} from "@reoclo/protocol";
import { parseEnvFile } from "./env-file";

// Turns `reoclo-admin <group> <verb> …` into a command name and JSON params (spec §10).
// Files and standard input are read here, on the caller's side, so the service never
// opens a path named by the caller.

export class UsageError extends Error {}

export interface ParsedCommand {
  command: string;
  params: Record<string, unknown>;
  json: boolean;
}

type Options = NonNullable<ParseArgsConfig["options"]>;
const str = { type: "string" } as const;
const bool = { type: "boolean" } as const;

interface Spec {
  options?: Options;
  positional?: "name" | "id";
  usage: string;
}

const SPECS: Record<string, Spec> = {
  "orgs.create": { positional: "name", usage: "orgs create <name>" },
  "orgs.list": { usage: "orgs list" },
  "servers.add": {
    options: {
      name: str,
      host: str,
      port: str,
      user: str,
      "private-key-file": str,
      "passphrase-stdin": bool,
      "host-key-fingerprint": str,
      "trust-on-first-use": bool,
      "skip-host-key-check": bool,
      "container-cli": str,
      "reboot-command": str,
    },
    usage:
      "servers add --name <name> --host <host> [--port 22] --user <user> --private-key-file <path> [--passphrase-stdin] (--host-key-fingerprint SHA256:<b64> [--skip-host-key-check] | --trust-on-first-use) [--container-cli docker|podman] [--reboot-command <command>]",
  },
  "servers.list": { usage: "servers list" },
  "servers.show": { positional: "id", usage: "servers show <id>" },
  "servers.test": { positional: "id", usage: "servers test <id>" },
  "servers.remove": { positional: "id", usage: "servers remove <id>" },
  "keys.create": {
    options: {
      name: str,
      operations: str,
      servers: str,
      "all-servers": bool,
      credentials: str,
      "all-credentials": bool,
      "allow-ip": str,
      "rate-limit-per-minute": str,
      "rate-limit-per-hour": str,
      expires: str,
    },
    usage: `keys create --name <name> --operations exec,deploy,… (--servers <id,…> | --all-servers) [--credentials <id,…> | --all-credentials] [--allow-ip <cidr,…>] [--rate-limit-per-minute ${DEFAULT_RATE_LIMIT_PER_MINUTE}] [--rate-limit-per-hour ${DEFAULT_RATE_LIMIT_PER_HOUR}] [--expires ${KEY_EXPIRY_CHOICES.join("|")}]`,
  },
  "keys.list": { usage: "keys list" },
  "keys.show": { positional: "id", usage: "keys show <id>" },
  "keys.revoke": { positional: "id", usage: "keys revoke <id>" },
  "credentials.add": {
    options: { name: str, type: str, "registry-url": str, username: str, "password-stdin": bool },
    usage:
      "credentials add --name <name> --type <registry_type> --registry-url <url> --username <user> --password-stdin",
  },
  "credentials.list": { usage: "credentials list" },
  "credentials.remove": { positional: "id", usage: "credentials remove <id>" },
  "apps.add": {
    options: {
      name: str,
      server: str,
      "working-directory": str,
      "deploy-script-file": str,
      "restart-script-file": str,
      "env-file": str,
    },
    usage:
      "apps add --name <name> --server <id> --working-directory <dir> --deploy-script-file <path> [--restart-script-file <path>] [--env-file <path>]",
  },
  "apps.list": { usage: "apps list" },
  "apps.remove": { positional: "id", usage: "apps remove <id>" },
  "audit.list": {
    options: { key: str, server: str, "run-id": str, outcome: str, limit: str },
    usage: "audit list [--key <id>] [--server <id>] [--run-id <id>] [--outcome allowed|denied] [--limit N]",
  },
  "secrets.rotate": { usage: "secrets rotate" },
};

export function usage(): string {
  return [
    "usage: reoclo-admin <command> [options] [--org <org>] [--json]",
    "",
    ...Object.values(SPECS).map((s) => `  reoclo-admin ${s.usage}`),
    "",
    "Settings come from the same environment as the service: DATABASE_URL, or REOCLO_DATA_DIR (default ./.reoclo, from the current directory).",
  ].join("\n");
}

const list = (v: unknown) =>
  typeof v === "string"
    ? v
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)
    : undefined;
const int = (v: unknown, flag: string) => {
  if (v === undefined) return undefined;
  if (typeof v !== "string" || !/^\d+$/.test(v)) throw new UsageError(`--${flag} must be a whole number`);
  return Number(v);
};

async function readText(file: string | boolean | undefined, flag: string): Promise<string | undefined> {
  if (typeof file !== "string") return undefined;
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    throw new UsageError(
      `--${flag}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
}

/** A dotenv file (see env-file.ts); errors name the line, never the value. */
async function readEnvFile(file: string | boolean | undefined): Promise<Record<string, string> | undefined> {
  const text = await readText(file, "env-file");
  if (text === undefined) return undefined;
  const parsed = parseEnvFile(text);
  if (!parsed.ok) throw new UsageError(`--env-file: line ${parsed.line} ${parsed.problem}`);
  return parsed.env;
}

export async function parseCommand(argv: string[], readStdin: () => Promise<string>): Promise<ParsedCommand> {
  const [group, verb, ...rest] = argv;
  const command = `${group ?? ""}.${verb ?? ""}`;
  const spec = SPECS[command];
  if (!spec)
    throw new UsageError(group ? `unknown command "${argv.slice(0, 2).join(" ")}"` : "no command given");
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...spec.options, org: str, json: bool },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: reoclo-admin ${spec.usage}`);
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  const expected = spec.positional ? 1 : 0;
  if (parsed.positionals.length !== expected) {
    throw new UsageError(`usage: reoclo-admin ${spec.usage}`);
  }
  const params: Record<string, unknown> = { org: v.org };
  if (spec.positional) params[spec.positional] = parsed.positionals[0];
  const stdinLine = async () => (await readStdin()).replace(/\r?\n$/, "");
  switch (command) {
    case "servers.add":
      Object.assign(params, {
        name: v.name,
        host: v.host,
        port: int(v.port, "port") ?? 22,
        user: v.user,
        private_key: await readText(v["private-key-file"], "private-key-file"),
        passphrase: v["passphrase-stdin"] ? await stdinLine() : undefined,
        host_key_fingerprint: v["host-key-fingerprint"],
        trust_on_first_use: Boolean(v["trust-on-first-use"]),
        skip_host_key_check: Boolean(v["skip-host-key-check"]),
        container_cli: v["container-cli"],
        reboot_command: v["reboot-command"],
      });
      if (params.private_key === undefined) throw new UsageError("--private-key-file is required");
      break;
    case "keys.create":
      Object.assign(params, {
        name: v.name,
        operations: list(v.operations) ?? [],
        server_ids: list(v.servers),
        all_servers: Boolean(v["all-servers"]),
        credential_ids: list(v.credentials),
        all_credentials: Boolean(v["all-credentials"]),
        allowed_ips: list(v["allow-ip"]),
        rate_limit_per_minute: int(v["rate-limit-per-minute"], "rate-limit-per-minute"),
        rate_limit_per_hour: int(v["rate-limit-per-hour"], "rate-limit-per-hour"),
        expires: v.expires,
      });
      break;
    case "credentials.add":
      if (!v["password-stdin"])
        throw new UsageError(
          "--password-stdin is required: pipe the password in, never pass it as an argument",
        );
      Object.assign(params, {
        name: v.name,
        type: v.type,
        registry_url: v["registry-url"],
        username: v.username,
        password: await stdinLine(),
      });
      break;
    case "apps.add":
      Object.assign(params, {
        name: v.name,
        server_id: v.server,
        working_directory: v["working-directory"],
        deploy_script: await readText(v["deploy-script-file"], "deploy-script-file"),
        restart_script: await readText(v["restart-script-file"], "restart-script-file"),
        env: await readEnvFile(v["env-file"]),
      });
      if (params.deploy_script === undefined) throw new UsageError("--deploy-script-file is required");
      break;
    case "audit.list":
      Object.assign(params, {
        key: v.key,
        server: v.server,
        run_id: v["run-id"],
        outcome: v.outcome,
        limit: int(v.limit, "limit"),
      });
      break;
  }
  return { command, params: dropUndefined(params), json: Boolean(v.json) };
}

const dropUndefined = (o: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(o).filter(([, val]) => val !== undefined));
