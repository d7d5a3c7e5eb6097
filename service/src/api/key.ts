import { Hono } from "hono";
import { automationAccess, type AccessDeps } from "../access/pipeline";
import { keyStatus } from "../keys/keys";

// GET /key: which key this is and what it may do, so a CI setup can be checked without
// running anything. It passes the whole access pipeline, so it also proves the IP allowlist.

export function keyRoutes(deps: AccessDeps) {
  return new Hono().get("/key", automationAccess(deps, { operation: null }), (c) => {
    const { key, clientIp } = c.get("access");
    return c.json({
      id: key.id,
      name: key.name,
      prefix: key.prefix,
      status: keyStatus(key, deps.now()),
      operations: key.operations,
      servers: key.allServers ? "all" : key.serverIds,
      credentials: key.allCredentials ? "all" : key.credentialIds,
      rate_limit_per_minute: key.rateLimitPerMinute,
      rate_limit_per_hour: key.rateLimitPerHour,
      expires_at: key.expiresAt?.toISOString() ?? null,
      client_ip: clientIp ?? null,
    });
  });
}
