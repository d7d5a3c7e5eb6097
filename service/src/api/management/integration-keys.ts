import {
  createIntegrationKeyVerb,
  listIntegrationKeysVerb,
  revokeIntegrationKeyVerb,
} from "../../control/integration-keys";
import type { ManagementRoute } from "./router";

// Integration keys (spec §11): `rk_t_` keys for scripts and tools.

export const INTEGRATION_KEY_ROUTES: readonly ManagementRoute[] = [
  {
    method: "get",
    path: "/integration-keys",
    verb: listIntegrationKeysVerb,
    summary: "List the organisation's integration keys: label, prefix, permissions, status, last use",
  },
  {
    method: "post",
    path: "/integration-keys",
    verb: createIntegrationKeyVerb,
    status: 201,
    summary: "Create an integration key (its plaintext is in this answer only)",
  },
  {
    method: "post",
    path: "/integration-keys/{id}/revoke",
    verb: revokeIntegrationKeyVerb,
    summary: "Revoke an integration key at once (developers: only their own)",
  },
];
