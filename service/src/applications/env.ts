import { ENV_MAX_BYTES, ENV_MAX_KEYS } from "@reoclo/protocol";
import { eq } from "drizzle-orm";
import { z } from "zod";
import { recordChange } from "../audit/changes";
import type { ServiceContext } from "../context";
import { applications } from "../db/schema";
import { ServiceError } from "../errors";
import type { OrgView } from "../orgs/orgs";
import { appEnvSecretContext } from "../secrets/rotate";
import { envNameField, envValuesField, findApplication, type ApplicationRow } from "./applications";

// An application's environment is write-only (spec §11): variables are set and removed by name,
// and reading it answers names and when each was last set, never a value. Values are stored as
// one encrypted JSON object bound to the application's id.

/** A change of variables, as the management API and reoclo-admin take it. */
export const envChangeFields = {
  /** Added or replaced, by name. */
  env: envValuesField.default({}),
  /** Removed, by name; a name the application does not have is ignored. */
  remove: z.array(envNameField).max(ENV_MAX_KEYS).default([]),
};

/** A change must change something, and cannot both set and remove one name. */
export function checkEnvChange(v: { env: Record<string, string>; remove: string[] }, ctx: z.RefinementCtx) {
  if (v.remove.some((name) => Object.hasOwn(v.env, name)))
    ctx.addIssue({ code: "custom", path: ["remove"], message: "a variable cannot be both set and removed" });
  if (v.remove.length === 0 && Object.keys(v.env).length === 0)
    ctx.addIssue({
      code: "custom",
      path: ["env"],
      message: "give variables to set (env) or names to remove",
    });
}

/** A change of an application's variables, as envChangeFields and checkEnvChange parsed it. */
export interface SetApplicationEnvInput {
  id: string;
  env: Record<string, string>;
  remove: string[];
}

export interface EnvVariableView {
  name: string;
  /** When it was last written; null for a variable stored before the service recorded times. */
  updated_at: string | null;
}

export interface EnvChange {
  application_id: string;
  set: string[];
  removed: string[];
  variables: EnvVariableView[];
}

/** The application's variables, decrypted (for its scripts; never for an answer). */
export function applicationEnv(ctx: ServiceContext, app: ApplicationRow): Record<string, string> {
  if (!app.envEnc) return {};
  if (!ctx.secrets.available)
    throw new ServiceError(
      "secrets_unavailable",
      "This application's environment is encrypted and the service has no master key (REOCLO_MASTER_KEY).",
    );
  return JSON.parse(ctx.secrets.decrypt(app.envEnc, appEnvSecretContext(app.id))) as Record<string, string>;
}

/** Names in order, from the recorded times (or, for an environment older than them, the names it holds). */
function variablesOf(ctx: ServiceContext, app: ApplicationRow): EnvVariableView[] {
  if (!app.envEnc) return [];
  const times = app.envUpdatedAt ?? {};
  const names = app.envUpdatedAt ? Object.keys(times) : Object.keys(applicationEnv(ctx, app));
  return names.sort().map((name) => ({ name, updated_at: times[name] ?? null }));
}

export async function listApplicationEnv(
  ctx: ServiceContext,
  org: OrgView,
  id: string,
): Promise<EnvVariableView[]> {
  return variablesOf(ctx, await findApplication(ctx.db, org, id));
}

function checkLimits(env: Record<string, string>): void {
  const names = Object.keys(env);
  if (names.length > ENV_MAX_KEYS)
    throw new ServiceError(
      "validation",
      `An application may have at most ${ENV_MAX_KEYS} variables; this would make ${names.length}.`,
      { env: [`at most ${ENV_MAX_KEYS} variables`] },
    );
  const bytes = names.reduce((n, k) => n + Buffer.byteLength(k) + Buffer.byteLength(env[k]!), 0);
  if (bytes > ENV_MAX_BYTES)
    throw new ServiceError(
      "validation",
      `An application's variables may hold at most ${ENV_MAX_BYTES} bytes (names plus values); this would make ${bytes}.`,
      { env: [`at most ${ENV_MAX_BYTES} bytes in total`] },
    );
}

/** Sets and removes variables by name; the next deploy or restart gets the result. */
export async function setApplicationEnv(
  ctx: ServiceContext,
  org: OrgView,
  input: SetApplicationEnvInput,
): Promise<EnvChange> {
  return ctx.db.transaction(async (tx) => {
    const app = await findApplication(tx, org, input.id, { forUpdate: true });
    const env = applicationEnv(ctx, app);
    const at = ctx.now().toISOString();
    // Every stored name has a time, so names can be listed without decrypting; a variable stored
    // before the times were recorded gets the time of this write (its value was re-sealed now).
    const times: Record<string, string> = {};
    for (const name of Object.keys(env)) times[name] = app.envUpdatedAt?.[name] ?? at;
    const set = Object.keys(input.env).sort();
    for (const name of set) {
      env[name] = input.env[name]!;
      times[name] = at;
    }
    const removed = [...new Set(input.remove)].filter((name) => Object.hasOwn(env, name)).sort();
    for (const name of removed) {
      delete env[name];
      delete times[name];
    }
    checkLimits(env);
    const empty = Object.keys(env).length === 0;
    const [row] = await tx
      .update(applications)
      .set({
        envEnc: empty ? null : ctx.secrets.encrypt(JSON.stringify(env), appEnvSecretContext(app.id)),
        envUpdatedAt: empty ? null : times,
      })
      .where(eq(applications.id, app.id))
      .returning();
    await recordChange(ctx, tx, {
      action: "application.env.set",
      orgId: org.id,
      applicationId: app.id,
      serverId: app.serverId,
      // Names only: the values are secrets.
      details: { name: app.name, set, removed },
    });
    return { application_id: app.id, set, removed, variables: variablesOf(ctx, row!) };
  });
}
