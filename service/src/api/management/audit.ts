import { listAuditVerb } from "../../control/audit";
import type { ManagementRoute } from "./router";

// The audit log (spec §11).

export const AUDIT_ROUTES: readonly ManagementRoute[] = [
  {
    method: "get",
    path: "/audit",
    verb: listAuditVerb,
    summary: "List audit rows, newest first (filters: actor, key, server, outcome, action, run_id, since)",
  },
];
