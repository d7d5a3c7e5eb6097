import { keysCreate, keysList, keysRevoke, keysShow, keysUpdate } from "../../control/automation-keys";
import type { ManagementRoute } from "./router";

// Automation (`rca_`) keys (spec §11): the plaintext key is in the answer of POST, once.

export const AUTOMATION_KEY_ROUTES: readonly ManagementRoute[] = [
  {
    method: "get",
    path: "/automation-keys",
    verb: keysList,
    summary: "List automation keys: name, prefix, scope, created, expires, last used, status",
  },
  {
    method: "post",
    path: "/automation-keys",
    verb: keysCreate,
    status: 201,
    summary: "Create an automation key; the answer holds the key, shown this once",
  },
  { method: "get", path: "/automation-keys/{id}", verb: keysShow, summary: "Show an automation key" },
  {
    method: "patch",
    path: "/automation-keys/{id}",
    verb: keysUpdate,
    summary: "Change an automation key in place (name, operations, scope, IPs, limits, expiry)",
  },
  {
    method: "post",
    path: "/automation-keys/{id}/revoke",
    verb: keysRevoke,
    summary: "Revoke an automation key: its next request, on any instance, is refused",
  },
];
