import { randomUUID } from "node:crypto";
import { isUuid } from "@reoclo/protocol";
import { and, asc, eq, ne } from "drizzle-orm";
import { z } from "zod";
import type { ServiceContext } from "../context";
import { recordChange } from "../audit/changes";
import type { Database } from "../db/database";
import { hasErrorCode } from "../db/errors";
import { applications, servers } from "../db/schema";
import { ServiceError } from "../errors";
import { resolveOrg, type OrgView } from "../orgs/orgs";
import { parseOrThrow } from "../validation";
import { fetchHostKeyFingerprint, SshError, testSshConnection, type SshTarget } from "../ssh/connect";
import { fingerprintsEqual, isFingerprint } from "../ssh/fingerprint";
import { checkPrivateKey } from "./private-key";

// The fields of a server, shared by add and update.
const serverName = z.string().trim().min(1).max(100);
const hostName = z
  .string()
  .trim()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9.:[\]_-]+$/, "must be a host name or an IP address");
const sshPort = z.number().int().min(1).max(65535);
const sshUser = z
  .string()
  .trim()
  .regex(/^[a-z_][a-z0-9_.-]{0,31}\$?$/i, "must be a valid POSIX user name");
const privateKeyText = z.string().min(1, "the private key file is empty");
const containerCli = z.enum(["docker", "podman"]);
/** Run by POST /reboot; the operation then waits for the host to answer SSH again. */
const rebootCommand = z.string().trim().min(1, "the reboot command is empty").max(1024);
/** A server as callers name it: its id, or its name, unique in its organisation. */
const serverRef = z.string().trim().min(1, "give the server's id or name").max(100);

/** How a host key gets pinned: the fingerprint given, or the key the host presents now. */
const pinFields = {
  host_key_fingerprint: z.string().optional(),
  trust_on_first_use: z.boolean().default(false),
  /** Pins the given fingerprint without asking the host for its key (a host that is down now). */
  skip_host_key_check: z.boolean().default(false),
};
type PinChoice = {
  host_key_fingerprint?: string | undefined;
  trust_on_first_use: boolean;
  skip_host_key_check: boolean;
};
/** Exactly one way to pin; skipping the check needs a fingerprint to check later. */
function refinePinChoice<T extends z.ZodType<PinChoice>>(schema: T): T {
  return schema
    .refine((v) => Boolean(v.host_key_fingerprint) !== v.trust_on_first_use, {
      message: "give exactly one of --host-key-fingerprint SHA256:… or --trust-on-first-use",
      path: ["host_key_fingerprint"],
    })
    .refine((v) => !v.skip_host_key_check || Boolean(v.host_key_fingerprint), {
      message:
        "--skip-host-key-check goes with --host-key-fingerprint: trust on first use reads the key from the host",
      path: ["skip_host_key_check"],
    });
}

export const addServerInput = refinePinChoice(
  z.object({
    org: z.string().optional(),
    name: serverName,
    host: hostName,
    port: sshPort.default(22),
    user: sshUser,
    private_key: privateKeyText,
    passphrase: z.string().optional(),
    ...pinFields,
    container_cli: containerCli.default("docker"),
    reboot_command: rebootCommand.optional(),
  }),
);
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
  reboot_command: string;
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
  reboot_command: s.rebootCommand,
  created_at: s.createdAt.toISOString(),
});

// Additional data binding each encrypted value to its row and column.
export const serverSecretContext = (id: string, column: "private_key" | "passphrase") =>
  `servers.${column}:${id}`;

export async function addServer(ctx: ServiceContext, raw: AddServerInput): Promise<ServerView> {
  const input = parseOrThrow(addServerInput, raw);
  const org = await resolveOrg(ctx, input.org);
  checkPrivateKey(input.private_key, input.passphrase);
  const given = checkedFingerprint(input.host_key_fingerprint);
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

/** The server named by id or by its unique name, in the organisation; not_found otherwise (and for other organisations'). */
async function findServer(
  ctx: ServiceContext,
  ref: string,
  orgName?: string,
): Promise<{ row: ServerRow; org: OrgView }> {
  const org = await resolveOrg(ctx, orgName);
  const inOrg = (where: ReturnType<typeof eq>) =>
    ctx.db
      .select()
      .from(servers)
      .where(and(eq(servers.orgId, org.id), where))
      .limit(1);
  // An id first; a name that merely looks like an id is still found by name.
  const byId = isUuid(ref) ? (await inOrg(eq(servers.id, ref.toLowerCase())))[0] : undefined;
  const found = byId ?? (await inOrg(eq(servers.name, ref)))[0];
  if (!found) throw new ServiceError("not_found", `Server ${ref} not found in organisation ${org.name}.`);
  return { row: found, org };
}

export async function showServer(ctx: ServiceContext, ref: string, orgName?: string): Promise<ServerView> {
  return view((await findServer(ctx, ref, orgName)).row);
}

export async function removeServer(ctx: ServiceContext, ref: string, orgName?: string): Promise<ServerView> {
  const { row } = await findServer(ctx, ref, orgName);
  const [app] = await ctx.db
    .select({ name: applications.name })
    .from(applications)
    .where(eq(applications.serverId, row.id))
    .limit(1);
  if (app)
    throw new ServiceError(
      "conflict",
      `Server ${row.name} is used by application "${app.name}"; remove the application first.`,
    );
  await ctx.db.transaction(async (tx) => {
    await tx.delete(servers).where(eq(servers.id, row.id));
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

export const updateServerInput = z
  .object({
    org: z.string().optional(),
    id: serverRef,
    name: serverName.optional(),
    host: hostName.optional(),
    port: sshPort.optional(),
    user: sshUser.optional(),
    private_key: privateKeyText.optional(),
    passphrase: z.string().optional(),
    container_cli: containerCli.optional(),
    reboot_command: rebootCommand.optional(),
  })
  .refine((v) => v.passphrase === undefined || v.private_key !== undefined, {
    message: "a passphrase goes with the private key it unlocks: send the private key too",
    path: ["passphrase"],
  });
export type UpdateServerInput = z.input<typeof updateServerInput>;

type ServerColumns = typeof servers.$inferInsert;

/**
 * Changes a server in place: its id, and so every automation key's scope and every CI secret
 * naming it, stay. The audit row lists what changed, from what to what; for the private key and
 * passphrase only that they changed. A new address keeps the pinned host key: re-pin if it differs.
 */
export async function updateServer(ctx: ServiceContext, raw: UpdateServerInput): Promise<ServerView> {
  const input = parseOrThrow(updateServerInput, raw);
  const { row, org } = await findServer(ctx, input.id, input.org);
  const set: Partial<ServerColumns> = {};
  const changes: Record<string, unknown> = {};
  const plain = <K extends keyof ServerRow>(field: string, column: K, to: ServerRow[K] | undefined) => {
    if (to === undefined || to === row[column]) return;
    set[column] = to;
    changes[field] = { from: row[column], to };
  };
  plain("name", "name", input.name);
  plain("host", "host", input.host);
  plain("port", "port", input.port);
  plain("user", "username", input.user);
  plain("container_cli", "containerCli", input.container_cli);
  plain("reboot_command", "rebootCommand", input.reboot_command);
  if (input.private_key !== undefined) {
    const passphrase = input.passphrase || undefined;
    checkPrivateKey(input.private_key, passphrase);
    // Encrypted bound to this row and column, as addServer does, so a value cannot be moved to another row.
    set.privateKeyEnc = ctx.secrets.encrypt(input.private_key, serverSecretContext(row.id, "private_key"));
    set.passphraseEnc = passphrase
      ? ctx.secrets.encrypt(passphrase, serverSecretContext(row.id, "passphrase"))
      : null;
    changes.private_key = "replaced";
    const had = row.passphraseEnc !== null;
    if (had || passphrase) changes.passphrase = !passphrase ? "removed" : had ? "replaced" : "set";
  }
  if (Object.keys(changes).length === 0) return view(row);
  return ctx.db.transaction(async (tx) => {
    if (set.name !== undefined) await refuseTakenName(tx, org, set.name, row.id);
    let updated: ServerRow | undefined;
    try {
      [updated] = await tx
        .update(servers)
        .set(set)
        .where(and(eq(servers.id, row.id), eq(servers.orgId, org.id)))
        .returning();
    } catch (err) {
      // Another update took the name between the check and this one.
      if (set.name !== undefined && hasErrorCode(err, "23505")) throw nameTaken(set.name, org);
      throw err;
    }
    if (!updated)
      throw new ServiceError("not_found", `Server ${input.id} not found in organisation ${org.name}.`);
    await recordChange(ctx, tx, {
      action: "server.update",
      orgId: org.id,
      serverId: row.id,
      details: { name: updated.name, changed: Object.keys(changes), changes },
    });
    return view(updated);
  });
}

const nameTaken = (name: string, org: OrgView) =>
  new ServiceError("conflict", `A server named "${name}" already exists in organisation ${org.name}.`);

async function refuseTakenName(db: Database, org: OrgView, name: string, exceptId: string): Promise<void> {
  const [other] = await db
    .select({ id: servers.id })
    .from(servers)
    .where(and(eq(servers.orgId, org.id), eq(servers.name, name), ne(servers.id, exceptId)))
    .limit(1);
  if (other) throw nameTaken(name, org);
}

export const pinHostKeyInput = refinePinChoice(
  z.object({ org: z.string().optional(), id: serverRef, ...pinFields }),
);
export type PinHostKeyInput = z.input<typeof pinHostKeyInput>;

/**
 * Pins the server's host key again (the host was re-installed or its key rotated), keeping the
 * server's id: the fingerprint given (checked against the host unless told not to), or the key
 * the host presents now. Audited with the previous and the new fingerprint.
 */
export async function pinHostKey(ctx: ServiceContext, raw: PinHostKeyInput): Promise<ServerView> {
  const input = parseOrThrow(pinHostKeyInput, raw);
  const { row, org } = await findServer(ctx, input.id, input.org);
  const given = checkedFingerprint(input.host_key_fingerprint);
  const skipCheck = input.skip_host_key_check && given !== undefined;
  const pinned = skipCheck ? given : await presentedHostKey(row, given);
  return ctx.db.transaction(async (tx) => {
    const [updated] = await tx
      .update(servers)
      .set({ hostKeyFingerprint: pinned })
      .where(and(eq(servers.id, row.id), eq(servers.orgId, org.id)))
      .returning();
    if (!updated)
      throw new ServiceError("not_found", `Server ${input.id} not found in organisation ${org.name}.`);
    await recordChange(ctx, tx, {
      action: "server.host_key.pin",
      orgId: org.id,
      serverId: row.id,
      details: {
        host_key_fingerprint: pinned,
        method: given === undefined ? "trust_on_first_use" : "fingerprint_given",
        host_key_checked: !skipCheck,
        previous_fingerprint: row.hostKeyFingerprint,
      },
    });
    return view(updated);
  });
}

/** A given fingerprint, refused with 422 unless it is in `ssh-keygen -lf`'s SHA256 form. */
function checkedFingerprint(given: string | undefined): string | undefined {
  if (given === undefined || isFingerprint(given)) return given;
  throw new ServiceError(
    "validation",
    'The host key fingerprint must look like "SHA256:" followed by 43 base64 characters (ssh-keygen -lf prints it).',
    { host_key_fingerprint: ["not a SHA256 fingerprint"] },
  );
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
export async function testServer(
  ctx: ServiceContext,
  ref: string,
  orgName?: string,
): Promise<ServerTestView> {
  const { row } = await findServer(ctx, ref, orgName);
  const result = await withSshErrors(() => testSshConnection(sshTargetOf(ctx, row)));
  return {
    server_id: row.id,
    ok: true,
    remote_user: result.remoteUser,
    host_key_fingerprint: result.hostKeyFingerprint,
    latency_ms: result.latencyMs,
  };
}

export const scanHostKeyInput = z.object({
  host: hostName,
  // A form or a command line sends the port as text.
  port: z.coerce.number().pipe(sshPort).default(22),
});
export type ScanHostKeyInput = z.input<typeof scanHostKeyInput>;

export interface HostKeyScanView {
  host: string;
  port: number;
  host_key_fingerprint: string;
}

/**
 * The key a host presents now, read as adding or re-pinning reads it, and nothing stored: a person
 * compares it with the host's own `ssh-keygen -lf` before pinning it.
 */
export async function scanHostKey(raw: ScanHostKeyInput): Promise<HostKeyScanView> {
  const target = parseOrThrow(scanHostKeyInput, raw);
  return { ...target, host_key_fingerprint: await presentedHostKey(target, undefined) };
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
