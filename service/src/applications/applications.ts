import { randomUUID } from "node:crypto";
import { ENV_NAME_PATTERN, WORKING_DIRECTORY_MAX_CHARS } from "@reoclo/protocol";
import { and, asc, eq } from "drizzle-orm";
import { z } from "zod";
import { recordChange } from "../audit/changes";
import type { ServiceContext } from "../context";
import { applications, servers } from "../db/schema";
import { ServiceError } from "../errors";
import { resolveOrg } from "../orgs/orgs";
import { appEnvSecretContext } from "../secrets/rotate";
import { parseOrThrow } from "../validation";

export const addApplicationInput = z.object({
  org: z.string().optional(),
  name: z.string().trim().min(1).max(100),
  server: z.uuid("must be a server id"),
  working_directory: z
    .string()
    .min(1)
    .max(WORKING_DIRECTORY_MAX_CHARS)
    .refine((d) => d.startsWith("/") && !d.includes("\0"), "must be an absolute path"),
  deploy_script: z.string().min(1, "the deploy script is empty").max(65_536),
  restart_script: z.string().min(1, "the restart script is empty").max(65_536).optional(),
  /** Given to the scripts as environment; stored encrypted, masked in their output. */
  env: z.record(z.string().regex(ENV_NAME_PATTERN, "names are letters, digits and _"), z.string()).optional(),
});
export type AddApplicationInput = z.input<typeof addApplicationInput>;

type ApplicationRow = typeof applications.$inferSelect;

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

export async function addApplication(
  ctx: ServiceContext,
  raw: AddApplicationInput,
): Promise<ApplicationView> {
  const input = parseOrThrow(addApplicationInput, raw);
  const org = await resolveOrg(ctx, input.org);
  const [server] = await ctx.db
    .select({ id: servers.id })
    .from(servers)
    .where(and(eq(servers.id, input.server), eq(servers.orgId, org.id)))
    .limit(1);
  if (!server)
    throw new ServiceError("not_found", `Server ${input.server} not found in organisation ${org.name}.`);
  const id = randomUUID();
  const env = input.env && Object.keys(input.env).length > 0 ? input.env : undefined;
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .insert(applications)
      .values({
        id,
        envEnc: env ? ctx.secrets.encrypt(JSON.stringify(env), appEnvSecretContext(id)) : null,
        orgId: org.id,
        serverId: server.id,
        name: input.name,
        workingDirectory: input.working_directory,
        deployScript: input.deploy_script,
        restartScript: input.restart_script ?? null,
      })
      .onConflictDoNothing()
      .returning();
    if (!row)
      throw new ServiceError(
        "conflict",
        `An application named "${input.name}" already exists in organisation ${org.name}.`,
      );
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

export async function removeApplication(
  ctx: ServiceContext,
  id: string,
  orgName?: string,
): Promise<ApplicationView> {
  const org = await resolveOrg(ctx, orgName);
  if (!z.uuid().safeParse(id).success) throw new ServiceError("not_found", `Application ${id} not found.`);
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .delete(applications)
      .where(and(eq(applications.id, id), eq(applications.orgId, org.id)))
      .returning();
    if (!row) throw new ServiceError("not_found", `Application ${id} not found in organisation ${org.name}.`);
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
