import { randomUUID } from "node:crypto";
import { and, asc, eq } from "drizzle-orm";
import ssh2 from "ssh2";
import type { ParsedKey } from "ssh2";
import { z } from "zod";
import type { ServiceContext } from "../context";
import { recordChange } from "../audit/changes";
import { applications, servers } from "../db/schema";
import { ServiceError } from "../errors";
import { resolveOrg } from "../orgs/orgs";
import { parseOrThrow } from "../validation";
import { fetchHostKeyFingerprint, SshError, testSshConnection, type SshTarget } from "../ssh/connect";
import { fingerprintsEqual, isFingerprint } from "../ssh/fingerprint";

export const addServerInput = z
  .object({
    org: z.string().optional(),
    name: z.string().trim().min(1).max(100),
    host: z
      .string()
      .trim()
      .min(1)
      .max(253)
      .regex(/^[A-Za-z0-9.:[\]_-]+$/, "must be a host name or an IP address"),
    port: z.number().int().min(1).max(65535).default(22),
    user: z
      .string()
      .trim()
      .regex(/^[a-z_][a-z0-9_.-]{0,31}\$?$/i, "must be a valid POSIX user name"),
    private_key: z.string().min(1, "the private key file is empty"),
    passphrase: z.string().optional(),
    host_key_fingerprint: z.string().optional(),
    trust_on_first_use: z.boolean().default(false),
    /** Pins the given fingerprint without asking the host for its key (a host that is down now). */
    skip_host_key_check: z.boolean().default(false),
    container_cli: z.enum(["docker", "podman"]).default("docker"),
    /** Run by POST /reboot; the operation then waits for the host to answer SSH again. */
    reboot_command: z.string().trim().min(1, "the reboot command is empty").max(1024).optional(),
  })
  .refine((v) => Boolean(v.host_key_fingerprint) !== v.trust_on_first_use, {
    message: "give exactly one of --host-key-fingerprint SHA256:… or --trust-on-first-use",
    path: ["host_key_fingerprint"],
  })
  .refine((v) => !v.skip_host_key_check || Boolean(v.host_key_fingerprint), {
    message:
      "--skip-host-key-check goes with --host-key-fingerprint: trust on first use reads the key from the host",
    path: ["skip_host_key_check"],
  });
export type AddServerInput = z.input<typeof addServerInput>;

export interface ServerView {
  id: string;
  org_id: string;
  name: string;
  host: string;
  port: number;
  user: string;
  host_key_fingerprint: string;
  container_cli: string;
  has_passphrase: boolean;
  created_at: string;
}

type ServerRow = typeof servers.$inferSelect;

const view = (s: ServerRow): ServerView => ({
  id: s.id,
  org_id: s.orgId,
  name: s.name,
  host: s.host,
  port: s.port,
  user: s.username,
  host_key_fingerprint: s.hostKeyFingerprint,
  container_cli: s.containerCli,
  has_passphrase: s.passphraseEnc !== null,
  created_at: s.createdAt.toISOString(),
});

// Additional data binding each encrypted value to its row and column.
export const serverSecretContext = (id: string, column: "private_key" | "passphrase") =>
  `servers.${column}:${id}`;

export async function addServer(ctx: ServiceContext, raw: AddServerInput): Promise<ServerView> {
  const input = parseOrThrow(addServerInput, raw);
  const org = await resolveOrg(ctx, input.org);
  const parsedKey = ssh2.utils.parseKey(input.private_key, input.passphrase);
  refusePublicKey(input.private_key, parsedKey instanceof Error ? undefined : parsedKey);
  if (parsedKey instanceof Error) {
    throw new ServiceError("validation", `The private key could not be read: ${parsedKey.message}.`, {
      private_key: [parsedKey.message],
    });
  }
  const given = input.host_key_fingerprint;
  if (given !== undefined && !isFingerprint(given)) {
    throw new ServiceError(
      "validation",
      'The host key fingerprint must look like "SHA256:" followed by 43 base64 characters (ssh-keygen -lf prints it).',
      {
        host_key_fingerprint: ["not a SHA256 fingerprint"],
      },
    );
  }
  const trustOnFirstUse = given === undefined;
  const skipCheck = input.skip_host_key_check && given !== undefined; // the schema allows it only then
  // One connection, before anything is stored: it reads the key to pin, or confirms the given one.
  const pinned = skipCheck ? given : await presentedHostKey(input, given);
  const id = randomUUID();
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .insert(servers)
      .values({
        id,
        orgId: org.id,
        name: input.name,
        host: input.host,
        port: input.port,
        username: input.user,
        privateKeyEnc: ctx.secrets.encrypt(input.private_key, serverSecretContext(id, "private_key")),
        passphraseEnc: input.passphrase
          ? ctx.secrets.encrypt(input.passphrase, serverSecretContext(id, "passphrase"))
          : null,
        hostKeyFingerprint: pinned,
        containerCli: input.container_cli,
        ...(input.reboot_command !== undefined ? { rebootCommand: input.reboot_command } : {}),
      })
      .onConflictDoNothing()
      .returning();
    if (!row)
      throw new ServiceError(
        "conflict",
        `A server named "${input.name}" already exists in organisation ${org.name}.`,
      );
    const added = view(row);
    await recordChange(ctx, tx, {
      action: "server.add",
      orgId: org.id,
      serverId: row.id,
      details: {
        name: added.name,
        host: added.host,
        port: added.port,
        user: added.user,
        container_cli: added.container_cli,
        reboot_command: row.rebootCommand,
        has_passphrase: added.has_passphrase,
      },
    });
    await recordChange(ctx, tx, {
      action: "server.host_key.pin",
      orgId: org.id,
      serverId: row.id,
      details: {
        host_key_fingerprint: pinned,
        method: trustOnFirstUse ? "trust_on_first_use" : "fingerprint_given",
        host_key_checked: !skipCheck,
        previous_fingerprint: null,
      },
    });
    return added;
  });
}

export async function listServers(ctx: ServiceContext, orgName?: string): Promise<ServerView[]> {
  const org = await resolveOrg(ctx, orgName);
  const rows = await ctx.db
    .select()
    .from(servers)
    .where(eq(servers.orgId, org.id))
    .orderBy(asc(servers.name));
  return rows.map(view);
}

async function findServer(ctx: ServiceContext, id: string, orgName?: string): Promise<ServerRow> {
  const org = await resolveOrg(ctx, orgName);
  if (!z.uuid().safeParse(id).success) throw new ServiceError("not_found", `Server ${id} not found.`);
  const [row] = await ctx.db
    .select()
    .from(servers)
    .where(and(eq(servers.id, id), eq(servers.orgId, org.id)))
    .limit(1);
  if (!row) throw new ServiceError("not_found", `Server ${id} not found in organisation ${org.name}.`);
  return row;
}

export async function showServer(ctx: ServiceContext, id: string, orgName?: string): Promise<ServerView> {
  return view(await findServer(ctx, id, orgName));
}

export async function removeServer(ctx: ServiceContext, id: string, orgName?: string): Promise<ServerView> {
  const row = await findServer(ctx, id, orgName);
  const [app] = await ctx.db
    .select({ name: applications.name })
    .from(applications)
    .where(eq(applications.serverId, id))
    .limit(1);
  if (app)
    throw new ServiceError(
      "conflict",
      `Server ${row.name} is used by application "${app.name}"; remove the application first.`,
    );
  await ctx.db.transaction(async (tx) => {
    await tx.delete(servers).where(eq(servers.id, id));
    await recordChange(ctx, tx, {
      action: "server.remove",
      orgId: row.orgId,
      serverId: row.id,
      details: {
        name: row.name,
        host: row.host,
        port: row.port,
        host_key_fingerprint: row.hostKeyFingerprint,
      },
    });
  });
  return view(row);
}

/** Decrypts what SSH needs; the plaintext lives only in memory for the connection. */
function sshTargetOf(ctx: ServiceContext, row: ServerRow): SshTarget {
  return {
    host: row.host,
    port: row.port,
    username: row.username,
    privateKey: ctx.secrets.decrypt(row.privateKeyEnc, serverSecretContext(row.id, "private_key")),
    passphrase: row.passphraseEnc
      ? ctx.secrets.decrypt(row.passphraseEnc, serverSecretContext(row.id, "passphrase"))
      : undefined,
    hostKeyFingerprint: row.hostKeyFingerprint,
  };
}

/** The server's SSH target (its secrets decrypted), keyed by its id for the pool; not_found when it is gone. */
export async function sshTargetFor(
  ctx: ServiceContext,
  id: string,
): Promise<SshTarget & { serverId: string }> {
  const [row] = await ctx.db.select().from(servers).where(eq(servers.id, id)).limit(1);
  if (!row) throw new ServiceError("not_found", "Server not found.");
  return { ...sshTargetOf(ctx, row), serverId: row.id };
}

export interface ServerTestView {
  server_id: string;
  ok: true;
  remote_user: string;
  host_key_fingerprint: string;
  latency_ms: number;
}

/** Connects over SSH with the pinned host key and runs `id -un`. */
export async function testServer(ctx: ServiceContext, id: string, orgName?: string): Promise<ServerTestView> {
  const row = await findServer(ctx, id, orgName);
  const result = await withSshErrors(() => testSshConnection(sshTargetOf(ctx, row)));
  return {
    server_id: row.id,
    ok: true,
    remote_user: result.remoteUser,
    host_key_fingerprint: result.hostKeyFingerprint,
    latency_ms: result.latencyMs,
  };
}

async function withSshErrors<T>(fn: () => Promise<T>, hint?: (err: SshError) => string): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof SshError) throw new ServiceError(err.code, err.message + (hint?.(err) ?? ""));
    throw err;
  }
}

/**
 * The host's key fingerprint, read over one connection that hangs up before authenticating; a
 * given fingerprint must match it, so a typo or the wrong host fails now rather than at the first command.
 */
async function presentedHostKey(
  target: { host: string; port: number },
  given: string | undefined,
): Promise<string> {
  const where = `${target.host}:${target.port}`;
  const skipHint = (err: SshError) =>
    given !== undefined && (err.code === "host_unreachable" || err.code === "ssh_error")
      ? " Nothing was stored. To add it while it is down, pass --skip-host-key-check: the given fingerprint is then checked at its first connection instead."
      : "";
  const presented = await withSshErrors(() => fetchHostKeyFingerprint(target.host, target.port), skipHint);
  if (given === undefined || fingerprintsEqual(presented, given)) return presented;
  throw new ServiceError(
    "host_key_mismatch",
    `The SSH server at ${where} presents host key ${presented}, not ${given} as given with --host-key-fingerprint, so nothing was stored. Read the right one on the host itself with \`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\` (the ecdsa or rsa key's .pub if it has no ed25519 key), and check that ${where} is the host you meant.`,
    { host_key_fingerprint: [`the host presents ${presented}`] },
  );
}

// What a public key looks like: an OpenSSH .pub line (certificates too), or a PEM / RFC 4716 block.
const OPENSSH_PUBLIC_KEY = /^((?:ssh|ecdsa-sha2|sk)-[a-z0-9.@-]+)\s+AAAA/;
const PEM_PUBLIC_KEY = /^-----BEGIN ((?:RSA )?PUBLIC KEY)-----|^---- BEGIN (SSH2 PUBLIC KEY) ----/;

/** The kind of public key `text` is (what ssh2 parsed it as, if it could), or undefined. */
function publicKeyKind(text: string, parsed: ParsedKey | ParsedKey[] | undefined): string | undefined {
  const head = text.trimStart();
  const openssh = OPENSSH_PUBLIC_KEY.exec(head);
  if (openssh) return openssh[1];
  const pem = PEM_PUBLIC_KEY.exec(head);
  if (pem) return `PEM ${pem[1] ?? pem[2]}`;
  return [parsed ?? []].flat().find((k) => !k.isPrivateKey())?.type;
}

/** A public key given as the private key is refused by name: otherwise it surfaces only at the first command. */
function refusePublicKey(text: string, parsed: ParsedKey | ParsedKey[] | undefined): void {
  const kind = publicKeyKind(text, parsed);
  if (kind === undefined) return;
  const problem = `this is a public key (${kind}); give the private key file, not the .pub one`;
  throw new ServiceError("validation", `The private key could not be used: ${problem}.`, {
    private_key: [problem],
  });
}
