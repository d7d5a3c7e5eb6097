import {
  createExecRequestSchema,
  HEADERS,
  idempotencyKeySchema,
  operationListQuerySchema,
} from "@reoclo/protocol";
import { Hono } from "hono";
import { automationAccess } from "../access/pipeline";
import { cancelOperationAs, listOperationsForKey, operationForKey } from "../operations/queries";
import { execCommand } from "../operations/start";
import { operationAnswer } from "../operations/view";
import { parseOrThrow } from "../validation";
import {
  answerEvents,
  answerStarted,
  parseLastEventId,
  requestFacts,
  streamKey,
  type ApiDeps,
} from "./answer";

// /exec and /operations (spec §3, §6): parse, call one verb, answer.

/** The query of `GET /operations` (the OpenAPI document shows it too). */
export const operationsListQuery = operationListQuerySchema.extend({
  run_id: operationListQuerySchema.shape.run_id.optional(),
  idempotency_key: idempotencyKeySchema
    .optional()
    .describe("Instead of run_id: the operation this key started with this Idempotency-Key."),
});

export function operationRoutes(deps: ApiDeps) {
  const { svc } = deps;
  const execBody = createExecRequestSchema({ maxTimeoutSeconds: svc.ctx.config.maxTimeoutSeconds });
  return new Hono()
    .post("/exec", automationAccess(deps.access, { operation: "exec", body: execBody }), async (c) => {
      const input = c.get("input");
      const access = c.get("access");
      return answerStarted(c, deps, access, await execCommand(svc, access, input, requestFacts(c, input)));
    })
    .get("/operations", automationAccess(deps.access, { operation: null }), async (c) => {
      const query = parseOrThrow(operationsListQuery, c.req.query());
      const page = await listOperationsForKey(svc, c.get("access"), query);
      return c.json({
        items: page.items.map((r) => operationAnswer(r.op, r.serverName)),
        next_cursor: page.nextCursor,
      });
    })
    .get("/operations/:id", automationAccess(deps.access, { operation: null }), async (c) => {
      const found = await operationForKey(svc, c.get("access"), c.req.param("id"));
      return c.json(operationAnswer(found.op, found.serverName));
    })
    .get("/operations/:id/events", automationAccess(deps.access, { operation: null }), async (c) => {
      const access = c.get("access");
      const found = await operationForKey(svc, access, c.req.param("id"));
      const after = parseLastEventId(c.req.header(HEADERS.lastEventId) ?? c.req.query("last_event_id"));
      return answerEvents(c, svc, found.op, after, streamKey(deps, access));
    })
    .post("/operations/:id/cancel", automationAccess(deps.access, { operation: null }), async (c) => {
      const found = await cancelOperationAs(svc, c.get("access"), c.req.param("id"));
      return c.json(operationAnswer(found.op, found.serverName));
    });
}
