import { OPERATION_OUTCOMES, operationListQuerySchema, RUN_ID_MAX_CHARS } from "@reoclo/protocol";
import { z } from "zod";
import { describePrincipal, need } from "../access/principal";
import { cancelOperationInOrg, listOperationsInOrg, operationInOrg } from "../operations/org-queries";
import { operationDetail } from "../operations/view";
import { resolveOrg } from "../orgs/orgs";
import { sinceSchema } from "../validation";
import { defineVerb, type VerbCall } from "./verb";

// What ran (spec §11 `/api/operations`): people and integration keys see every operation of their
// organisation, whoever started it (a CI run's automation key, a person, a script), follow its
// output and cancel it, so nobody needs an automation key to see what CI did.

const id = (what: string) => z.uuid(`must be ${what} id`);

const listOperationsInput = z.object({
  server: id("a server").optional(),
  application: id("an application").optional(),
  key: id("an automation key").optional(),
  user: id("a user").optional(),
  status: z.enum(OPERATION_OUTCOMES, { error: `must be one of ${OPERATION_OUTCOMES.join(", ")}` }).optional(),
  run_id: z.string().min(1).max(RUN_ID_MAX_CHARS).optional(),
  since: sinceSchema.optional(),
  // The automation API's page rules: an opaque cursor, 50 rows unless asked, at most 200.
  cursor: operationListQuerySchema.shape.cursor,
  limit: operationListQuerySchema.shape.limit,
});

const byId = z.object({ id: z.string().min(1, "give the operation's id") });

const orgIdOf = async (call: VerbCall) => (await resolveOrg(call.ctx, call.org)).id;

async function showOperation(call: VerbCall, id: string) {
  const found = await operationInOrg(call.svc, await orgIdOf(call), id);
  return operationDetail(found.op, found.serverName);
}

export const listOperationsVerb = defineVerb({
  name: "operations.list",
  need: need("logs:read"),
  what: "read operations",
  input: listOperationsInput,
  run: async (call, input) => {
    const page = await listOperationsInOrg(call.svc, await orgIdOf(call), {
      filters: {
        serverId: input.server,
        applicationId: input.application,
        keyId: input.key,
        actor: input.user === undefined ? undefined : `user:${input.user.toLowerCase()}`,
        status: input.status,
        runId: input.run_id,
        since: input.since === undefined ? undefined : new Date(input.since),
      },
      limit: input.limit,
      cursor: input.cursor,
    });
    return {
      items: page.items.map((r) => operationDetail(r.op, r.serverName)),
      next_cursor: page.nextCursor,
    };
  },
});

export const showOperationVerb = defineVerb({
  name: "operations.show",
  need: need("logs:read"),
  what: "read operations",
  input: byId,
  run: (call, input) => showOperation(call, input.id),
});

/**
 * The operation, checked like `show`; over HTTP the route answers its event stream (spec §6) from
 * `Last-Event-ID` (or `last_event_id`) instead.
 */
export const operationEventsVerb = defineVerb({
  name: "operations.events",
  need: need("logs:read"),
  what: "read operations",
  input: byId.extend({ last_event_id: z.string().optional() }),
  run: (call, input) => showOperation(call, input.id),
});

export const cancelOperationVerb = defineVerb({
  name: "operations.cancel",
  need: need("servers:execute"),
  what: "cancel operations",
  input: byId,
  run: async (call, input) => {
    const found = await cancelOperationInOrg(
      call.svc,
      call.ctx,
      await orgIdOf(call),
      input.id,
      describePrincipal(call.principal),
    );
    return operationDetail(found.op, found.serverName);
  },
});

export const OPERATION_VERBS = [
  listOperationsVerb,
  showOperationVerb,
  operationEventsVerb,
  cancelOperationVerb,
] as const;
