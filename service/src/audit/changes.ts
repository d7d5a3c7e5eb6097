// Changes to what the service may do (servers, host-key pins, keys, credentials, applications,
// organisations, the master key) are audit rows next to the automation API's decisions: who, what,
// which target, and a summary that never holds a secret (spec §11 "Audit"; issue 13, item 13).
import type { ServiceContext } from "../context";
import type { Database } from "../db/database";
import { auditEvents } from "../db/schema";
import { storableEvent } from "../access/audit-writer";

/** The actor of changes made through reoclo-admin (in process or over the service's socket). */
export const ADMIN_CLI_ACTOR = "admin-cli";

export type ChangeAction =
  | "org.create"
  | "server.add"
  | "server.remove"
  | "server.update"
  | "server.host_key.pin"
  | "key.create"
  | "key.update"
  | "key.revoke"
  | "key.oidc_exchange"
  | "trust_policy.create"
  | "trust_policy.update"
  | "trust_policy.remove"
  | "integration_key.create"
  | "integration_key.revoke"
  | "credential.add"
  | "credential.update"
  | "credential.remove"
  | "application.add"
  | "application.update"
  | "application.remove"
  | "application.env.set"
  | "user.add"
  | "user.update"
  | "user.remove"
  | "user.password.change"
  | "auth.login"
  | "auth.login_failed"
  | "auth.logout"
  | "operation.start"
  | "operation.cancel"
  | "secrets.rotate";

export interface Change {
  action: ChangeAction;
  orgId?: string | undefined;
  keyId?: string | undefined;
  serverId?: string | undefined;
  credentialId?: string | undefined;
  applicationId?: string | undefined;
  /** The operation the change is about (a cancel, a start). */
  operationId?: string | undefined;
  /** Names, scopes, fingerprints: what changed, never a password, key or env value. */
  details: Record<string, unknown>;
  /** The verified claims of an OIDC token (spec §12), for the exchange's row. */
  runContextVerified?: Record<string, unknown> | undefined;
  /** `denied` for what was refused (a failed sign-in); default `allowed`. */
  outcome?: "allowed" | "denied";
  /** Where the request came from, when there was one (sign-ins record it). */
  client?: {
    readonly ip?: string | undefined;
    readonly userAgent?: string | undefined;
    readonly requestId?: string | undefined;
  };
}

/** Writes one change row (its id is returned); pass the transaction of the change itself, so both happen or neither. */
export async function recordChange(ctx: ServiceContext, db: Database, change: Change): Promise<number> {
  const [row] = await db
    .insert(auditEvents)
    .values(
      storableEvent({
        at: ctx.now(),
        outcome: change.outcome ?? "allowed",
        reason: change.action,
        action: change.action,
        actor: ctx.actor ?? ADMIN_CLI_ACTOR,
        orgId: change.orgId ?? null,
        keyId: change.keyId ?? null,
        serverId: change.serverId ?? null,
        credentialId: change.credentialId ?? null,
        applicationId: change.applicationId ?? null,
        operationId: change.operationId ?? null,
        details: change.details,
        runContextVerified: change.runContextVerified ?? null,
        clientIp: change.client?.ip ?? null,
        userAgent: change.client?.userAgent ?? null,
        requestId: change.client?.requestId ?? null,
      }),
    )
    .returning({ id: auditEvents.id });
  return row!.id;
}
