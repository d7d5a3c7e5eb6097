import { need } from "../access/principal";
import { listAuditInput, listAuditPage } from "../audit/audit";
import { defineVerb } from "./verb";

// The audit log, readable (spec §11 `GET /api/audit`): the caller's organisation's rows; the rows
// of no organisation (refusals before any key or session was known) only for reoclo-admin.

export const listAuditVerb = defineVerb({
  name: "audit.list",
  need: need("audit_logs:read"),
  what: "read the audit log",
  input: listAuditInput.omit({ org: true }),
  run: (call, input) =>
    listAuditPage(call.ctx, { ...input, org: call.org }, { unowned: call.principal.kind === "admin" }),
});

export const AUDIT_VERBS = [listAuditVerb] as const;
