import {
  createExecRequestSchema,
  HEADERS,
  IDEMPOTENCY_RETENTION_MS,
  idempotencyKeySchema,
  operationListQuerySchema,
  type OperationType,
} from "@reoclo/protocol";
import { eq } from "drizzle-orm";
import { Hono, type Context } from "hono";
import { keyEndedEnvelope } from "../access/key-watch";
import { automationAccess, type Access, type AccessDeps } from "../access/pipeline";
import { isUuid, serverInScope } from "../access/scope";
import type { ServiceContext } from "../context";
import { servers } from "../db/schema";
import { AppError } from "../errors";
import { requestHash, validIdempotencyKey } from "../operations/idempotency";
import type { OperationRunner, StartRequest } from "../operations/runner";
import type { PoolTarget } from "../ssh/pool";
import {
  findByIdempotencyKey,
  getOperationWithServer,
  listByRunId,
  type OperationRow,
} from "../operations/store";
import { decodeCursor, encodeCursor } from "../operations/cursor";
import { execAnswer, operationAnswer } from "../operations/view";
import { parseOrThrow } from "../validation";
import { sshTargetOf } from "../servers/servers";
import { operationEventStream, SSE_HEADERS } from "./sse";

// /exec and /operations (spec §3, §6). Deploy, restart and reboot start operations the same way.

export interface OperationApiDeps {
  readonly access: AccessDeps;
  readonly ctx: ServiceContext;
  readonly runner: OperationRunner;
}

export interface OperationSpec {
  type: OperationType;
  serverId: string;
  command: string;
  env: Readonly<Record<string, string>>;
  workingDirectory?: string | undefined;
  timeoutSeconds: number;
  runId?: string | undefined;
  runContext?: unknown;
  applicationId?: string | undefined;
  credentialId?: string | undefined;
  maskAlso?: readonly string[];
  /** 202 at once (registry login), and fields added to the JSON answer (registry_url…). */
  answer?: AnswerOptions;
  /** See StartRequest: values passed like env but never masked. */
  publicEnv?: Readonly<Record<string, string>>;
  queue?: StartRequest["queue"];
  execute?: (target: PoolTarget) => StartRequest["execute"];
}

const wantsEvents = (c: Context) => (c.req.header("accept") ?? "").includes("text/event-stream");

/** Starts an operation (once per Idempotency-Key) and answers like /exec: 200 with the result or `running`. */
export async function startOperation(
  c: Context,
  deps: OperationApiDeps,
  access: Access,
  input: unknown,
  spec: OperationSpec,
) {
  const idemKey = c.req.header("idempotency-key");
  if (idemKey !== undefined && !validIdempotencyKey(idemKey)) {
    throw new AppError("validation", "Idempotency-Key must be 1–255 visible ASCII characters.", {
      "Idempotency-Key": ["must be 1–255 visible ASCII characters"],
    });
  }
  const [server] = await deps.ctx.db.select().from(servers).where(eq(servers.id, spec.serverId)).limit(1);
  if (!server) throw new AppError("not_found", "Server not found.");
  const target = { ...sshTargetOf(deps.ctx, server), serverId: server.id };
  const now = deps.ctx.now();
  const created = await deps.runner.start({
    target,
    command: spec.command,
    env: spec.env,
    publicEnv: spec.publicEnv,
    maskAlso: spec.maskAlso,
    queue: spec.queue,
    execute: spec.execute?.(target),
    auditId: access.auditId,
    claim: idemKey
      ? {
          keyId: access.key.id,
          orgId: access.key.orgId,
          key: idemKey,
          requestHash: requestHash(c.req.path, input),
          expiresAt: new Date(now.getTime() + IDEMPOTENCY_RETENTION_MS),
        }
      : undefined,
    row: {
      orgId: access.key.orgId,
      keyId: access.key.id,
      serverId: server.id,
      applicationId: spec.applicationId,
      credentialId: spec.credentialId,
      operationType: spec.type,
      workingDirectory: spec.workingDirectory,
      timeoutSeconds: spec.timeoutSeconds,
      runId: spec.runId,
      runContext: spec.runContext ?? null,
      userAgent: c.req.header("user-agent")?.slice(0, 512) ?? null,
    },
  });
  if (created.kind === "replay") {
    c.header(HEADERS.idempotentReplayed, "true");
    const found = await getOperationWithServer(deps.ctx.db, created.operationId);
    if (!found) throw new AppError("not_found", "Operation not found.");
    return answer(c, deps, access, found.op, spec.answer);
  }
  return answer(c, deps, access, created.row, spec.answer);
}

export interface AnswerOptions {
  /** Answer 202 `{operation_id, status: "running", …extra}` at once instead of waiting (spec §3 login). */
  accepted?: boolean;
  extra?: Record<string, unknown>;
}

/** Answers for an operation just created (or replayed): its events, 202, or the result once known. */
async function answer(
  c: Context,
  deps: OperationApiDeps,
  access: Access,
  op: OperationRow,
  opts: AnswerOptions = {},
) {
  // The id is known before any event: a streaming client can cancel or resume at once.
  c.header(HEADERS.operationId, op.id);
  if (wantsEvents(c)) return eventsAnswer(c, deps, access, op, 0);
  if (opts.accepted)
    return c.json({ operation_id: op.id, status: "running", outcome: "running", ...opts.extra }, 202);
  const final =
    op.status === "running"
      ? await deps.runner.waitForFinal(op.id, deps.ctx.config.syncWaitSeconds * 1000)
      : op;
  return c.json({ ...execAnswer(final ?? op), ...opts.extra }, 200);
}

/**
 * The operation's event stream. The key was checked once, for this request: if it is revoked or
 * expires while the stream is open, the stream ends with an `error` event and the operation goes on.
 */
function eventsAnswer(c: Context, deps: OperationApiDeps, access: Access, op: OperationRow, after: number) {
  const requestId = (c.get("requestId") as string | undefined) ?? "";
  const stream = operationEventStream(deps.ctx.db, deps.runner, op, after, {
    endEarly: (end) =>
      deps.access.keyWatch.watch(access.key.id, (why) => end(keyEndedEnvelope(why, requestId))),
  });
  // c.body keeps what the pipeline already set (X-Request-Id, RateLimit-*, Idempotent-Replayed).
  return c.body(stream, 200, SSE_HEADERS);
}

/** The operation, if this key may read it: same organisation and its server in scope; else 404. */
async function readable(deps: OperationApiDeps, access: Access, id: string) {
  const found = isUuid(id) ? await getOperationWithServer(deps.ctx.db, id.toLowerCase()) : undefined;
  if (!found || found.op.orgId !== access.key.orgId || !serverInScope(access.key, found.op.serverId)) {
    throw new AppError("not_found", "Operation not found");
  }
  return found;
}

/** Event ids are output sequence numbers (32-bit); an id past any stream's end means "nothing new". */
const MAX_EVENT_ID = 2 ** 31 - 1;

/**
 * `Last-Event-ID` (or `?last_event_id=`): absent or empty means from the start; a number past the
 * end is clamped (nothing new, not an error); anything else was never an id of ours.
 */
export function parseLastEventId(value: string | undefined): number {
  const text = value?.trim() ?? "";
  if (text === "") return 0;
  if (!/^\d{1,30}$/.test(text))
    throw new AppError("validation", "Last-Event-ID must be the id of an event of this stream.", {
      "Last-Event-ID": ["is not an event id"],
    });
  return Math.min(Number(text), MAX_EVENT_ID);
}

const listQuery = operationListQuerySchema.extend({
  run_id: operationListQuerySchema.shape.run_id.optional(),
  idempotency_key: idempotencyKeySchema.optional(),
});

export function operationRoutes(deps: OperationApiDeps) {
  const execBody = createExecRequestSchema({ maxTimeoutSeconds: deps.ctx.config.maxTimeoutSeconds });
  return new Hono()
    .post("/exec", automationAccess(deps.access, { operation: "exec", body: execBody }), (c) => {
      const input = c.get("input");
      return startOperation(c, deps, c.get("access"), input, {
        type: "exec",
        serverId: input.server_id,
        command: input.command,
        env: input.env ?? {},
        workingDirectory: input.working_directory,
        timeoutSeconds: input.timeout_seconds,
        runId: input.run_id,
        runContext: input.run_context,
      });
    })
    .get("/operations", automationAccess(deps.access, { operation: null }), async (c) => {
      const access = c.get("access");
      const query = parseOrThrow(listQuery, c.req.query());
      // Ours: the operation this key started with an Idempotency-Key, for a client that lost the
      // answer (its process was cancelled mid-request) and must cancel what it may have started.
      if (query.idempotency_key !== undefined) {
        const rows = await findByIdempotencyKey(deps.ctx.db, access.key.id, query.idempotency_key);
        const items = rows.filter(
          (r) => r.op.orgId === access.key.orgId && serverInScope(access.key, r.op.serverId),
        );
        return c.json({ items: items.map((r) => operationAnswer(r.op, r.serverName)), next_cursor: null });
      }
      if (query.run_id === undefined)
        throw new AppError("validation", "run_id (or idempotency_key) is required.", {
          run_id: ["is required"],
        });
      const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
      const rows = await listByRunId(deps.ctx.db, access.key.orgId, query.run_id, query.limit + 1, after);
      const visible = rows.filter((r) => serverInScope(access.key, r.op.serverId));
      const page = visible.slice(0, query.limit);
      const last = page.at(-1);
      return c.json({
        items: page.map((r) => operationAnswer(r.op, r.serverName)),
        next_cursor:
          rows.length > query.limit && last
            ? encodeCursor({ createdAt: last.op.createdAt, id: last.op.id })
            : null,
      });
    })
    .get("/operations/:id", automationAccess(deps.access, { operation: null }), async (c) => {
      const found = await readable(deps, c.get("access"), c.req.param("id"));
      return c.json(operationAnswer(found.op, found.serverName));
    })
    .get("/operations/:id/events", automationAccess(deps.access, { operation: null }), async (c) => {
      const access = c.get("access");
      const found = await readable(deps, access, c.req.param("id"));
      const after = parseLastEventId(c.req.header("last-event-id") ?? c.req.query("last_event_id"));
      return eventsAnswer(c, deps, access, found.op, after);
    })
    .post("/operations/:id/cancel", automationAccess(deps.access, { operation: null }), async (c) => {
      const access = c.get("access");
      const found = await readable(deps, access, c.req.param("id"));
      if (!access.key.operations.includes(found.op.operationType)) {
        throw new AppError(
          "operation_not_allowed",
          `This automation key may not cancel "${found.op.operationType}" operations.`,
        );
      }
      if (found.op.status === "running") {
        await deps.runner.cancel(found.op.id, `automation key "${access.key.name}" (${access.key.prefix}…)`);
        await deps.runner.waitForFinal(found.op.id, 15_000);
      }
      const now = await getOperationWithServer(deps.ctx.db, found.op.id);
      return c.json(operationAnswer(now?.op ?? found.op, found.serverName));
    });
}
