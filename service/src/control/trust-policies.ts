import { z } from "zod";
import { need } from "../access/principal";
import {
  createPolicy,
  createPolicyInput,
  listPolicies,
  removePolicy,
  updatePolicy,
  updatePolicyInput,
} from "../trust/policies";
import { defineVerb } from "./verb";

// Trust policies on the control plane (spec §12): managed like automation keys, since each one
// mints automation keys (seed 001: managers and up); anyone who may read keys sees them.

const policyRef = z.object({ id: z.string().trim().min(1, "give the trust policy's id") });
const managePolicies = need("api_keys:write", "manager");

export const trustPoliciesList = defineVerb({
  name: "trust-policies.list",
  need: need("api_keys:read"),
  what: "list trust policies",
  input: z.object({}),
  run: async (call) => ({ items: await listPolicies(call.ctx, call.org), next_cursor: null }),
});

export const trustPoliciesCreate = defineVerb({
  name: "trust-policies.create",
  need: managePolicies,
  what: "create trust policies",
  input: createPolicyInput,
  run: (call, input) => createPolicy(call.ctx, { ...input, org: call.org }),
});

export const trustPoliciesUpdate = defineVerb({
  name: "trust-policies.update",
  need: managePolicies,
  what: "change trust policies",
  input: updatePolicyInput,
  run: (call, input) => updatePolicy(call.ctx, { ...input, org: call.org }),
});

export const trustPoliciesRemove = defineVerb({
  name: "trust-policies.remove",
  need: managePolicies,
  what: "remove trust policies",
  input: policyRef,
  run: (call, input) => removePolicy(call.ctx, input.id, call.org),
});

export const TRUST_POLICY_VERBS = [
  trustPoliciesList,
  trustPoliciesCreate,
  trustPoliciesUpdate,
  trustPoliciesRemove,
] as const;
