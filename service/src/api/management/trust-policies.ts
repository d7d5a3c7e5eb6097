import {
  trustPoliciesCreate,
  trustPoliciesList,
  trustPoliciesRemove,
  trustPoliciesUpdate,
} from "../../control/trust-policies";
import type { ManagementRoute } from "./router";

// Trust policies (spec §12): whom the organisation trusts to exchange an OIDC token for a key.

export const TRUST_POLICY_ROUTES: readonly ManagementRoute[] = [
  {
    method: "get",
    path: "/trust-policies",
    verb: trustPoliciesList,
    summary: "List trust policies: issuer, audience, conditions, what a minted key may do, its lifetime",
  },
  {
    method: "post",
    path: "/trust-policies",
    verb: trustPoliciesCreate,
    status: 201,
    summary: "Create a trust policy: CI jobs whose OIDC token meets it get a short-lived automation key",
  },
  {
    method: "patch",
    path: "/trust-policies/{id}",
    verb: trustPoliciesUpdate,
    summary: "Change a trust policy; a change of what it trusts or grants revokes the keys it minted",
  },
  {
    method: "delete",
    path: "/trust-policies/{id}",
    verb: trustPoliciesRemove,
    summary: "Remove a trust policy: it mints no more keys, and those it minted stop at their next request",
  },
];
