import { isUuid } from "@reoclo/protocol";
import { asc, eq } from "drizzle-orm";
import { z } from "zod";
import { recordChange } from "../audit/changes";
import type { ServiceContext } from "../context";
import { organisations } from "../db/schema";
import { ServiceError } from "../errors";

export const DEFAULT_ORG = "default";
const orgName = z
  .string()
  .trim()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, "use 1–63 lowercase letters, digits, '.', '_' or '-'");

export interface OrgView {
  id: string;
  name: string;
  created_at: string;
}

const view = (o: typeof organisations.$inferSelect): OrgView => ({
  id: o.id,
  name: o.name,
  created_at: o.createdAt.toISOString(),
});

export async function createOrg(ctx: ServiceContext, name: string): Promise<OrgView> {
  const parsed = orgName.safeParse(name);
  if (!parsed.success)
    throw new ServiceError("validation", `Invalid organisation name: ${parsed.error.issues[0]?.message}.`);
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .insert(organisations)
      .values({ name: parsed.data })
      .onConflictDoNothing()
      .returning();
    if (!row) throw new ServiceError("conflict", `An organisation named "${parsed.data}" already exists.`);
    await recordChange(ctx, tx, { action: "org.create", orgId: row.id, details: { name: row.name } });
    return view(row);
  });
}

export async function listOrgs(ctx: ServiceContext): Promise<OrgView[]> {
  return (await ctx.db.select().from(organisations).orderBy(asc(organisations.name))).map(view);
}

/** Finds an organisation by name or id; `--org` defaults to `default`. */
export async function resolveOrg(ctx: ServiceContext, nameOrId: string | undefined): Promise<OrgView> {
  const key = nameOrId ?? DEFAULT_ORG;
  const [row] = await ctx.db
    .select()
    .from(organisations)
    .where(isUuid(key) ? eq(organisations.id, key) : eq(organisations.name, key))
    .limit(1);
  if (!row)
    throw new ServiceError(
      "not_found",
      `Organisation "${key}" not found; list them with "reoclo-admin orgs list".`,
    );
  return view(row);
}
