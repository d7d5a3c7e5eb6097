import { HEADERS } from "@reoclo/protocol";
import { Hono, type Context } from "hono";
import type { z } from "zod";
import {
  checkSameOrigin,
  clientAddress,
  managementAccess,
  type Caller,
  type ManagementAccessDeps,
  type ManagementEnv,
} from "../../access/management";
import { readJsonObject } from "../../access/pipeline";
import { ANONYMOUS } from "../../access/principal";
import { invoke, type AnyVerb, type ClientFacts, type VerbServices } from "../../control/verb";
import type { StreamKey } from "../answer";

// The management API (spec §11) is a table: each route names its verb, where the verb's input
// comes from, and its status. The router, the OpenAPI document and the permission table test
// are all built from the same table, so no route can exist outside them.

export interface ManagementDeps {
  readonly access: ManagementAccessDeps;
  readonly svc: VerbServices;
}

export type HttpMethod = "get" | "post" | "patch" | "delete";

export interface ManagementRoute {
  readonly method: HttpMethod;
  /** In OpenAPI form, under /api: `/servers/{id}`. */
  readonly path: string;
  readonly verb: AnyVerb;
  /** Where the verb's input, apart from the path parameters, comes from (default: body for POST/PATCH, else query). */
  readonly from?: "body" | "query";
  readonly status?: 200 | 201 | 202;
  readonly summary: string;
  /** The answer's JSON (its output side), for the OpenAPI document; without it, "a JSON object". */
  readonly response?: z.ZodType;
  /** The answer is an event stream (for OpenAPI); `answer` builds it. */
  readonly stream?: boolean;
  /** Answers something else than the verb's result as JSON: a cookie, an event stream. */
  readonly answer?: (
    c: Context<ManagementEnv>,
    result: unknown,
    deps: ManagementDeps,
  ) => Response | Promise<Response>;
}

export const honoPath = (path: string) => path.replace(/\{(\w+)\}/g, ":$1");
export const pathParams = (path: string) => [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
export const inputFrom = (r: ManagementRoute) =>
  r.from ?? (r.method === "post" || r.method === "patch" ? "body" : "query");

/** What ends the caller's event streams: its integration key's revocation, or its session's end. */
export function callerStream(c: Context<ManagementEnv>, deps: ManagementDeps): StreamKey | undefined {
  const p = c.get("caller")?.principal;
  if (p?.kind === "integration_key")
    return { keyWatch: deps.access.keyWatch, what: "integration_key", id: p.keyId };
  if (p?.kind === "user") return { keyWatch: deps.access.keyWatch, what: "session", id: p.sessionId };
  return undefined;
}

/** The client facts a verb may record. */
export function clientFacts(
  c: Context<ManagementEnv>,
  caller: Caller | undefined,
  deps: ManagementDeps,
): ClientFacts {
  return {
    clientIp: caller?.clientIp ?? clientAddress(c, deps.access).client?.toString(),
    userAgent: c.req.header(HEADERS.userAgent)?.slice(0, 512),
    requestId: c.get("requestId"),
    route: c.req.routePath,
    idempotencyKey: c.req.header(HEADERS.idempotencyKey),
  };
}

export function managementRouter(deps: ManagementDeps, routes: readonly ManagementRoute[]) {
  const app = new Hono<ManagementEnv>();
  const access = managementAccess(deps.access);
  for (const route of routes) {
    const handler = async (c: Context<ManagementEnv>) => {
      const input: Record<string, unknown> =
        inputFrom(route) === "body" ? await readJsonObject(c) : { ...c.req.query() };
      Object.assign(input, c.req.param());
      const caller = route.verb.public ? undefined : c.get("caller");
      if (route.verb.public && c.req.method !== "GET") checkSameOrigin(c);
      // A public verb (sign-in) has no caller; it runs as nobody and checks its own input.
      const result = await invoke(
        route.verb,
        deps.svc,
        caller?.principal ?? ANONYMOUS,
        input,
        clientFacts(c, caller, deps),
      );
      if (route.answer) return route.answer(c, result, deps);
      return c.json(result as object, route.status ?? 200);
    };
    const path = honoPath(route.path);
    if (route.verb.public) app.on(route.method.toUpperCase(), path, handler);
    else app.on(route.method.toUpperCase(), path, access, handler);
  }
  return app;
}
