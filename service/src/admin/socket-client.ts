import http from "node:http";
import { ServiceError } from "../errors";

// reoclo-admin's side of the admin socket (socket-api.ts): one verb per request.

/** Sends one verb and its input to the service that owns the data directory. */
export function callAdminSocket(socketPath: string, verb: string, input: unknown): Promise<unknown> {
  const body = JSON.stringify(input);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath,
        method: "POST",
        path: `/rpc/${encodeURIComponent(verb)}`,
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
