import { randomUUID } from "node:crypto";
import { ENV_NAME_PATTERN, isUuid, WORKING_DIRECTORY_MAX_CHARS } from "@reoclo/protocol";
import { and, asc, eq } from "drizzle-orm";
import { z } from "zod";
import { recordChange } from "../audit/changes";
import type { ServiceContext } from "../context";
import type { Database } from "../db/database";
import { hasErrorCode } from "../db/errors";
import { applications, servers } from "../db/schema";
import { ServiceError } from "../errors";
import { resolveOrg, type OrgView } from "../orgs/orgs";
import { appEnvSecretContext } from "../secrets/rotate";
import { parseOrThrow } from "../validation";

// Applications (spec §5): a server, a working directory, a deploy and an optional restart script,
// and an environment that is write-only (stored encrypted; names are shown, values never).

const nameField = z.string().trim().min(1).max(100);
const serverIdField = z.uuid("must be a server id");
const workingDirectoryField = z
  .string()
  .min(1)
  .max(WORKING_DIRECTORY_MAX_CHARS)
  .refine((d) => d.startsWith("/") && !d.includes("\0"), "must be an absolute path");
const deployScriptField = z.string().min(1, "the deploy script is empty").max(65_536);
const restartScriptField = z.string().min(1, "the restart script is empty").max(65_536);

/** A variable name; `__proto__` is refused rather than silently dropped by the record. */
export const envNameField = z
  .string()
  .regex(ENV_NAME_PATTERN, "names are letters, digits and _, not starting with a digit")
  .refine((n) => n !== "__proto__", "is not a usable variable name");
/** Variables as given: values are strings without NUL (they travel as C strings). */
export const envValuesField = z.record(
  envNameField,
  z.string().refine((v) => !v.includes("\0"), "must not contain a NUL character"),
);

export const addApplicationInput = z.object({
  org: z.string().optional(),
  name: nameField,
  server_id: serverIdField,
  working_directory: workingDirectoryField,
  deploy_script: deployScriptField,
  restart_script: restartScriptField.optional(),
  /** Given to the scripts as environment; stored encrypted, masked in their output. */
  env: envValuesField.optional(),
});
export type AddApplicationInput = z.input<typeof addApplicationInput>;

export const updateApplicationInput = z.object({
  org: z.string().optional(),
  id: z.string(),
  name: nameField.optional(),
  server_id: serverIdField.optional(),
  working_directory: workingDirectoryField.optional(),
  deploy_script: deployScriptField.optional(),
  /** null removes the restart script. */
  restart_script: restartScriptField.nullable().optional(),
});
export type UpdateApplicationInput = z.input<typeof updateApplicationInput>;

export type ApplicationRow = typeof applications.$inferSelect;

export interface ApplicationView {
  id: string;
  org_id: string;
  name: string;
  server_id: string;
  working_directory: string;
  has_restart_script: boolean;
  /** Whether scripts get an (encrypted) environment; the values are secrets and never shown. */
  has_env: boolean;
  created_at: string;
}

/** One application with its scripts (to edit them); still no environment. */
export interface ApplicationDetail extends ApplicationView {
  deploy_script: string;
  restart_script: string | null;
}

const view = (a: ApplicationRow): ApplicationView => ({
  id: a.id,
  org_id: a.orgId,
  name: a.name,
  server_id: a.serverId,
  working_directory: a.workingDirectory,
  has_restart_script: a.restartScript !== null,
  has_env: a.envEnc !== null,
  created_at: a.createdAt.toISOString(),
});

const detail = (a: ApplicationRow): ApplicationDetail => ({
  ...view(a),
  deploy_script: a.deployScript,
  restart_script: a.restartScript,
});

const notFound = (id: string, org: OrgView) =>
  new ServiceError("not_found", `Application ${id} not found in organisation ${org.name}.`);

const nameTaken = (name: string, org: OrgView) =>
  new ServiceError("conflict", `An application named "${name}" already exists in organisation ${org.name}.`);

/** The application of this organisation (locked for update in a transaction when asked), or 404. */
export async function findApplication(
  db: Database,
  org: OrgView,
  id: string,
  opts: { forUpdate?: boolean } = {},
): Promise<ApplicationRow> {
  if (!isUuid(id)) throw notFound(id, org);
  const query = db
    .select()
    .from(applications)
    .where(and(eq(applications.id, id.toLowerCase()), eq(applications.orgId, org.id)))
    .limit(1);
  const [row] = opts.forUpdate ? await query.for("update") : await query;
  if (!row) throw notFound(id, org);
  return row;
}

async function serverOfOrg(db: Database, org: OrgView, serverId: string): Promise<string> {
  const [server] = await db
    .select({ id: servers.id })
    .from(servers)
    .where(and(eq(servers.id, serverId), eq(servers.orgId, org.id)))
    .limit(1);
  if (!server)
    throw new ServiceError("not_found", `Server ${serverId} not found in organisation ${org.name}.`);
  return server.id;
}

export async function addApplication(
  ctx: ServiceContext,
  raw: AddApplicationInput,
): Promise<ApplicationView> {
  const input = parseOrThrow(addApplicationInput, raw);
  const org = await resolveOrg(ctx, input.org);
  const serverId = await serverOfOrg(ctx.db, org, input.server_id);
  const id = randomUUID();
  const env = input.env && Object.keys(input.env).length > 0 ? input.env : undefined;
  const at = ctx.now().toISOString();
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .insert(applications)
      .values({
        id,
        envEnc: env ? ctx.secrets.encrypt(JSON.stringify(env), appEnvSecretContext(id)) : null,
        envUpdatedAt: env ? Object.fromEntries(Object.keys(env).map((name) => [name, at])) : null,
        orgId: org.id,
        serverId,
        name: input.name,
        workingDirectory: input.working_directory,
        deployScript: input.deploy_script,
        restartScript: input.restart_script ?? null,
      })
      .onConflictDoNothing()
      .returning();
    if (!row) throw nameTaken(input.name, org);
    await recordChange(ctx, tx, {
      action: "application.add",
      orgId: org.id,
      applicationId: row.id,
      serverId: row.serverId,
      details: {
        name: row.name,
        working_directory: row.workingDirectory,
        has_restart_script: row.restartScript !== null,
        // The names say what the scripts get; the values are secrets and stay encrypted.
        env_names: Object.keys(env ?? {}).sort(),
      },
    });
    return view(row);
  });
}

export async function listApplications(ctx: ServiceContext, orgName?: string): Promise<ApplicationView[]> {
  const org = await resolveOrg(ctx, orgName);
  const rows = await ctx.db
    .select()
    .from(applications)
    .where(eq(applications.orgId, org.id))
    .orderBy(asc(applications.name));
  return rows.map(view);
}

export async function showApplication(
  ctx: ServiceContext,
  id: string,
  orgName?: string,
): Promise<ApplicationDetail> {
  const org = await resolveOrg(ctx, orgName);
  return detail(await findApplication(ctx.db, org, id));
}

/** Fields an update may change, by their input name, and the column each is stored in. */
const UPDATABLE = {
  name: "name",
  server_id: "serverId",
  working_directory: "workingDirectory",
  deploy_script: "deployScript",
  restart_script: "restartScript",
} as const satisfies Record<string, keyof ApplicationRow>;

/** Changes an application in place: its id (and every key's scope naming it) stays. */
export async function updateApplication(
  ctx: ServiceContext,
  raw: UpdateApplicationInput,
): Promise<ApplicationDetail> {
  const input = parseOrThrow(updateApplicationInput, raw);
  const given = (Object.keys(UPDATABLE) as (keyof typeof UPDATABLE)[]).filter((f) => input[f] !== undefined);
  if (given.length === 0)
    throw new ServiceError(
      "validation",
      `Nothing to change: give at least one of ${Object.keys(UPDATABLE).join(", ")}.`,
      { input: ["give at least one field to change"] },
    );
  const org = await resolveOrg(ctx, input.org);
  if (input.server_id !== undefined) await serverOfOrg(ctx.db, org, input.server_id);
  try {
    return await ctx.db.transaction(async (tx) => {
      const before = await findApplication(tx, org, input.id, { forUpdate: true });
      const changed = given.filter((f) => before[UPDATABLE[f]] !== input[f]);
      if (changed.length === 0) return detail(before);
      const set = Object.fromEntries(changed.map((f) => [UPDATABLE[f], input[f]]));
      const [row] = await tx.update(applications).set(set).where(eq(applications.id, before.id)).returning();
      await recordChange(ctx, tx, {
        action: "application.update",
        orgId: org.id,
        applicationId: before.id,
        serverId: row!.serverId,
        // Field names, and the old and new values of the short ones; scripts only by name.
        details: {
          name: row!.name,
          fields: changed,
          ...(changed.includes("name") ? { previous_name: before.name } : {}),
          ...(changed.includes("server_id") ? { previous_server_id: before.serverId } : {}),
          ...(changed.includes("working_directory")
            ? {
                previous_working_directory: before.workingDirectory,
                working_directory: row!.workingDirectory,
              }
            : {}),
        },
      });
      return detail(row!);
    });
  } catch (err) {
    // applications_org_name_uq: another application of this organisation has the name.
    if (hasErrorCode(err, "23505") && input.name !== undefined) throw nameTaken(input.name, org);
    throw err;
  }
}

export async function removeApplication(
  ctx: ServiceContext,
  id: string,
  orgName?: string,
): Promise<ApplicationView> {
  const org = await resolveOrg(ctx, orgName);
  if (!isUuid(id)) throw notFound(id, org);
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .delete(applications)
      .where(and(eq(applications.id, id.toLowerCase()), eq(applications.orgId, org.id)))
      .returning();
    if (!row) throw notFound(id, org);
    await recordChange(ctx, tx, {
      action: "application.remove",
      orgId: org.id,
      applicationId: row.id,
      serverId: row.serverId,
      details: { name: row.name },
    });
    return view(row);
  });
}
