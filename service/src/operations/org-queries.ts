import { recordChange } from "../audit/changes";
import type { ServiceContext } from "../context";
import { decodeCursor, pageOf } from "./cursor";
import { listOperationRows, type OperationFilters } from "./listing";
import { cancelAndWait, findVisibleOperation, type OperationPage, type VisibleOperation } from "./queries";
import type { OperationServices } from "./start";

// Reading and cancelling operations as a person or an integration key (spec §11): every operation
// of the organisation, whoever started it; another organisation's id is "not found", exactly like
// an id that never existed.

/** The operation, if it belongs to the organisation; else 404. */
export const operationInOrg = (svc: OperationServices, orgId: string, id: string) =>
  findVisibleOperation(svc, id, (op) => op.orgId === orgId);

/** The organisation's operations that match every filter, newest first, a page at a time. */
export async function listOperationsInOrg(
  svc: OperationServices,
  orgId: string,
  query: { filters: OperationFilters; limit: number; cursor?: string | undefined },
): Promise<OperationPage> {
  const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
  const rows = await listOperationRows(svc.ctx.db, orgId, query.filters, query.limit + 1, after);
  const { page, nextCursor } = pageOf(rows, query.limit);
  return { items: page.map((r) => ({ op: r.op, serverName: r.serverName })), nextCursor };
}

/**
 * Cancels one of the organisation's operations on behalf of `by` (a person or an integration key,
 * named in the operation's reason), audited as `operation.cancel` with `ctx`'s actor when it was
 * still running; answers it as it is afterwards.
 */
export async function cancelOperationInOrg(
  svc: OperationServices,
  ctx: ServiceContext,
  orgId: string,
  id: string,
  by: string,
): Promise<VisibleOperation> {
  const found = await operationInOrg(svc, orgId, id);
  if (found.op.status !== "running") return found;
  await recordChange(ctx, ctx.db, {
    action: "operation.cancel",
    orgId,
    serverId: found.op.serverId,
    applicationId: found.op.applicationId ?? undefined,
    operationId: found.op.id,
    details: { operation_id: found.op.id, operation_type: found.op.operationType, run_id: found.op.runId },
  });
  return cancelAndWait(svc, found, by);
}
