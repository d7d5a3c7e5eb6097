import http from "node:http";
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import type { ServiceContext } from "../context";
import { ServiceError } from "../errors";
import { errorResponse, onServiceError } from "../http/error-envelope";
import type { Logger } from "../logger";
import { adminCommands } from "./commands";

// The management endpoint the service offers on `admin.sock` in the data directory, so
// reoclo-admin works while the service owns the embedded database. The socket is 0600.

export function createAdminSocketApp(ctx: ServiceContext, logger: Logger) {
  const app = new Hono();
  app.use(requestId());
  app.onError(onServiceError(logger));
  app.notFound((c) => errorResponse(c, 404, "not_found", "Unknown admin command."));
  app.post("/rpc/:command", async (c) => {
    const name = c.req.param("command");
    const run = Object.hasOwn(adminCommands, name) ? adminCommands[name] : undefined;
    if (!run) return errorResponse(c, 404, "not_found", `Unknown admin command ${c.req.param("command")}.`);
    const params: unknown = await c.req.json().catch(() => {
      throw new ServiceError("malformed_json", "The admin request body is not JSON.");
    });
    return c.json({ result: await run(ctx, params) });
  });
  return app;
}

/** Sends one command to the service that owns the data directory. */
export function callAdminSocket(socketPath: string, command: string, params: unknown): Promise<unknown> {
  const body = JSON.stringify(params);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath,
        method: "POST",
        path: `/rpc/${command}`,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          try {
            const parsed = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
              result?: unknown;
              error?: string;
              detail?: string;
              fields?: Record<string, string[]>;
            };
            if (res.statusCode === 200) resolve(parsed.result);
            else
              reject(
                new ServiceError(
                  (parsed.error ?? "service_unavailable") as "service_unavailable",
                  parsed.detail ?? "The service refused the command.",
                  parsed.fields,
                ),
              );
          } catch {
            reject(
              new ServiceError(
                "service_unavailable",
                `The service answered the admin socket with HTTP ${res.statusCode}.`,
              ),
            );
          }
        });
      },
    );
    req.on("error", (err) =>
      reject(
        new ServiceError(
          "service_unavailable",
          `Could not reach the service on ${socketPath}: ${err.message}.`,
        ),
      ),
    );
    req.end(body);
  });
}
