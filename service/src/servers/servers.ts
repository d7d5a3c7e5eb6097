import { randomUUID } from "node:crypto";
import { and, asc, eq } from "drizzle-orm";
import ssh2 from "ssh2";
import { z } from "zod";
import type { ServiceContext } from "../context";
import { recordChange } from "../audit/changes";
import { applications, servers } from "../db/schema";
import { AppError } from "../errors";
import { resolveOrg } from "../orgs/orgs";
import { parseOrThrow } from "../validation";
import { fetchHostKeyFingerprint, SshError, testSshConnection, type SshTarget } from "../ssh/connect";
import { isFingerprint } from "../ssh/fingerprint";

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
    container_cli: z.enum(["docker", "podman"]).default("docker"),
    /** Run by POST /reboot; the operation then waits for the host to answer SSH again. */
    reboot_command: z.string().trim().min(1, "the reboot command is empty").max(1024).optional(),
  })
  .refine((v) => Boolean(v.host_key_fingerprint) !== v.trust_on_first_use, {
    message: "give exactly one of --host-key-fingerprint SHA256:… or --trust-on-first-use",
    path: ["host_key_fingerprint"],
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
  if (parsedKey instanceof Error) {
    throw new AppError("validation", `The private key could not be read: ${parsedKey.message}.`, {
      private_key: [parsedKey.message],
    });
  }
  let fingerprint = input.host_key_fingerprint;
  if (fingerprint !== undefined && !isFingerprint(fingerprint)) {
    throw new AppError(
      "validation",
      'The host key fingerprint must look like "SHA256:" followed by 43 base64 characters (ssh-keygen -lf prints it).',
      {
        host_key_fingerprint: ["not a SHA256 fingerprint"],
      },
    );
  }
  const trustOnFirstUse = !fingerprint;
  if (!fingerprint) fingerprint = await withSshErrors(() => fetchHostKeyFingerprint(input.host, input.port));
  const pinned = fingerprint;
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
      throw new AppError(
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
  if (!z.uuid().safeParse(id).success) throw new AppError("not_found", `Server ${id} not found.`);
  const [row] = await ctx.db
    .select()
    .from(servers)
    .where(and(eq(servers.id, id), eq(servers.orgId, org.id)))
    .limit(1);
  if (!row) throw new AppError("not_found", `Server ${id} not found in organisation ${org.name}.`);
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
    throw new AppError(
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
export function sshTargetOf(ctx: ServiceContext, row: ServerRow): SshTarget {
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

async function withSshErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof SshError) throw new AppError(err.code, err.message);
    throw err;
  }
}
