import { Hono } from "hono";
import { automationAccess, type AccessDeps } from "../access/pipeline";
import { keyStatus } from "../keys/keys";
import type { AutomationKeyRow } from "../keys/lookup";

// GET /key: which key this is and what it may do, so a CI setup can be checked without
// running anything. It passes the whole access pipeline, so it also proves the IP allowlist.
// GET /auth/me/capabilities answers the same for the published CLI.

export function keyRoutes(deps: AccessDeps) {
  return (
    new Hono()
      .get("/key", automationAccess(deps, { operation: null }), (c) => {
        const { key, clientIp } = c.get("access");
        return c.json(keyAnswer(key, clientIp, deps.now()));
      })
      // The published CLI asks this after any 403 and then re-sends the request once (spec §7b):
      // it answers what the key may do, so a refusal can be explained rather than 404.
      .get("/auth/me/capabilities", automationAccess(deps, { operation: null }), (c) => {
        const { key, clientIp } = c.get("access");
        return c.json({ kind: "automation_key", ...keyAnswer(key, clientIp, deps.now()) });
      })
  );
}

function keyAnswer(key: AutomationKeyRow, clientIp: string | undefined, now: Date) {
  return {
    id: key.id,
    name: key.name,
    prefix: key.prefix,
    status: keyStatus(key, now),
    operations: key.operations,
    servers: key.allServers ? "all" : key.serverIds,
    credentials: key.allCredentials ? "all" : key.credentialIds,
    rate_limit_per_minute: key.rateLimitPerMinute,
    rate_limit_per_hour: key.rateLimitPerHour,
    expires_at: key.expiresAt?.toISOString() ?? null,
    client_ip: clientIp ?? null,
  };
}
