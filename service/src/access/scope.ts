import { and, eq, sql } from "drizzle-orm";
import type { Database } from "../db/database";
import { applications, registryCredentials, servers } from "../db/schema";
import { ServiceError } from "../errors";
import type { AutomationKeyRow } from "../keys/lookup";

// Step 6 of the pipeline: targets must exist in the key's organisation (else 404, exactly as
// for unknown ids, so other organisations' ids reveal nothing) and be in the key's scope.
// An empty scope list allows nothing.

const prepared = new WeakMap<Database, ReturnType<typeof build>>();
const build = (db: Database) => ({
  server: db
    .select({ id: servers.id })
    .from(servers)
    .where(and(eq(servers.id, sql.placeholder("id")), eq(servers.orgId, sql.placeholder("org"))))
    .limit(1)
    .prepare("scope_server"),
  credential: db
    .select({ id: registryCredentials.id })
    .from(registryCredentials)
    .where(
      and(
        eq(registryCredentials.id, sql.placeholder("id")),
        eq(registryCredentials.orgId, sql.placeholder("org")),
      ),
    )
    .limit(1)
    .prepare("scope_credential"),
  application: db
    .select({ id: applications.id, serverId: applications.serverId })
    .from(applications)
    .where(and(eq(applications.id, sql.placeholder("id")), eq(applications.orgId, sql.placeholder("org"))))
    .limit(1)
    .prepare("scope_application"),
});

function statements(db: Database) {
  let s = prepared.get(db);
  if (!s) {
    s = build(db);
    prepared.set(db, s);
  }
  return s;
}

export const serverInScope = (key: AutomationKeyRow, serverId: string) =>
  key.allServers || key.serverIds.includes(serverId.toLowerCase());

export async function requireServer(db: Database, key: AutomationKeyRow, serverId: string): Promise<void> {
  const [row] = await statements(db).server.execute({ id: serverId, org: key.orgId });
  if (!row) throw new ServiceError("not_found", "Server not found.");
  if (!serverInScope(key, row.id)) {
    throw new ServiceError(
      "server_not_in_scope",
      "This automation key is not allowed to act on this server; add the server to the key's scope.",
    );
  }
}

export async function requireCredential(
  db: Database,
  key: AutomationKeyRow,
  credentialId: string,
): Promise<void> {
  const [row] = await statements(db).credential.execute({ id: credentialId, org: key.orgId });
  if (!row) throw new ServiceError("not_found", "Registry credential not found.");
  if (!key.allCredentials && !key.credentialIds.includes(row.id)) {
    throw new ServiceError(
      "credential_not_in_scope",
      "This automation key is not allowed to use this registry credential.",
    );
  }
}

/** An application is in scope when its server is; returns the server id. */
export async function requireApplication(
  db: Database,
  key: AutomationKeyRow,
  applicationId: string,
): Promise<string> {
  const [row] = await statements(db).application.execute({ id: applicationId, org: key.orgId });
  if (!row) throw new ServiceError("not_found", "Application not found.");
  if (!serverInScope(key, row.serverId)) {
    throw new ServiceError(
      "application_not_in_scope",
      "This automation key is not allowed to act on this application's server.",
    );
  }
  return row.serverId;
}
