import { randomUUID } from "node:crypto";
import { HEADERS } from "@reoclo/protocol";
import type { MiddlewareHandler } from "hono";
import type { RequestIdVariables } from "hono/request-id";

/**
 * Every response carries `X-Request-Id`. It is always generated here, never taken from the
 * client, because it identifies the request in the audit log and the service log.
 */
export const assignRequestId: MiddlewareHandler<{ Variables: RequestIdVariables }> =
  async function assignRequestId(c, next) {
    const id = randomUUID();
    c.set("requestId", id);
    c.header(HEADERS.requestId, id);
    await next();
  };
