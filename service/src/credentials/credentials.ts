import { randomUUID } from "node:crypto";
import { and, asc, eq } from "drizzle-orm";
import { REGISTRY_TYPES } from "@reoclo/protocol";
import { z } from "zod";
import { recordChange } from "../audit/changes";
import type { ServiceContext } from "../context";
import { registryCredentials } from "../db/schema";
import { ServiceError } from "../errors";
import { resolveOrg } from "../orgs/orgs";
import { parseOrThrow } from "../validation";

export const addCredentialInput = z.object({
  org: z.string().optional(),
  name: z.string().trim().min(1).max(100),
  type: z.enum(REGISTRY_TYPES),
  registry_url: z
    .string()
    .trim()
    .min(1)
    .max(500)
    .regex(
      /^[^\s'"`$\\;|&<>-][^\s'"`$\\;|&<>]*$/,
      "must be a registry host, optionally with a path (no spaces or shell characters)",
    ),
  username: z.string().min(1).max(500),
  password: z.string().min(1, "the password read from standard input is empty").max(100_000),
});
export type AddCredentialInput = z.input<typeof addCredentialInput>;

type CredentialRow = typeof registryCredentials.$inferSelect;

export interface CredentialView {
  id: string;
  org_id: string;
  name: string;
  registry_type: string;
  registry_url: string;
  username: string;
  created_at: string;
}

const view = (c: CredentialRow): CredentialView => ({
  id: c.id,
  org_id: c.orgId,
  name: c.name,
  registry_type: c.registryType,
  registry_url: c.registryUrl,
  username: c.username,
  created_at: c.createdAt.toISOString(),
});

export const credentialSecretContext = (id: string) => `registry_credentials.password:${id}`;

export async function addCredential(ctx: ServiceContext, raw: AddCredentialInput): Promise<CredentialView> {
  const input = parseOrThrow(addCredentialInput, raw);
  const org = await resolveOrg(ctx, input.org);
  const id = randomUUID();
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .insert(registryCredentials)
      .values({
        id,
        orgId: org.id,
        name: input.name,
        registryType: input.type,
        registryUrl: input.registry_url,
        username: input.username,
        passwordEnc: ctx.secrets.encrypt(input.password, credentialSecretContext(id)),
      })
      .onConflictDoNothing()
      .returning();
    if (!row)
      throw new ServiceError(
        "conflict",
        `A credential named "${input.name}" already exists in organisation ${org.name}.`,
      );
    await recordChange(ctx, tx, {
      action: "credential.add",
      orgId: org.id,
      credentialId: row.id,
      details: {
        name: row.name,
        registry_type: row.registryType,
        registry_url: row.registryUrl,
        username: row.username,
      },
    });
    return view(row);
  });
}

export async function listCredentials(ctx: ServiceContext, orgName?: string): Promise<CredentialView[]> {
  const org = await resolveOrg(ctx, orgName);
  const rows = await ctx.db
    .select()
    .from(registryCredentials)
    .where(eq(registryCredentials.orgId, org.id))
    .orderBy(asc(registryCredentials.name));
  return rows.map(view);
}

export async function removeCredential(
  ctx: ServiceContext,
  id: string,
  orgName?: string,
): Promise<CredentialView> {
  const org = await resolveOrg(ctx, orgName);
  if (!z.uuid().safeParse(id).success) throw new ServiceError("not_found", `Credential ${id} not found.`);
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .delete(registryCredentials)
      .where(and(eq(registryCredentials.id, id), eq(registryCredentials.orgId, org.id)))
      .returning();
    if (!row) throw new ServiceError("not_found", `Credential ${id} not found in organisation ${org.name}.`);
    await recordChange(ctx, tx, {
      action: "credential.remove",
      orgId: org.id,
      credentialId: row.id,
      details: { name: row.name, registry_url: row.registryUrl },
    });
    return view(row);
  });
}
