import { randomUUID } from "node:crypto";
import { and, asc, eq } from "drizzle-orm";
import { isUuid, REGISTRY_TYPES, UUID_PATTERN } from "@reoclo/protocol";
import { z } from "zod";
import { recordChange } from "../audit/changes";
import type { ServiceContext } from "../context";
import { hasErrorCode } from "../db/errors";
import { registryCredentials } from "../db/schema";
import { ServiceError } from "../errors";
import { resolveOrg, type OrgView } from "../orgs/orgs";
import { parseOrThrow } from "../validation";

const nameField = z.string().trim().min(1).max(100);
const registryUrlField = z
  .string()
  .trim()
  .min(1)
  .max(500)
  .regex(
    /^[^\s'"`$\\;|&<>-][^\s'"`$\\;|&<>]*$/,
    "must be a registry host, optionally with a path (no spaces or shell characters)",
  );
const usernameField = z.string().min(1).max(500);
const passwordField = z.string().min(1, "the password is empty").max(100_000);

export const addCredentialInput = z.object({
  org: z.string().optional(),
  name: nameField,
  type: z.enum(REGISTRY_TYPES),
  registry_url: registryUrlField,
  username: usernameField,
  password: passwordField,
});
export type AddCredentialInput = z.input<typeof addCredentialInput>;

export const updateCredentialInput = z.object({
  org: z.string().optional(),
  id: z.string(),
  name: nameField.optional(),
  registry_url: registryUrlField.optional(),
  username: usernameField.optional(),
  /** Write-only: replaced, never shown. */
  password: passwordField.optional(),
});
export type UpdateCredentialInput = z.input<typeof updateCredentialInput>;

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

const notFound = (id: string, org: OrgView) =>
  new ServiceError("not_found", `Credential ${id} not found in organisation ${org.name}.`);

/** Changes a credential in place (its id, and every key's scope naming it, stays); audited without the password. */
export async function updateCredential(
  ctx: ServiceContext,
  raw: UpdateCredentialInput,
): Promise<CredentialView> {
  const input = parseOrThrow(updateCredentialInput, raw);
  const given = (["name", "registry_url", "username", "password"] as const).filter(
    (f) => input[f] !== undefined,
  );
  if (given.length === 0)
    throw new ServiceError(
      "validation",
      "Nothing to change: give at least one of name, registry_url, username, password.",
      { input: ["give at least one field to change"] },
    );
  const org = await resolveOrg(ctx, input.org);
  if (!isUuid(input.id)) throw notFound(input.id, org);
  const id = input.id.toLowerCase();
  try {
    return await ctx.db.transaction(async (tx) => {
      const [before] = await tx
        .select()
        .from(registryCredentials)
        .where(and(eq(registryCredentials.id, id), eq(registryCredentials.orgId, org.id)))
        .limit(1)
        .for("update");
      if (!before) throw notFound(input.id, org);
      const changed = given.filter((f) => {
        if (f === "password") return true; // never compared: the stored one stays sealed
        const column = { name: "name", registry_url: "registryUrl", username: "username" } as const;
        return before[column[f]] !== input[f];
      });
      if (changed.length === 0) return view(before);
      const [row] = await tx
        .update(registryCredentials)
        .set({
          name: input.name,
          registryUrl: input.registry_url,
          username: input.username,
          passwordEnc:
            input.password === undefined
              ? undefined
              : ctx.secrets.encrypt(input.password, credentialSecretContext(before.id)),
        })
        .where(eq(registryCredentials.id, before.id))
        .returning();
      await recordChange(ctx, tx, {
        action: "credential.update",
        orgId: org.id,
        credentialId: before.id,
        // Field names and the public values; "password" only as a name.
        details: {
          name: row!.name,
          fields: changed,
          ...(changed.includes("name") ? { previous_name: before.name } : {}),
          ...(changed.includes("registry_url")
            ? { previous_registry_url: before.registryUrl, registry_url: row!.registryUrl }
            : {}),
          ...(changed.includes("username")
            ? { previous_username: before.username, username: row!.username }
            : {}),
        },
      });
      return view(row!);
    });
  } catch (err) {
    // registry_credentials_org_name_uq: another credential of this organisation has the name.
    if (hasErrorCode(err, "23505") && input.name !== undefined)
      throw new ServiceError(
        "conflict",
        `A credential named "${input.name}" already exists in organisation ${org.name}.`,
      );
    throw err;
  }
}

export async function removeCredential(
  ctx: ServiceContext,
  id: string,
  orgName?: string,
): Promise<CredentialView> {
  const org = await resolveOrg(ctx, orgName);
  if (!UUID_PATTERN.test(id)) throw new ServiceError("not_found", `Credential ${id} not found.`);
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
