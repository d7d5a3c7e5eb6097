import {
  API_BASE_PATH,
  cancelOperationResponseSchema,
  createExecRequestSchema,
  deployRequestSchema,
  execResponseSchema,
  HEADERS,
  idempotencyKeySchema,
  MANAGEMENT_BASE_PATH,
  operationListResponseSchema,
  OIDC_EXCHANGE_PATH,
  oidcExchangeRequestSchema,
  oidcExchangeResponseSchema,
  operationSchema,
  rebootRequestSchema,
  registryLoginRequestSchema,
  registryLoginResponseSchema,
  registryLogoutRequestSchema,
  registryLogoutResponseSchema,
  restartRequestSchema,
} from "@reoclo/protocol";
import { z } from "zod";
import { operationsListQuery } from "../api/operations";
import type { DocumentedRoute, ErrorStatus } from "./routes";

// The automation API (spec §1–§6) and the service's own routes, as the OpenAPI document shows
// them. The routes live in service/src/api/*.ts and validate with the same protocol schemas named
// here; the OpenAPI test fails if a route is served but missing here, or listed here but not served.

export const AUTOMATION_TAG = "Automation API";
export const SERVICE_TAG = "Service";

const operationId = z.string().describe("The operation's id (`operation_id` of the answer that started it).");

const idempotency = z.object({
  [HEADERS.idempotencyKey]: idempotencyKeySchema
    .optional()
    .describe(
      "Repeating a request with the same key and body answers the first operation instead of running again (kept at least 24 h).",
    ),
});

const rateLimited = z.object({
  [HEADERS.requestId]: z.string().describe("The request's id, also in every error body."),
  [HEADERS.rateLimitLimit]: z.number().int().describe("Requests this key may make in the current window."),
  [HEADERS.rateLimitRemaining]: z.number().int().describe("Requests left in the current window."),
  [HEADERS.rateLimitReset]: z.number().int().describe("Seconds until the window resets."),
});

const startedHeaders = rateLimited.extend({
  [HEADERS.operationId]: z.string().describe("The operation's id, sent before any event."),
  [HEADERS.idempotentReplayed]: z
    .literal("true")
    .optional()
    .describe("Present when the answer is the first operation of this Idempotency-Key."),
});

const KEY_ANSWER =
  "The key's name, prefix, status, operations, server and credential scope, and rate limits.";

/** Errors of a route of the automation API, from what it reads. */
function automationErrors(route: { body?: unknown; query?: unknown; path: string }): ErrorStatus[] {
  const errors: ErrorStatus[] = [401, 403];
  if (route.body) errors.push(400, 404, 409, 413, 422);
  else {
    if (route.path.includes("{")) errors.push(404);
    if (route.query) errors.push(422);
  }
  errors.push(429, 503);
  return errors;
}

type AutomationRoute = Omit<DocumentedRoute, "path" | "tag" | "security" | "errors" | "operationId"> & {
  readonly path: string;
  readonly name: string;
};

const STREAM_ON_ASK = `With \`${HEADERS.accept}: text/event-stream\` the answer is the operation's event stream from the start.`;

function automation(route: AutomationRoute): DocumentedRoute {
  const { name, ...rest } = route;
  const description = [route.description, route.stream === "also" ? STREAM_ON_ASK : undefined];
  return {
    ...rest,
    description: description.filter(Boolean).join(" "),
    path: `${API_BASE_PATH}${route.path}`,
    operationId: `automation.${name}`,
    tag: AUTOMATION_TAG,
    security: "automation_key",
    errors: automationErrors(route),
    responseHeaders: route.responseHeaders ?? rateLimited,
  };
}

/** What the automation API serves; `maxTimeoutSeconds` is the service's configured maximum. */
export function automationRoutes(opts: { maxTimeoutSeconds: number }): DocumentedRoute[] {
  const startsOperation = { headers: idempotency, responseHeaders: startedHeaders, stream: "also" } as const;
  return [
    automation({
      name: "exec",
      method: "post",
      path: "/exec",
      summary: "Run a command on a server",
      description:
        'Answers HTTP 200 with the result when the command finishes within the synchronous window, else `{operation_id, status: "running"}` to poll or stream.',
      body: createExecRequestSchema({ maxTimeoutSeconds: opts.maxTimeoutSeconds }),
      status: 200,
      response: execResponseSchema,
      ...startsOperation,
    }),
    automation({
      name: "deploy",
      method: "post",
      path: "/deploy",
      summary: "Deploy an application",
      description:
        "Runs the application's deploy script with the ref in `REOCLO_COMMIT_REF`; one deploy of an application at a time. Answers like /exec.",
      body: deployRequestSchema,
      status: 200,
      response: execResponseSchema,
      ...startsOperation,
    }),
    automation({
      name: "restart",
      method: "post",
      path: "/restart",
      summary: "Restart an application",
      description: "Runs the application's restart script. Answers like /exec.",
      body: restartRequestSchema,
      status: 200,
      response: execResponseSchema,
      ...startsOperation,
    }),
    automation({
      name: "reboot",
      method: "post",
      path: "/reboot",
      summary: "Reboot a server",
      description:
        "Completes when the host answers SSH again with the same host key, or fails after a bound. Answers like /exec.",
      body: rebootRequestSchema,
      status: 200,
      response: execResponseSchema,
      ...startsOperation,
    }),
    automation({
      name: "registry_login",
      method: "post",
      path: "/registry-auth/login",
      summary: "Log a server in to a container registry",
      description:
        "Runs `docker login` on the host with a stored credential, the password on standard input. Answers 202 at once; poll the operation.",
      body: registryLoginRequestSchema,
      status: 202,
      response: registryLoginResponseSchema,
      ...startsOperation,
    }),
    automation({
      name: "registry_logout",
      method: "post",
      path: "/registry-auth/logout",
      summary: "Log a server out of a container registry",
      description: "Runs `docker logout` on the host. Answers exactly 200.",
      body: registryLogoutRequestSchema,
      status: 200,
      response: registryLogoutResponseSchema,
      ...startsOperation,
    }),
    automation({
      name: "operations_list",
      method: "get",
      path: "/operations",
      summary: "List operations",
      description: "The operations this key may read, newest first, in pages (`next_cursor`).",
      query: operationsListQuery,
      status: 200,
      response: operationListResponseSchema,
    }),
    automation({
      name: "operations_show",
      method: "get",
      path: "/operations/{id}",
      summary: "Show an operation",
      description: "`result` is present once the operation is terminal. 404 for ids of another organisation.",
      pathParams: { id: operationId },
      status: 200,
      response: operationSchema,
    }),
    automation({
      name: "operations_events",
      method: "get",
      path: "/operations/{id}/events",
      summary: "Follow an operation's events",
      description:
        "Server-Sent Events; a client that reconnects with `Last-Event-ID` gets exactly what it missed, from any instance.",
      pathParams: { id: operationId },
      query: z.object({
        last_event_id: z.string().optional().describe(`The same as the ${HEADERS.lastEventId} header.`),
      }),
      headers: z.object({
        [HEADERS.lastEventId]: z.string().optional().describe("The id of the last event received."),
      }),
      status: 200,
      stream: "only",
    }),
    automation({
      name: "operations_cancel",
      method: "post",
      path: "/operations/{id}/cancel",
      summary: "Cancel an operation",
      description:
        "Kills the operation's whole process tree on the host and answers the operation as it now stands; repeating it is harmless.",
      pathParams: { id: operationId },
      status: 200,
      response: cancelOperationResponseSchema,
    }),
    automation({
      name: "key",
      method: "get",
      path: "/key",
      summary: "Describe this key",
      description: `Checks a CI set-up without running anything (the whole access pipeline runs, IP allowlist included). ${KEY_ANSWER}`,
      status: 200,
      responseDescription: KEY_ANSWER,
    }),
    {
      ...automation({
        name: "oidcExchange",
        method: "post",
        path: OIDC_EXCHANGE_PATH,
        summary: "Exchange a CI job's OIDC token for a short-lived automation key",
        description:
          "Keyless CI (spec §12): the token's signature, issuer, audience, times and jti are verified, and a trust policy's claim conditions must hold; the answer is an ordinary automation key with the policy's scope, shown this once. Every refusal is 401 with one body; the audit log says why. No key is sent.",
        body: oidcExchangeRequestSchema,
        status: 200,
        response: oidcExchangeResponseSchema,
        responseHeaders: z.object({
          [HEADERS.requestId]: z.string().describe("The request's id, also in every error body."),
        }),
      }),
      security: "none",
      errors: [400, 401, 413, 422, 429, 503],
    },
    automation({
      name: "capabilities",
      method: "get",
      path: "/auth/me/capabilities",
      summary: "What this key may do (for the published CLI)",
      description: `What the published CLI asks after a 403. ${KEY_ANSWER}`,
      status: 200,
      responseDescription: KEY_ANSWER,
    }),
  ];
}

/** Health, readiness and this document: no key, no data. */
export function serviceRoutes(): DocumentedRoute[] {
  const plain = { tag: SERVICE_TAG, security: "none", status: 200, errors: [] } as const;
  return [
    {
      ...plain,
      method: "get",
      path: "/healthz",
      operationId: "service.health",
      summary: "Liveness",
      description: "200 while the process answers.",
      response: z.object({ status: z.literal("ok") }),
    },
    {
      ...plain,
      method: "get",
      path: "/readyz",
      operationId: "service.ready",
      summary: "Readiness",
      description: "200 while the database answers and the master key is set; 503 otherwise.",
      response: z.object({ status: z.literal("ready"), database: z.string() }),
      errors: [503],
    },
    {
      ...plain,
      method: "get",
      path: `${MANAGEMENT_BASE_PATH}/openapi.json`,
      operationId: "service.openapi",
      summary: "This OpenAPI document",
      responseDescription: "The OpenAPI 3.1 document of both APIs.",
    },
    {
      ...plain,
      method: "get",
      path: `${MANAGEMENT_BASE_PATH}/docs`,
      operationId: "service.docs",
      summary: "The API reference page",
      responseMediaType: "text/html",
      responseDescription: "This document as a page (HTML, no script, no external asset).",
    },
  ];
}
