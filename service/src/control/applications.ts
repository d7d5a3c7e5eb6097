import { deployRequestSchema, operationListQuerySchema } from "@reoclo/protocol";
import { z } from "zod";
import { actorOf, need } from "../access/principal";
import {
  addApplication,
  addApplicationInput,
  listApplications,
  removeApplication,
  showApplication,
  updateApplication,
  updateApplicationInput,
} from "../applications/applications";
import { deployApplicationAs } from "../applications/deploy";
import { listDeployments } from "../applications/deployments";
import { checkEnvChange, envChangeFields, listApplicationEnv, setApplicationEnv } from "../applications/env";
import { ServiceError } from "../errors";
import { resolveOrg, type OrgView } from "../orgs/orgs";
import { defineVerb, type VerbCall } from "./verb";

// Applications on the control plane (spec §11): list, show, add, change in place, remove; deploy
// at once (202), the deployment history, and the write-only environment. The seed's paths name the
// organisation (`/tenants/{tenant_id}/…`): any id but the caller's own is "not found".

const idInput = z.object({ id: z.string().min(1, "give the id") });
const tenantInput = z.object({ tenant_id: z.string(), application_id: z.string() });

/** The organisation the tenant id names, if the caller acts in it; else 404 like an unknown id. */
async function tenantOrg(call: VerbCall, tenantId: string): Promise<OrgView> {
  // reoclo-admin acts in any organisation: the tenant id chooses it unless --org did.
  const org = await resolveOrg(call.ctx, call.org ?? tenantId).catch((err: unknown) => {
    if (err instanceof ServiceError && err.code === "not_found") return undefined;
    throw err;
  });
  if (!org || org.id !== tenantId.toLowerCase())
    throw new ServiceError("not_found", `Organisation ${tenantId} not found.`);
  return org;
}

export const listApps = defineVerb({
  name: "apps.list",
  need: need("applications:read"),
  what: "list applications",
  input: z.object({}),
  run: async (call) => ({ items: await listApplications(call.ctx, call.org), next_cursor: null }),
});

export const showApp = defineVerb({
  name: "apps.show",
  need: need("applications:read"),
  what: "read applications",
  input: idInput,
  run: (call, input) => showApplication(call.ctx, input.id, call.org),
});

export const addApp = defineVerb({
  name: "apps.add",
  need: need("applications:write"),
  what: "add applications",
  input: addApplicationInput.omit({ org: true }),
  run: (call, input) => addApplication(call.ctx, { ...input, org: call.org }),
});

export const updateApp = defineVerb({
  name: "apps.update",
  need: need("applications:write"),
  what: "change applications",
  input: updateApplicationInput.omit({ org: true }),
  run: (call, input) => updateApplication(call.ctx, { ...input, org: call.org }),
});

export const removeApp = defineVerb({
  name: "apps.remove",
  need: need("applications:write"),
  what: "remove applications",
  input: idInput,
  run: (call, input) => removeApplication(call.ctx, input.id, call.org),
});

/** What a deploy started on the control plane answers at once (the seed's 202). */
export interface DeployAccepted {
  operation_id: string;
  status: "running";
  outcome: "running";
}

export const deployApp = defineVerb({
  name: "apps.deploy",
  need: need("applications:execute"),
  what: "deploy applications",
  input: tenantInput.extend({
    /** Passed to the deploy script as data, in REOCLO_COMMIT_REF; absent: the script decides. */
    commit_ref: deployRequestSchema.shape.commit_ref.optional(),
  }),
  async run(call, input): Promise<DeployAccepted> {
    const org = await tenantOrg(call, input.tenant_id);
    const { op } = await deployApplicationAs(
      call.svc,
      { orgId: org.id, actor: actorOf(call.principal) },
      { application_id: input.application_id, commit_ref: input.commit_ref, wait: true },
      { route: call.client.route ?? "apps.deploy", input, userAgent: call.client.userAgent },
    );
    return { operation_id: op.id, status: "running", outcome: "running" };
  },
});

export const listDeploys = defineVerb({
  name: "apps.deployments",
  need: need("deployments:read"),
  what: "read deployments",
  input: tenantInput.extend({
    cursor: operationListQuerySchema.shape.cursor,
    limit: operationListQuerySchema.shape.limit,
  }),
  async run(call, input) {
    const org = await tenantOrg(call, input.tenant_id);
    return listDeployments(call.ctx, org, {
      id: input.application_id,
      cursor: input.cursor,
      limit: input.limit,
    });
  },
});

export const listEnv = defineVerb({
  name: "apps.env.list",
  need: need("environment_variables:read"),
  what: "read environment variable names",
  input: tenantInput,
  async run(call, input) {
    const org = await tenantOrg(call, input.tenant_id);
    return { items: await listApplicationEnv(call.ctx, org, input.application_id), next_cursor: null };
  },
});

export const setEnv = defineVerb({
  name: "apps.env.set",
  need: need("environment_variables:write"),
  what: "set environment variables",
  input: tenantInput.extend(envChangeFields).superRefine(checkEnvChange),
  async run(call, input) {
    const org = await tenantOrg(call, input.tenant_id);
    return setApplicationEnv(call.ctx, org, {
      id: input.application_id,
      env: input.env,
      remove: input.remove,
    });
  },
});

export const APPLICATION_VERBS = [
  listApps,
  showApp,
  addApp,
  updateApp,
  removeApp,
  deployApp,
  listDeploys,
  listEnv,
  setEnv,
] as const;
