import { z } from "zod";
import { createOrg, listOrgs } from "../orgs/orgs";
import { rotateSecrets } from "../secrets/rotate";
import { defineVerb } from "./verb";

// What only the operator on the service's machine does (reoclo-admin, in process or over the
// admin socket): organisations, and re-encrypting every secret under a new master key. No route
// serves these, and invoke refuses them to anyone but reoclo-admin.

export const createOrgVerb = defineVerb({
  name: "orgs.create",
  need: null,
  adminOnly: true,
  what: "create organisations",
  input: z.object({ name: z.string().describe("lowercase letters, digits, '.', '_' or '-'") }),
  run: (call, input) => createOrg(call.ctx, input.name),
});

export const listOrgsVerb = defineVerb({
  name: "orgs.list",
  need: null,
  adminOnly: true,
  what: "list organisations",
  input: z.object({}),
  run: async (call) => ({ items: await listOrgs(call.ctx), next_cursor: null }),
});

export const rotateSecretsVerb = defineVerb({
  name: "secrets.rotate",
  need: null,
  adminOnly: true,
  what: "re-encrypt the service's secrets",
  input: z.object({}),
  run: (call) => rotateSecrets(call.ctx),
});

export const OPERATOR_VERBS = [createOrgVerb, listOrgsVerb, rotateSecretsVerb];
