import { z } from "zod";
import { ADMIN } from "../access/principal";
import {
  addApplication,
  listApplications,
  removeApplication,
  type AddApplicationInput,
} from "../applications/applications";
import { listAudit, type ListAuditInput } from "../audit/audit";
import type { ServiceContext } from "../context";
import { verbNamed } from "../control/index";
import { invoke } from "../control/verb";
import {
  addCredential,
  listCredentials,
  removeCredential,
  type AddCredentialInput,
} from "../credentials/credentials";
import { ServiceError } from "../errors";
import { createKey, listKeys, revokeKey, showKey, type CreateKeyInput } from "../keys/keys";
import type { OperationServices } from "../operations/start";
import { createOrg, listOrgs } from "../orgs/orgs";
import { rotateSecrets } from "../secrets/rotate";
import {
  addServer,
  listServers,
  removeServer,
  showServer,
  testServer,
  type AddServerInput,
} from "../servers/servers";
import { parseOrThrow } from "../validation";

// What reoclo-admin runs, in process or for it over the admin socket: a verb of the control plane
// (control/index.ts), as the ADMIN principal, so the command line checks and audits like the API.

/** Runs the verb `name` for reoclo-admin; `input` is the verb's (snake_case, spec §11), with `org`. */
export function runAdminVerb(svc: OperationServices, name: string, input: unknown): Promise<unknown> {
  const verb = verbNamed(name);
  if (verb) return invoke(verb, svc, ADMIN, input);
  // TODO(issue 16 merge): delete from here to the end of the file once every verb is in VERBS.
  const legacy = Object.hasOwn(legacyCommands, name) ? legacyCommands[name] : undefined;
  if (!legacy)
    throw new ServiceError(
      "not_found",
      `The service has no command ${name}: is it older than this reoclo-admin?`,
    );
  return legacy(svc.ctx, legacyInput(name, input));
}

/** The verbs' field names (spec §11) in the old entity functions' terms. */
function legacyInput(name: string, input: unknown): unknown {
  if (!input || typeof input !== "object") return input;
  const { server_ids, credential_ids, allowed_ips, server_id, ...rest } = input as Record<string, unknown>;
  if (name === "keys.create")
    return { ...rest, servers: server_ids, credentials: credential_ids, allow_ip: allowed_ips };
  if (name === "apps.add") return { ...rest, server: server_id };
  return input;
}

const orgParam = z.object({ org: z.string().optional() });
const idParam = orgParam.extend({ id: z.string().min(1, "give the id") });
const nameParam = z.object({ name: z.string() });

type Command = (ctx: ServiceContext, params: unknown) => Promise<unknown>;

const byId =
  (fn: (ctx: ServiceContext, id: string, org?: string) => Promise<unknown>): Command =>
  (ctx, params) => {
    const p = parseOrThrow(idParam, params);
    return fn(ctx, p.id, p.org);
  };
const byOrg =
  (fn: (ctx: ServiceContext, org?: string) => Promise<unknown>): Command =>
  (ctx, params) =>
    fn(ctx, parseOrThrow(orgParam, params).org);

const legacyCommands: Record<string, Command> = {
  "orgs.create": (ctx, p) => createOrg(ctx, parseOrThrow(nameParam, p).name),
  "orgs.list": (ctx) => listOrgs(ctx),
  "servers.add": (ctx, p) => addServer(ctx, p as AddServerInput),
  "servers.list": byOrg(listServers),
  "servers.show": byId(showServer),
  "servers.test": byId(testServer),
  "servers.remove": byId(removeServer),
  "keys.create": (ctx, p) => createKey(ctx, p as CreateKeyInput),
  "keys.list": byOrg(listKeys),
  "keys.show": byId(showKey),
  "keys.revoke": byId(revokeKey),
  "credentials.add": (ctx, p) => addCredential(ctx, p as AddCredentialInput),
  "credentials.list": byOrg(listCredentials),
  "credentials.remove": byId(removeCredential),
  "apps.add": (ctx, p) => addApplication(ctx, p as AddApplicationInput),
  "apps.list": byOrg(listApplications),
  "apps.remove": byId(removeApplication),
  "audit.list": (ctx, p) => listAudit(ctx, p as ListAuditInput),
  "secrets.rotate": (ctx) => rotateSecrets(ctx),
};
