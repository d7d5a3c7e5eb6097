import { Hono } from "hono";
import { requestId } from "hono/request-id";
import { ServiceError } from "../errors";
import { errorResponse, onServiceError } from "../http/error-envelope";
import type { Logger } from "../logger";
import type { OperationServices } from "../operations/start";
import { runAdminVerb } from "./run-verb";

// The endpoint the service offers on `admin.sock` in the data directory, so reoclo-admin works
// while the service owns the embedded database: POST /rpc/<verb> runs the verb as reoclo-admin
// (the ADMIN principal). The socket is 0600 in a 0700 directory: reaching it is the credential.

export function createAdminSocketApp(svc: OperationServices, logger: Logger) {
  const app = new Hono();
  app.use(requestId());
  app.onError(onServiceError(logger));
  app.notFound((c) => errorResponse(c, 404, "not_found", "Unknown admin command."));
  app.post("/rpc/:verb", async (c) => {
    const input: unknown = await c.req.json().catch(() => {
      throw new ServiceError("malformed_json", "The admin request body is not JSON.");
    });
    return c.json({ result: await runAdminVerb(svc, c.req.param("verb"), input) });
  });
  return app;
}
