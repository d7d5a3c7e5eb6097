import { z } from "zod";
import {
  addApplication,
  listApplications,
  removeApplication,
  type AddApplicationInput,
} from "../applications/applications";
import { listAudit, type ListAuditInput } from "../audit/audit";
import type { ServiceContext } from "../context";
import {
  addCredential,
  listCredentials,
  removeCredential,
  type AddCredentialInput,
} from "../credentials/credentials";
import { createKey, listKeys, revokeKey, showKey, type CreateKeyInput } from "../keys/keys";
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

// Every admin command as a function of (context, JSON params): the command line runs them
// in-process, or sends them to the service that owns the embedded database over its socket.

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

export const adminCommands: Record<string, Command> = {
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
