import { Option } from "commander";
import {
  DEFAULT_RATE_LIMIT_PER_HOUR,
  DEFAULT_RATE_LIMIT_PER_MINUTE,
  OPERATION_TYPES,
  REGISTRY_TYPES,
} from "@reoclo/protocol";
import { choice, expiresOption, type Kit } from "./command-kit";
import { commaList, given, readText, UsageError, wholeNumber } from "./inputs";
import type { AdminCommand } from "./program";

// servers, keys (automation keys) and credentials: what CI's keys reach.

type ServerOptions = {
  name?: string;
  host?: string;
  port?: number;
  user?: string;
  privateKeyFile?: string;
  passphraseStdin?: boolean;
  containerCli?: string;
  rebootCommand?: string;
};
type PinOptions = { hostKeyFingerprint?: string; trustOnFirstUse?: boolean; skipHostKeyCheck?: boolean };

export function addServerCommands({ s, group, verb, list, byServer }: Kit): void {
  const servers = group("servers", "the SSH servers commands run on");
  const serverOptions = (cmd: AdminCommand) =>
    cmd
      .option("--port <port>", "the SSH port (default 22)", wholeNumber)
      .option("--passphrase-stdin", "read the private key's passphrase from standard input")
      .addOption(
        choice("--container-cli <cli>", "the host's container CLI (default docker)", ["docker", "podman"]),
      )
      .option("--reboot-command <command>", "what a reboot runs on the host");
  const serverFields = async (o: ServerOptions) => ({
    name: o.name,
    host: o.host,
    port: o.port,
    user: o.user,
    private_key: await readText(o.privateKeyFile, "private-key-file"),
    passphrase: o.passphraseStdin ? await s.stdin.line("passphrase-stdin") : undefined,
    container_cli: o.containerCli,
    reboot_command: o.rebootCommand,
  });
  const pinOptions = (cmd: AdminCommand) =>
    cmd
      .option(
        "--host-key-fingerprint <fingerprint>",
        "pin this host key: SHA256:<base64>, as ssh-keygen -lf prints it",
      )
      .option("--trust-on-first-use", "pin the key the host presents now")
      .option("--skip-host-key-check", "pin the given fingerprint without asking the host (it is down)");
  const pinFields = (o: PinOptions) => ({
    host_key_fingerprint: o.hostKeyFingerprint,
    trust_on_first_use: Boolean(o.trustOnFirstUse),
    skip_host_key_check: Boolean(o.skipHostKeyCheck),
  });

  pinOptions(
    serverOptions(
      verb<ServerOptions & PinOptions>(
        servers,
        "add",
        "servers.add",
        "add a server and pin its host key",
        async (_, o) => given({ ...(await serverFields(o)), port: o.port ?? 22, ...pinFields(o) }),
      )
        .need("--name <name>", "a name, unique in the organisation")
        .need("--host <host>", "its host name or IP address")
        .need("--user <user>", "the user to log in as")
        .need("--private-key-file <path>", "the private key to log in with"),
    ),
  );
  list(servers, "servers.list", "list the servers");
  verb<{ host?: string; port?: number }>(
    servers,
    "scan",
    "servers.scan",
    "read the host key a host presents now, storing nothing (compare it before pinning it)",
    (_, o) => given({ host: o.host, port: o.port ?? 22 }),
  )
    .need("--host <host>", "its host name or IP address")
    .option("--port <port>", "the SSH port (default 22)", wholeNumber);

  byServer(servers, "show", "servers.show", "show a server");
  byServer(servers, "test", "servers.test", "connect, check the pinned host key, and run `id -un`");
  serverOptions(
    verb<ServerOptions>(
      servers,
      "update <server>",
      "servers.update",
      "change a server in place; it keeps its id (re-pin its host key with `servers pin`)",
      async ([server], o) => given({ ...(await serverFields(o)), id: await s.serverId(server!) }),
    )
      .option("--name <name>", "a new name")
      .option("--host <host>", "a new host name or IP address")
      .option("--user <user>", "a new user")
      .option("--private-key-file <path>", "a new private key"),
  );
  pinOptions(
    verb<PinOptions>(
      servers,
      "pin <server>",
      "servers.pin",
      "pin the server's host key again, keeping its id (audited with both fingerprints)",
      async ([server], o) => given({ id: await s.serverId(server!), ...pinFields(o) }),
    ),
  );
  byServer(servers, "remove", "servers.remove", "remove a server");
}

type KeyOptions = {
  name?: string;
  operations?: string;
  servers?: string;
  allServers?: boolean;
  credentials?: string;
  allCredentials?: boolean;
  allowIp?: string;
  rateLimitPerMinute?: number;
  rateLimitPerHour?: number;
  expires?: string;
};

export function addKeyCommands({ group, verb, list, byId, serverIds }: Kit): void {
  const keys = group("keys", "automation keys (rca_…), the keys CI calls the automation API with");
  const keyOptions = (cmd: AdminCommand) =>
    cmd
      .option("--servers <servers>", "the servers it may use, by id or name, comma-separated")
      .addOption(
        new Option("--all-servers", "every server of the organisation, present and future").conflicts(
          "servers",
        ),
      )
      .option("--credentials <ids>", "the registry credentials it may use, comma-separated")
      .addOption(
        new Option("--all-credentials", "every registry credential of the organisation").conflicts(
          "credentials",
        ),
      )
      .option("--allow-ip <cidrs>", "the only client addresses it works from, comma-separated")
      .option(
        "--rate-limit-per-minute <n>",
        `requests per minute (default ${DEFAULT_RATE_LIMIT_PER_MINUTE})`,
        wholeNumber,
      )
      .option(
        "--rate-limit-per-hour <n>",
        `requests per hour (default ${DEFAULT_RATE_LIMIT_PER_HOUR})`,
        wholeNumber,
      )
      .addOption(expiresOption());
  const operationsHelp = `what it may do, comma-separated: ${OPERATION_TYPES.join(",")}`;
  const keyFields = async (o: KeyOptions) => ({
    name: o.name,
    operations: o.operations === undefined ? undefined : commaList(o.operations),
    server_ids: await serverIds(o.servers),
    credential_ids: o.credentials === undefined ? undefined : commaList(o.credentials),
    allowed_ips: o.allowIp === undefined ? undefined : commaList(o.allowIp),
    rate_limit_per_minute: o.rateLimitPerMinute,
    rate_limit_per_hour: o.rateLimitPerHour,
    expires: o.expires,
  });

  keyOptions(
    verb<KeyOptions>(keys, "create", "keys.create", "create a key; it is shown this once", async (_, o) =>
      given({
        ...(await keyFields(o)),
        all_servers: Boolean(o.allServers),
        all_credentials: Boolean(o.allCredentials),
      }),
    )
      .need("--name <name>", "a name for the key")
      .need("--operations <operations>", operationsHelp),
  );
  list(keys, "keys.list", "list the keys (never the keys themselves)");
  byId(keys, "show", "keys.show", "show a key");
  keyOptions(
    verb<KeyOptions>(
      keys,
      "update <id>",
      "keys.update",
      "change a key in place: name, scope, operations, addresses ('' for any), limits, expiry",
      async ([id], o) => {
        const fields = await keyFields(o);
        // A scope given replaces the stored one: --servers ends "all servers", --all-servers a list.
        return given({
          ...fields,
          id,
          all_servers: o.allServers ? true : o.servers !== undefined ? false : undefined,
          server_ids: o.allServers ? [] : fields.server_ids,
          all_credentials: o.allCredentials ? true : o.credentials !== undefined ? false : undefined,
          credential_ids: o.allCredentials ? [] : fields.credential_ids,
        });
      },
    )
      .option("--name <name>", "a new name")
      .option("--operations <operations>", operationsHelp),
  );
  byId(keys, "revoke", "keys.revoke", "revoke a key: it stops working at once");
}

type PolicyOptions = Omit<KeyOptions, "expires"> & {
  issuer?: string;
  audience?: string;
  condition?: string[];
  lifetimeSeconds?: number;
};

/** `--condition claim=value` (repeatable) → `{claim: value}`. */
function conditionsOf(given: string[] | undefined): Record<string, string> | undefined {
  if (given === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const c of given) {
    const eq = c.indexOf("=");
    if (eq <= 0)
      throw new UsageError(`--condition ${c}: write it as claim=value (a * matches any characters)`);
    out[c.slice(0, eq).trim()] = c.slice(eq + 1);
  }
  return out;
}

export function addTrustPolicyCommands({ group, verb, list, byId, serverIds }: Kit): void {
  const policies = group(
    "trust-policies",
    "trust policies: CI jobs whose OIDC token meets one get a short-lived automation key (keyless CI)",
  );
  verb<PolicyOptions>(policies, "add", "trust-policies.create", "create a trust policy", async (_, o) =>
    given({
      name: o.name,
      issuer: o.issuer,
      audience: o.audience,
      conditions: conditionsOf(o.condition) ?? {},
      operations: o.operations === undefined ? undefined : commaList(o.operations),
      server_ids: await serverIds(o.servers),
      all_servers: Boolean(o.allServers),
      credential_ids: o.credentials === undefined ? undefined : commaList(o.credentials),
      all_credentials: Boolean(o.allCredentials),
      allowed_ips: o.allowIp === undefined ? undefined : commaList(o.allowIp),
      rate_limit_per_minute: o.rateLimitPerMinute,
      rate_limit_per_hour: o.rateLimitPerHour,
      lifetime_seconds: o.lifetimeSeconds,
    }),
  )
    .need("--name <name>", "a name for the policy")
    .need("--issuer <url>", "the OIDC issuer, e.g. https://token.actions.githubusercontent.com")
    .option("--audience <aud>", "the audience tokens must carry (default: REOCLO_PUBLIC_URL)")
    .option(
      "--condition <claim=value>",
      "a claim the token must carry, exactly or as a * glob (repeat; at least one), e.g. repository=acme/shop",
      (v: string, prev: string[] | undefined) => [...(prev ?? []), v],
    )
    .need("--operations <operations>", `what its keys may do, comma-separated: ${OPERATION_TYPES.join(",")}`)
    .option("--servers <servers>", "the servers its keys may use, by id or name, comma-separated")
    .addOption(new Option("--all-servers", "every server of the organisation").conflicts("servers"))
    .option("--credentials <ids>", "the registry credentials its keys may use, comma-separated")
    .addOption(
      new Option("--all-credentials", "every registry credential of the organisation").conflicts(
        "credentials",
      ),
    )
    .option("--allow-ip <cidrs>", "the only client addresses its keys work from, comma-separated")
    .option(
      "--rate-limit-per-minute <n>",
      `requests per minute (default ${DEFAULT_RATE_LIMIT_PER_MINUTE})`,
      wholeNumber,
    )
    .option(
      "--rate-limit-per-hour <n>",
      `requests per hour (default ${DEFAULT_RATE_LIMIT_PER_HOUR})`,
      wholeNumber,
    )
    .option("--lifetime-seconds <n>", "how long a minted key lives, 60–3600 (default 900)", wholeNumber);
  list(policies, "trust-policies.list", "list the trust policies");
  byId(
    policies,
    "remove",
    "trust-policies.remove",
    "remove a policy: the keys it minted stop working at once",
  );
}

type CredentialOptions = {
  name?: string;
  type?: string;
  registryUrl?: string;
  username?: string;
  passwordStdin?: boolean;
};

export function addCredentialCommands({ s, group, verb, list, byId }: Kit): void {
  const credentials = group("credentials", "container registry credentials");
  const credentialFields = async (o: CredentialOptions) => ({
    name: o.name,
    type: o.type,
    registry_url: o.registryUrl,
    username: o.username,
    password: o.passwordStdin ? await s.stdin.line("password-stdin") : undefined,
  });
  verb<CredentialOptions>(
    credentials,
    "add",
    "credentials.add",
    "add a registry credential",
    async (_, o) => {
      if (!o.passwordStdin)
        throw new UsageError(
          "--password-stdin is required: pipe the password in, never pass it as an argument",
        );
      return given(await credentialFields(o));
    },
  )
    .need("--name <name>", "a name for the credential")
    .need("--type <type>", "the registry's type", REGISTRY_TYPES)
    .need("--registry-url <url>", "the registry, e.g. ghcr.io")
    .need("--username <user>", "the user name")
    .option("--password-stdin", "read the password from standard input (required)");
  list(credentials, "credentials.list", "list the credentials (never their passwords)");
  verb<CredentialOptions>(
    credentials,
    "update <id>",
    "credentials.update",
    "change a credential in place",
    async ([id], o) => given({ ...(await credentialFields(o)), id }),
  )
    .option("--name <name>", "a new name")
    .addOption(choice("--type <type>", "a new registry type", REGISTRY_TYPES))
    .option("--registry-url <url>", "a new registry")
    .option("--username <user>", "a new user name")
    .option("--password-stdin", "read a new password from standard input");
  byId(credentials, "remove", "credentials.remove", "remove a credential");
}
