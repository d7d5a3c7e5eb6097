import { isUuid } from "@reoclo/protocol";
import { serverInScope } from "../access/scope";
import { ServiceError } from "../errors";
import { decodeCursor, pageOf } from "./cursor";
import { listOperationRows } from "./listing";
import type { KeyCaller, OperationServices } from "./start";
import { findByIdempotencyKey, getOperation, getOperationWithServer, type OperationRow } from "./store";

// Reading and cancelling operations as a key: what it may see is its organisation's operations
// on servers in its scope; anything else is "not found", exactly like an id that never existed.

export interface VisibleOperation {
  readonly op: OperationRow;
  readonly serverName: string;
}

/** The operation, if `visible` says the caller may read it; else 404, like an id that never existed. */
export async function findVisibleOperation(
  svc: OperationServices,
  id: string,
  visible: (op: OperationRow) => boolean,
): Promise<VisibleOperation> {
  const found = isUuid(id) ? await getOperationWithServer(svc.ctx.db, id.toLowerCase()) : undefined;
  if (!found || !visible(found.op)) throw new ServiceError("not_found", "Operation not found");
  return found;
}

/** The operation, if this key may read it: same organisation and its server in scope; else 404. */
export const operationForKey = (svc: OperationServices, caller: KeyCaller, id: string) =>
  findVisibleOperation(svc, id, (op) => visibleTo(caller, op));

const visibleTo = (caller: KeyCaller, op: OperationRow) =>
  op.orgId === caller.key.orgId && serverInScope(caller.key, op.serverId);

export interface OperationPage {
  readonly items: VisibleOperation[];
  readonly nextCursor: string | null;
}

/**
 * The key's operations of one CI run, newest first, a page at a time; or the one it started with
 * an Idempotency-Key (for a client that lost the answer and must cancel what it may have started).
 */
export async function listOperationsForKey(
  svc: OperationServices,
  caller: KeyCaller,
  query: {
    run_id?: string | undefined;
    idempotency_key?: string | undefined;
    limit: number;
    cursor?: string | undefined;
  },
): Promise<OperationPage> {
  if (query.idempotency_key !== undefined) {
    const rows = await findByIdempotencyKey(svc.ctx.db, caller.key.id, query.idempotency_key);
    return { items: rows.filter((r) => visibleTo(caller, r.op)), nextCursor: null };
  }
  if (query.run_id === undefined)
    throw new ServiceError("validation", "run_id (or idempotency_key) is required.", {
      run_id: ["is required"],
    });
  const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
  const rows = await listOperationRows(
    svc.ctx.db,
    caller.key.orgId,
    { runId: query.run_id },
    query.limit + 1,
    after,
  );
  const { page, nextCursor } = pageOf(rows, query.limit, (r) => serverInScope(caller.key, r.op.serverId));
  return { items: page, nextCursor };
}

/** How long a cancel waits for the operation to end before it answers with what it knows. */
const CANCEL_WAIT_MS = 15_000;

/**
 * Cancels an operation the key may read and whose type it may start, wherever it runs, and
 * answers the operation as it is afterwards (ended, or still ending on another instance).
 */
export async function cancelOperationAs(
  svc: OperationServices,
  caller: KeyCaller,
  id: string,
): Promise<VisibleOperation> {
  const found = await operationForKey(svc, caller, id);
  if (!caller.key.operations.includes(found.op.operationType)) {
    throw new ServiceError(
      "operation_not_allowed",
      `This automation key may not cancel "${found.op.operationType}" operations.`,
    );
  }
  return cancelAndWait(svc, found, `automation key "${caller.key.name}" (${caller.key.prefix}…)`);
}

/**
 * Cancels a running operation wherever it runs (`by` names who asked, for its reason) and answers
 * it once it ended, or as it is after the wait (still ending on another instance). One already
 * ended is answered as it is: cancelling is idempotent.
 */
export async function cancelAndWait(
  svc: OperationServices,
  found: VisibleOperation,
  by: string,
): Promise<VisibleOperation> {
  if (found.op.status !== "running") return found;
  await svc.runner.cancel(found.op.id, by);
  const op =
    (await svc.runner.waitUntilSettled(found.op.id, CANCEL_WAIT_MS)) ??
    (await getOperation(svc.ctx.db, found.op.id));
  return { op: op ?? found.op, serverName: found.serverName };
}
